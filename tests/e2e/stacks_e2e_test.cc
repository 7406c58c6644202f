// End-to-end tests of more client stacks (issue #18): Ruby pg, PHP PDO pgsql (emulated and native
// prepares), Go pgx v4, C++ libpqxx, and from npm Sequelize, Knex and TypeORM over node-pg. Each
// runs a program of tests/e2e/drivers/ as tenants t1 and t2 through a running rowguard
// (examples/rowguard.toml in front of a throwaway PostgreSQL 15 loaded with examples/schema.sql)
// and checks: reads filtered (t1 never sees t2's rows and the other way round), INSERTs without
// the tenant column filled in by rowguard, cross-tenant writes refused with SQLSTATE 42501, the
// connection usable afterwards, the stack's prepared statements where it has them. A program
// prints "ok <check>" / "FAIL <check>: ..." and "all checks passed" (exit 0) when nothing failed;
// it leaves the example data as it found it. The compatibility table is tests/e2e/drivers/README.md.
//
// Also Laravel's Illuminate\Database (query builder and Eloquent; Debian php-illuminate-database).
// One gtest suite (and so one ctest entry) per stack. What a stack needs comes from scripts/deps
// (Debian: ruby-pg, php-cli php-pgsql, golang-go golang-github-jackc-pgx-v4-dev, libpqxx-dev;
// nodejs with npm); a missing one fails its test with a message naming scripts/deps. Compiled or
// installed once per build tree, under ROWGUARD_STACKS_DIR (<build>/tests/stacks):
//  - the Go program, built offline from Debian's sources (GOPATH=/usr/share/gocode,
//    GO111MODULE=off), rebuilt when its source is newer;
//  - the npm packages of tests/e2e/drivers/node_orms/package.json (exact versions, package-lock),
//    installed with `npm ci`, again when the lock file changes;
//  - the libpqxx program is a CMake target (tests/CMakeLists.txt, libpqxx found by pkg-config).
// <build>/tests/stacks/<stack>.statements.log has what each stack sent (rowguard's debug log of the
// statements it forwarded or denied, as the client wrote them, with the session id), e.g. the
// session setup a framework sends at connect; rowguard's denials are in the test output on failure.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/pg_server.h"
#include "tests/support/process.h"

#ifndef ROWGUARD_STACKS_DIR
#error "ROWGUARD_STACKS_DIR must be defined (tests/CMakeLists.txt)"
#endif

namespace rowguard::testing {
namespace {

std::string drivers_dir() { return source_dir() + "/tests/e2e/drivers"; }
std::string stacks_dir() { return ROWGUARD_STACKS_DIR; }

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

bool file_exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

// Modification time in nanoseconds, or -1 when the file does not exist.
long long mtime_ns(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return -1;
  return static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
}

void make_dirs(const std::string& path) {
  CommandResult r = run_command({"mkdir", "-p", path}, {}, "", 30);
  if (r.exit_code != 0) throw std::runtime_error("mkdir -p " + path + " failed: " + describe(r));
}

// examples/rowguard.toml with its listen and upstream addresses turned into placeholders.
std::string example_config_template() {
  const std::string path = source_dir() + "/examples/rowguard.toml";
  std::string text = read_text_file(path);
  if (!contains(text, "\"127.0.0.1:6432\"") || !contains(text, "\"127.0.0.1:5432\""))
    throw std::runtime_error(path + " does not contain the expected listen/upstream addresses");
  text = replace_all(text, "\"127.0.0.1:6432\"", "\"{{LISTEN}}\"");
  return replace_all(text, "\"127.0.0.1:5432\"", "\"{{UPSTREAM}}\"");
}

// What one stack program produced and the rowguard log lines written meanwhile that report a denial
// or a closed session.
struct StackRun {
  CommandResult result;
  std::vector<std::string> log_lines;

  std::vector<std::string> lines_starting(const std::string& prefix) const {
    std::vector<std::string> out;
    for (const auto& l : lines_of(result.out))
      if (l.rfind(prefix, 0) == 0) out.push_back(l);
    return out;
  }
  std::string report() const {
    std::string out = describe(result);
    if (!log_lines.empty()) {
      out += "\nrowguard denials and closed sessions during this run:\n";
      for (const auto& d : log_lines) out += "  " + d + "\n";
    }
    return out;
  }
};

class StacksE2e : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    try {
      pg_ = &PgServer::shared();
      pg_->load_example_schema();
      make_dirs(stacks_dir());
      baseline_ = snapshot();
      rowguard_ = std::make_unique<RowguardProcess>(example_config_template(), *pg_);
    } catch (const std::exception& e) {
      setup_error_ = e.what();
    }
  }

  static void TearDownTestSuite() {
    if (rowguard_) rowguard_->stop();
    rowguard_.reset();
    setup_error_.clear();
  }

  void SetUp() override {
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
    ASSERT_TRUE(rowguard_->running()) << "rowguard is not running any more; log:\n"
                                      << tail_lines(rowguard_->log(), 60);
  }

  void TearDown() override {
    if (!setup_error_.empty()) return;
    if (HasFailure()) std::cerr << "--- rowguard log (tail) ---\n" << tail_lines(rowguard_->log(), 40) << "---\n";
    std::string now = snapshot();
    EXPECT_EQ(now, baseline_) << "the example data changed: a stack program left rows behind or a write "
                                 "that should have been stopped got through";
    if (now != baseline_) pg_->load_example_schema();
  }

  // All example data as the superuser sees it.
  static std::string snapshot() {
    return super("TABLE orders ORDER BY id") + super("TABLE customers ORDER BY id") +
           super("TABLE countries ORDER BY code") + super("SELECT count(*) FROM audit_log");
  }

  static std::string super(const std::string& sql) {
    CommandResult r = pg_->psql_super(sql, "appdb");
    if (r.exit_code != 0) ADD_FAILURE() << "superuser query failed: " << sql << "\n" << describe(r);
    return r.out;
  }

  // Runs argv with ROWGUARD_HOST/PORT/DB (and env) in its environment; collects rowguard's
  // denials of the run, and writes every statement rowguard forwarded or denied meanwhile (its
  // debug log: the client's text before the rewrite) to <stacks dir>/<name>.statements.log.
  static StackRun run_stack(const std::string& name, const std::vector<std::string>& argv,
                            const std::map<std::string, std::string>& env = {}, int timeout_seconds = 120) {
    StackRun run;
    const size_t log_before = rowguard_->log().size();
    std::map<std::string, std::string> full_env = {{"ROWGUARD_HOST", rowguard_->host()},
                                                   {"ROWGUARD_PORT", std::to_string(rowguard_->port())},
                                                   {"ROWGUARD_DB", "appdb"}};
    for (const auto& [k, v] : env) full_env[k] = v;
    run.result = run_command(argv, full_env, "", timeout_seconds);
    const std::string log = rowguard_->log();
    std::string statements;
    for (const auto& line : lines_of(log.substr(std::min(log_before, log.size())))) {
      if (contains(line, " denied ") || contains(line, " closing: ")) run.log_lines.push_back(line);
      if (contains(line, " forward: ") || contains(line, " denied ")) statements += line + "\n";
    }
    write_text_file(stacks_dir() + "/" + name + ".statements.log", statements);
    return run;
  }

  // The program's checks all passed (exit code 0, no FAIL line, at least one ok line).
  static void expect_passed(const StackRun& run) {
    EXPECT_EQ(run.result.exit_code, 0) << run.report();
    EXPECT_TRUE(run.lines_starting("FAIL ").empty()) << run.report();
    EXPECT_GE(run.lines_starting("ok ").size(), 10u) << run.report();
    EXPECT_TRUE(contains(run.result.out, "all checks passed")) << run.report();
  }

  static PgServer* pg_;
  static std::unique_ptr<RowguardProcess> rowguard_;
  static std::string setup_error_;
  static std::string baseline_;
};

PgServer* StacksE2e::pg_ = nullptr;
std::unique_ptr<RowguardProcess> StacksE2e::rowguard_;
std::string StacksE2e::setup_error_;
std::string StacksE2e::baseline_;

// A program in PATH, or "" with why_not set.
std::string find_program(const std::string& name, const std::string& packages, std::string& why_not) {
  CommandResult r = run_command({"sh", "-c", "command -v " + name}, {}, "", 30);
  if (r.exit_code == 0 && !r.out.empty()) return lines_of(r.out).front();
  why_not = name + " is not installed: run scripts/deps (Debian " + packages + ")";
  return "";
}

// --- Ruby pg -------------------------------------------------------------------------------------

class RubyPgE2e : public StacksE2e {};

TEST_F(RubyPgE2e, ExecParamsPreparedTwoTenants) {
  std::string why_not;
  const std::string ruby = find_program("ruby", "ruby-pg", why_not);
  ASSERT_FALSE(ruby.empty()) << why_not;
  CommandResult has_pg = run_command({ruby, "-e", "require 'pg'"}, {}, "", 30);
  ASSERT_EQ(has_pg.exit_code, 0) << "Ruby's pg gem is missing: run scripts/deps (Debian ruby-pg)\n" << describe(has_pg);
  expect_passed(run_stack("ruby_pg", {ruby, drivers_dir() + "/ruby_pg_test.rb"}));
}

// --- PHP PDO pgsql -------------------------------------------------------------------------------

class PhpPdoE2e : public StacksE2e, public ::testing::WithParamInterface<std::string> {};

TEST_P(PhpPdoE2e, PreparesTwoTenants) {
  std::string why_not;
  const std::string php = find_program("php", "php-cli php-pgsql", why_not);
  ASSERT_FALSE(php.empty()) << why_not;
  CommandResult has_pdo = run_command({php, "-r", "exit(in_array('pgsql', PDO::getAvailableDrivers()) ? 0 : 1);"}, {}, "", 30);
  ASSERT_EQ(has_pdo.exit_code, 0) << "PHP's PDO pgsql driver is missing: run scripts/deps (Debian php-pgsql)\n"
                                  << describe(has_pdo);
  expect_passed(run_stack("php_pdo_" + GetParam(), {php, drivers_dir() + "/php_pdo_test.php", GetParam()}));
}

INSTANTIATE_TEST_SUITE_P(Prepares, PhpPdoE2e, ::testing::Values("emulated", "native"),
                         [](const auto& info) { return info.param; });

// --- Laravel (Illuminate\Database) ---------------------------------------------------------------

// Illuminate\Database 8.83 (Debian php-illuminate-database, under /usr/share/php, loaded by its
// autoload.php) over PDO pgsql: query builder, Eloquent, transactions, with the connection's PDO
// option ATTR_EMULATE_PREPARES on and off.
class LaravelE2e : public StacksE2e, public ::testing::WithParamInterface<std::string> {};

TEST_P(LaravelE2e, QueryBuilderEloquentTwoTenants) {
  std::string why_not;
  const std::string php = find_program("php", "php-cli php-pgsql php-illuminate-database", why_not);
  ASSERT_FALSE(php.empty()) << why_not;
  CommandResult has_laravel = run_command(
      {php, "-r",
       "require_once 'Illuminate/Database/autoload.php';"
       "exit(class_exists('Illuminate\\Database\\Capsule\\Manager') && class_exists('Illuminate\\Database\\Eloquent\\Model')"
       " && in_array('pgsql', PDO::getAvailableDrivers()) ? 0 : 1);"},
      {}, "", 30);
  ASSERT_EQ(has_laravel.exit_code, 0)
      << "Laravel's Illuminate\\Database or PHP's PDO pgsql driver is missing: run scripts/deps (Debian "
         "php-illuminate-database php-pgsql)\n"
      << describe(has_laravel);
  expect_passed(run_stack("laravel_" + GetParam(), {php, drivers_dir() + "/laravel_test.php", GetParam()}));
}

INSTANTIATE_TEST_SUITE_P(Prepares, LaravelE2e, ::testing::Values("emulated", "native"),
                         [](const auto& info) { return info.param; });

// --- Go pgx v4 -----------------------------------------------------------------------------------

// Builds tests/e2e/drivers/pgx_v4.go into <stacks dir>/go/pgx_v4 unless that binary is newer than
// the source: offline, from Debian's Go sources (GOPATH=/usr/share/gocode, GO111MODULE=off, no
// module proxy). Returns the binary, or "" with why_not set.
std::string build_pgx_program(std::string& why_not) {
  const std::string source = drivers_dir() + "/pgx_v4.go";
  const std::string dir = stacks_dir() + "/go";
  const std::string binary = dir + "/pgx_v4";
  if (mtime_ns(binary) > mtime_ns(source)) return binary;
  const std::string go = find_program("go", "golang-go", why_not);
  if (go.empty()) return "";
  if (!file_exists("/usr/share/gocode/src/github.com/jackc/pgx/v4/conn.go")) {
    why_not = "Debian's pgx v4 sources are missing: run scripts/deps (Debian golang-github-jackc-pgx-v4-dev)";
    return "";
  }
  make_dirs(dir);
  CommandResult built = run_command({go, "build", "-o", binary + ".tmp", source},
                                    {{"GOPATH", "/usr/share/gocode"},
                                     {"GO111MODULE", "off"},
                                     {"GOFLAGS", ""},
                                     {"GOPROXY", "off"},
                                     {"GOTOOLCHAIN", "local"},
                                     {"GOENV", "off"},
                                     {"GOCACHE", dir + "/cache"}},
                                    "", 300);
  if (built.exit_code != 0 || ::rename((binary + ".tmp").c_str(), binary.c_str()) != 0) {
    why_not = "go build of " + source + " failed (run scripts/deps: golang-go golang-github-jackc-pgx-v4-dev)\n" +
              describe(built);
    return "";
  }
  return binary;
}

class GoPgxE2e : public StacksE2e {};

TEST_F(GoPgxE2e, PreparedBatchTwoTenants) {
  std::string why_not;
  const std::string binary = build_pgx_program(why_not);
  ASSERT_FALSE(binary.empty()) << why_not;
  expect_passed(run_stack("go_pgx", {binary}));
}

// --- C++ libpqxx ---------------------------------------------------------------------------------

class LibpqxxE2e : public StacksE2e {};

TEST_F(LibpqxxE2e, PreparedTransactorsTwoTenants) {
#ifdef ROWGUARD_LIBPQXX_CLIENT
  expect_passed(run_stack("libpqxx", {ROWGUARD_LIBPQXX_CLIENT}));
#else
  FAIL() << "libpqxx was not found by pkg-config when the build was configured, so "
            "tests/e2e/drivers/libpqxx_test.cc was not built: run scripts/deps (Debian libpqxx-dev) and "
            "configure again";
#endif
}

// --- npm: Sequelize, Knex, TypeORM over node-pg --------------------------------------------------

// <stacks dir>/node_orms/node_modules with the exact packages of tests/e2e/drivers/node_orms
// (package.json + package-lock.json, `npm ci`), installed once per build tree and again when the
// lock file changes. "" with why_not set when npm fails.
std::string node_orms_path(std::string& why_not) {
  const std::string src = drivers_dir() + "/node_orms";
  const std::string dir = stacks_dir() + "/node_orms";
  const std::string lock = read_text_file(src + "/package-lock.json");
  if (lock.empty()) {
    why_not = src + "/package-lock.json is missing";
    return "";
  }
  if (read_text_file(dir + "/installed-lock.json") == lock && file_exists(dir + "/node_modules")) return dir + "/node_modules";
  if (find_program("npm", "nodejs (with npm)", why_not).empty()) return "";
  remove_tree(dir);
  make_dirs(dir);
  write_text_file(dir + "/package.json", read_text_file(src + "/package.json"));
  write_text_file(dir + "/package-lock.json", lock);
  CommandResult npm = run_command({"npm", "ci", "--prefix", dir, "--no-audit", "--no-fund", "--loglevel=error"}, {}, "", 300);
  if (npm.exit_code != 0) {
    why_not = "`npm ci` of tests/e2e/drivers/node_orms failed (run scripts/deps: nodejs with npm; the npm registry "
              "must be reachable once per build tree):\n" + describe(npm);
    return "";
  }
  write_text_file(dir + "/installed-lock.json", lock);
  return dir + "/node_modules";
}

// One run of an npm stack script: the script and its arguments.
struct NodeOrmRun {
  std::string name;  // the test's name and the statements log's
  std::vector<std::string> args;
};
void PrintTo(const NodeOrmRun& run, std::ostream* os) { *os << run.name; }

class NodeOrmE2e : public StacksE2e, public ::testing::WithParamInterface<NodeOrmRun> {
 protected:
  // Runs the script once per test binary (its output is shared with the known-gap tests).
  static const StackRun& node_run(const NodeOrmRun& what) {
    auto it = runs_.find(what.name);
    if (it != runs_.end()) return it->second;
    std::string why_not;
    const std::string node = find_program("node", "nodejs", why_not);
    const std::string node_path = node.empty() ? "" : node_orms_path(why_not);
    if (node_path.empty()) {
      StackRun missing;
      missing.result.exit_code = -1;
      missing.result.err = why_not;
      return runs_.emplace(what.name, missing).first->second;
    }
    std::vector<std::string> argv = {node, drivers_dir() + "/" + what.args.front()};
    argv.insert(argv.end(), what.args.begin() + 1, what.args.end());
    return runs_.emplace(what.name, run_stack(what.name, argv, {{"NODE_PATH", node_path}})).first->second;
  }
  static std::map<std::string, StackRun> runs_;
};
std::map<std::string, StackRun> NodeOrmE2e::runs_;

TEST_P(NodeOrmE2e, TwoTenants) {
  const StackRun& run = node_run(GetParam());
  ASSERT_NE(run.result.exit_code, -1) << run.result.err;
  expect_passed(run);
}

INSTANTIATE_TEST_SUITE_P(Npm, NodeOrmE2e,
                         ::testing::Values(NodeOrmRun{"sequelize_keep_default_timezone",
                                                      {"sequelize_test.js", "keep-default-timezone"}},
                                           NodeOrmRun{"knex", {"knex_test.js"}},
                                           NodeOrmRun{"typeorm", {"typeorm_test.js"}}),
                         [](const auto& info) { return info.param.name; });

// Sequelize with its defaults sends "SET client_min_messages TO warning;SET TIME ZONE INTERVAL
// '+00:00' HOUR TO MINUTE;" on every new connection: harmless session setup that must be allowed
// (issue #18 item 1). Npm/NodeOrmE2e.TwoTenants/sequelize_keep_default_timezone runs the same
// checks with keepDefaultTimezone: true, which leaves the SET TIME ZONE out. A suite of its own so
// that its state does not hide the other npm stacks'.
class NodeOrmSessionSetupE2e : public NodeOrmE2e {};

TEST_F(NodeOrmSessionSetupE2e, SequelizeDefaults) {
  const StackRun& run = node_run(NodeOrmRun{"sequelize", {"sequelize_test.js"}});
  ASSERT_NE(run.result.exit_code, -1) << run.result.err;
  for (const auto& l : run.log_lines)
    if (contains(l, "| statement: SET client_min_messages TO warning;SET TIME ZONE INTERVAL"))
      ADD_FAILURE() << "rowguard refused Sequelize's session setup at connect (issue #18 item 1):\n  " << l;
  expect_passed(run);
}

class TypeormTenantDefaultE2e : public NodeOrmE2e {};

// A TypeORM entity that maps the tenant column as an ordinary column and leaves it undefined sends
// INSERT INTO "orders"("id", "tenant_id", ...) VALUES ($1, DEFAULT, ...): rowguard puts the session
// tenant in DEFAULT's place, as when the column is left out (it used to refuse it; the mapping
// { insert: false, update: false } of typeorm_test.js's Order was the workaround).
TEST_F(TypeormTenantDefaultE2e, InsertDefaultForTheTenantColumnGetsTheSessionTenant) {
  const StackRun& run = node_run(NodeOrmRun{"typeorm", {"typeorm_test.js"}});
  ASSERT_NE(run.result.exit_code, -1) << run.result.err;
  const std::string check = "insert with the tenant column mapped but undefined (VALUES (..., DEFAULT, ...))";
  EXPECT_FALSE(run.lines_starting("ok " + check).empty()) << run.report();
  EXPECT_TRUE(run.lines_starting("UNSUPPORTED " + check).empty()) << run.report();
}

}  // namespace
}  // namespace rowguard::testing
