// rowguard: a PostgreSQL proxy that enforces tenant isolation.
//   rowguard --config FILE [--log-level LEVEL]
#include <spdlog/spdlog.h>

#include <sys/resource.h>
#include <termios.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <iostream>
#include <string>

#include "policy/policy.h"
#include "auth/scram.h"
#include "proxy/net/server.h"
#include "policy/rls_sql.h"
#include "proxy/tools/backstop_check.h"
#include "proxy/tools/check_upstream.h"
#include "sqlrewrite/rewriter.h"

namespace {

constexpr const char* kUsage = R"(rowguard - tenant isolation for PostgreSQL, as a wire-protocol proxy

Usage:
  rowguard --config FILE [--log-level LEVEL]     run the proxy
  rowguard check FILE [--against URL]            validate a policy file and exit; with --against
                                                 (a libpq connection string or URL), also check that
                                                 every table and tenant column exists upstream
  rowguard passwd USER                           print a SCRAM-SHA-256 verifier (password on stdin)
  rowguard explain --config FILE --tenant T SQL  print the rewritten SQL or the denial
  rowguard rls-sql --config FILE [--type TYPE]   print PostgreSQL RLS policies mirroring the policy
                                                 ([tenancy] backstop = "rls"); TYPE: the tenant
                                                 columns' SQL type (default: compare as text)
  rowguard --help | --version

Options:
  -c, --config FILE      the policy file (TOML): [proxy], [tenancy], [[tenants]], [[bypass]], [tables."schema.table"]
  -l, --log-level LEVEL  trace, debug, info (default), warn, error
  -h, --help             this text
  -V, --version          the version

Signals: SIGHUP reloads the policy file (a bad file is rejected and the old policy kept);
SIGINT/SIGTERM stop gracefully.

Admin console: psql "host=... port=... user=<a [[bypass]] user> dbname=rowguard", then SHOW HELP.
)";

}  // namespace

// rowguard explain: what a tenant's statement becomes, for reviewing an application's queries.
int explain(const std::string& config, const std::string& tenant, const std::string& sql) {
  rowguard::policy::PolicyPtr policy;
  try {
    policy = rowguard::policy::load_policy(config);
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  auto r = rowguard::sqlrewrite::rewrite(sql, *policy, tenant);
  if (!r.allowed) {
    std::cout << "DENIED (42501): " << r.reason << "\n";
    return 3;
  }
  std::cout << r.sql << "\n";
  return 0;
}

// rowguard check FILE [--against URL]: exit 0 when valid (warnings allowed), 1 on any error.
int check(const std::string& file, const std::string& against) {
  rowguard::policy::PolicyPtr p;
  try {
    p = rowguard::policy::load_policy(file);
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  std::cout << file << ": OK (" << p->logins.size() << " users, " << p->tables.size() << " tables)\n";
  if (against.empty()) return 0;
  auto r = rowguard::tools::check_against(*p, against);
  if (!r.connect_error.empty()) {
    std::cerr << "error: cannot connect to the upstream database: " << r.connect_error << "\n";
    return 1;
  }
  for (const auto& w : r.warnings) std::cout << "warning: " << w << "\n";
  for (const auto& e : r.errors) std::cerr << "error: " << e << "\n";
  if (!r.errors.empty()) {
    std::cerr << file << ": " << r.errors.size() << " error(s) against the upstream schema\n";
    return 1;
  }
  std::cout << file << ": every table and tenant column exists upstream (" << r.warnings.size()
            << " warning(s))\n";
  return 0;
}

// rowguard rls-sql: the RLS backstop's SQL (policy/rls_sql.h) on stdout.
int rls_sql(const std::string& config, const std::string& type) {
  rowguard::policy::PolicyPtr policy;
  try {
    policy = rowguard::policy::load_policy(config);
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  std::string error;
  auto sql = rowguard::policy::rls_sql(*policy, {.column_type = type}, error);
  if (!sql) {
    std::cerr << "rowguard rls-sql: " << error << "\n";
    return 2;
  }
  std::cout << *sql;
  return 0;
}

// [tenancy] backstop = "rls": refuse to start unless PostgreSQL enforces the same isolation
// (the operator asked for "a rewriter bug can deny more but never leak"; running without it
// would silently break that promise).
bool backstop_in_place(const rowguard::policy::Policy& policy) {
  if (policy.backstop != rowguard::policy::Backstop::kRls) return true;
  auto r = rowguard::tools::check_backstop(policy);
  for (const auto& w : r.warnings) spdlog::warn("backstop: {}", w);
  for (const auto& e : r.errors) spdlog::critical("backstop: {}", e);
  if (!r.errors.empty()) {
    spdlog::critical("[tenancy] backstop = \"rls\" but the RLS backstop is not in place upstream ({} problem(s)); "
                     "apply `rowguard rls-sql --config {}` as the tables' owner. Not starting.",
                     r.errors.size(), policy.source);
    return false;
  }
  spdlog::info("backstop: RLS policies in place on {} table(s)", policy.tables.size());
  return true;
}

// rowguard passwd USER: reads a password from stdin, prints a SCRAM-SHA-256 verifier.
int passwd(const std::string& user) {
  std::string password;
  bool tty = isatty(STDIN_FILENO);
  termios old{};
  if (tty) {
    std::cerr << "password for " << user << ": ";
    tcgetattr(STDIN_FILENO, &old);
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  }
  std::getline(std::cin, password);
  if (tty) {
    tcsetattr(STDIN_FILENO, TCSANOW, &old);
    std::cerr << "\n";
  }
  if (password.empty()) {
    std::cerr << "rowguard passwd: empty password\n";
    return 1;
  }
  auto v = rowguard::auth::ScramVerifier::from_password(password, rowguard::auth::random_bytes(16));
  std::cout << "# [[tenants]] or [[bypass]] entry for " << user << "\n";
  std::cout << "password = \"" << v.to_string() << "\"\n";
  return 0;
}

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "passwd") {
    if (argc != 3) {
      std::cerr << "usage: rowguard passwd USER   (reads the password from stdin)\n";
      return 2;
    }
    return passwd(argv[2]);
  }
  if (argc >= 2 && std::string(argv[1]) == "check") {
    std::string file, against;
    for (int i = 2; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "--against" && i + 1 < argc) {
        against = argv[++i];
      } else if (file.empty() && !a.starts_with("-")) {
        file = a;
      } else {
        file.clear();
        break;
      }
    }
    if (file.empty()) {
      std::cerr << "usage: rowguard check FILE [--against URL]\n";
      return 2;
    }
    return check(file, against);
  }
  if (argc >= 2 && std::string(argv[1]) == "rls-sql") {
    std::string config, type;
    for (int i = 2; i < argc; ++i) {
      std::string a = argv[i];
      if ((a == "--config" || a == "-c") && i + 1 < argc) {
        config = argv[++i];
      } else if (a == "--type" && i + 1 < argc) {
        type = argv[++i];
      } else {
        config.clear();
        break;
      }
    }
    if (config.empty()) {
      std::cerr << "usage: rowguard rls-sql --config FILE [--type TYPE]\n";
      return 2;
    }
    return rls_sql(config, type);
  }
  if (argc >= 2 && std::string(argv[1]) == "explain") {
    std::string config, tenant, sql;
    for (int i = 2; i < argc; ++i) {
      std::string a = argv[i];
      if ((a == "--config" || a == "-c") && i + 1 < argc) {
        config = argv[++i];
      } else if (a == "--tenant" && i + 1 < argc) {
        tenant = argv[++i];
      } else if (sql.empty() && !a.starts_with("-")) {
        sql = a;
      } else {
        std::cerr << "rowguard explain: unexpected argument \"" << a << "\"\n" << kUsage;
        return 2;
      }
    }
    if (config.empty() || tenant.empty() || sql.empty()) {
      std::cerr << "usage: rowguard explain --config FILE --tenant T \"SQL\"\n";
      return 2;
    }
    return explain(config, tenant, sql);
  }
  std::string config;
  std::string check_file;
  std::string level = "info";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* name) -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "rowguard: " << name << " needs a value\n" << kUsage;
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      return 0;
    } else if (a == "-V" || a == "--version") {
      std::cout << "rowguard " << ROWGUARD_VERSION << "\n";
      return 0;
    } else if (a == "-c" || a == "--config") {
      config = value("--config");
    } else if (a == "--check") {
      check_file = value("--check");
    } else if (a == "-l" || a == "--log-level") {
      level = value("--log-level");
    } else {
      std::cerr << "rowguard: unknown argument \"" << a << "\"\n" << kUsage;
      return 2;
    }
  }
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") {
    std::cerr << "rowguard: unknown log level \"" << level << "\"\n";
    return 2;
  }
  spdlog::set_level(lvl);
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ [%t] %v");

  if (!check_file.empty()) return check(check_file, "");
  if (config.empty()) {
    std::cerr << "rowguard: --config FILE is required\n" << kUsage;
    return 2;
  }
  rowguard::policy::PolicyPtr policy;
  try {
    policy = rowguard::policy::load_policy(config);
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
  if (!backstop_in_place(*policy)) return 1;
  std::signal(SIGPIPE, SIG_IGN);
  // Two descriptors per client (client and server socket): raise the soft open-file limit
  // to the hard one, so 1,000+ clients do not hit a default soft limit of 1024.
  if (rlimit nofile{}; ::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    rlim_t soft = nofile.rlim_cur;
    nofile.rlim_cur = nofile.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &nofile) != 0) nofile.rlim_cur = soft;
    spdlog::debug("open-file limit {} (was {})", static_cast<unsigned long long>(nofile.rlim_cur),
                  static_cast<unsigned long long>(soft));
  }
  rowguard::net::Server server(policy, config);
  return server.run();
}
