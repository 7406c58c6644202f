// The session's model of the server's protocol state (proxy/session/session_server.cc) against
// a real PostgreSQL 15: seeded random sequences of extended and simple messages, with errors
// (a failing Parse, a Bind to a missing statement, division by zero at Bind or Execute, a
// Query inside an unsynced batch, Close, Describe, Flush, Sync), go through TenantSession and
// straight to the server; every answer of the server goes back through the session. The model
// must never close the session, must be idle after each round, and must hold exactly the
// prepared statements the server lists in pg_prepared_statements.
#include <gtest/gtest.h>

#include <random>
#include <set>
#include <string>

#include "policy/policy.h"
#include "proxy/protocol/codec.h"
#include "proxy/session/session.h"
#include "sqlrewrite/rewrite_cache.h"
#include "tests/support/pg_server.h"
#include "tests/support/raw_pq.h"

namespace rowguard {
namespace {

namespace raw = testing::raw;

const char* kPolicy = R"(
[proxy]
listen = "127.0.0.1:6432"
upstream = "127.0.0.1:5432"
upstream_user = "app"
[tenancy]
default_column = "tenant_id"
[[tenants]]
user = "t1"
password = "pw1"
tenant = "1"
)";

class ModelRun {
 public:
  explicit ModelRun(uint32_t seed) : rng_(seed), session_("1", cache_, "abcdef012345") {
    policy_ = policy::parse_policy(kPolicy, "test");
    auto& pg = testing::PgServer::shared();
    wire_ = raw::Wire::connect_trust(pg.socket_dir(), pg.port(), "postgres", "postgres");
  }

  bool connected() const { return wire_ != nullptr; }
  int errors = 0;                  // ErrorResponses seen (the runs must exercise skipping)
  int rounds_with_statements = 0;  // rounds after which the server held named statements

  // One round: random messages, Sync, and a Query that marks the end.
  void round(int n) {
    std::string out;
    const int count = pick(0, 8);
    for (int i = 0; i < count; ++i) out += client(random_message());
    out += client(raw::sync());
    const std::string end = "SELECT 'end-" + std::to_string(n) + "'";
    out += client(raw::query(end));
    ASSERT_TRUE(wire_->send(out));
    // Until the ReadyForQuery after the end marker's row.
    bool seen_end = false;
    for (;;) {
      auto m = wire_->read();
      ASSERT_TRUE(m.has_value()) << "the server stopped answering; sent " << log_;
      std::string bytes = m->bytes();
      const protocol::FrameResult f = protocol::decode_frame(bytes, 1 << 30);
      ASSERT_EQ(f.status, protocol::DecodeStatus::kComplete);
      std::string to_client;
      session::ServerStep st = session_.on_server_message(f.frame, bytes, to_client);
      ASSERT_FALSE(st.close) << st.reason << "; sent: " << log_ << "; answer " << m->tag;
      if (m->tag == 'E') ++errors;
      if (m->tag == 'D' && m->body.find("end-" + std::to_string(n)) != std::string::npos) seen_end = true;
      if (m->tag == 'Z' && seen_end) break;
    }
    EXPECT_TRUE(session_.idle()) << log_;
    EXPECT_TRUE(session_.at_boundary()) << log_;
    EXPECT_FALSE(session_.server_skipping()) << log_;
    check_statements();
    log_.clear();
  }

 private:
  int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

  std::string name() {
    static const std::vector<std::string> kNames = {"", "a", "b", std::string(63, 'n') + "_x",
                                                    std::string(63, 'n') + "_y"};
    return kNames[static_cast<size_t>(pick(0, static_cast<int>(kNames.size()) - 1))];
  }

  std::string random_message() {
    static const std::vector<std::string> kTexts = {
        "SELECT 1", "SELECT $1::int", "SELECT 1/0", "SELECT 1/(x - x) FROM (SELECT $1::int AS x) s",
        "SELEC nonsense", "SELECT generate_series(1, 3)",
    };
    const std::string text = kTexts[static_cast<size_t>(pick(0, static_cast<int>(kTexts.size()) - 1))];
    const std::string portal = pick(0, 1) ? "" : "p";
    switch (pick(0, 11)) {
      case 0:
      case 1:
        return raw::parse(name(), text);
      case 2:
      case 3: {
        std::vector<std::optional<std::string>> params;
        if (pick(0, 3) > 0) params.emplace_back("7");
        return raw::bind(portal, name(), params);
      }
      case 4:
      case 5:
        return raw::execute(portal, pick(0, 1));
      case 6:
        return raw::describe(pick(0, 1) ? 'S' : 'P', pick(0, 1) ? name() : portal);
      case 7:
        return raw::close(pick(0, 1) ? 'S' : 'P', pick(0, 1) ? name() : portal);
      case 8:
        return raw::sync();
      case 9:
        return raw::flush();
      case 10: {
        static const std::vector<std::string> kQueries = {"SELECT 2", "SELECT 1/0", "PREPARE a AS SELECT 1",
                                                          "DEALLOCATE a", "PREPARE b AS SELECT $1::int",
                                                          "DEALLOCATE b", "EXECUTE b(7)", "DROP TABLE t"};
        return raw::query(kQueries[static_cast<size_t>(pick(0, static_cast<int>(kQueries.size()) - 1))]);
      }
      default:
        return raw::query("SELECT 3");
    }
  }

  // The bytes rowguard forwards for `message`.
  std::string client(const std::string& message) {
    const protocol::FrameResult f = protocol::decode_frame(message, 1 << 30);
    EXPECT_EQ(f.status, protocol::DecodeStatus::kComplete);
    log_ += std::string(1, message[0]) + " ";
    const session::ClientStep& st = session_.on_client_message(f.frame, *policy_);
    EXPECT_FALSE(st.close) << log_;
    return st.to_server;
  }

  void check_statements() {
    // Straight to the server (not through the session: the model must not see it). The Query
    // drops the unnamed statement, as did the round's last Query, which the model saw.
    ASSERT_TRUE(wire_->send(raw::query("SELECT name FROM pg_prepared_statements ORDER BY name")));
    std::set<std::string> server;
    for (const auto& m : wire_->read_until_ready(1)) {
      if (m.tag != 'D') continue;
      const uint32_t len = (static_cast<unsigned char>(m.body[2]) << 24) | (static_cast<unsigned char>(m.body[3]) << 16) |
                           (static_cast<unsigned char>(m.body[4]) << 8) | static_cast<unsigned char>(m.body[5]);
      server.insert(m.body.substr(6, len));
    }
    EXPECT_EQ(session_.prepared_count(), server.size()) << log_;
    if (!server.empty()) ++rounds_with_statements;
    for (const std::string& n : {std::string("a"), std::string("b"), std::string(63, 'n') + "_x"}) {
      const std::string key = n.substr(0, 63);
      EXPECT_EQ(session_.has_statement(n), server.count(key) > 0) << "statement " << key << "; sent: " << log_;
    }
  }

  std::mt19937 rng_;
  sqlrewrite::RewriteCache cache_;
  session::TenantSession session_;
  policy::PolicyPtr policy_;
  std::unique_ptr<raw::Wire> wire_;
  std::string log_;
};

TEST(SessionModelAgainstServer, RandomSequencesKeepTheModelInStep) {
  for (uint32_t seed : {1u, 2u, 3u, 4u, 5u, 6u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    ModelRun run(seed);
    ASSERT_TRUE(run.connected());
    for (int n = 0; n < 60; ++n) {
      run.round(n);
      if (::testing::Test::HasFatalFailure() || ::testing::Test::HasNonfatalFailure()) return;
    }
    EXPECT_GT(run.errors, 20);
    EXPECT_GT(run.rounds_with_statements, 10);
  }
}

}  // namespace
}  // namespace rowguard
