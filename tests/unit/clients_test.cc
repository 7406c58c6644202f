// Unit tests for the admin console's client registry and the PAUSE gate (an io_context, no sockets).
#include "proxy/net/clients.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <memory>

namespace rowguard::net {
namespace {

TEST(ClientRegistry, StatesFollowTheSession) {
  ClientRegistry reg;
  auto tenant = std::make_shared<ClientInfo>(1, "127.0.0.1:1000");
  auto bypass = std::make_shared<ClientInfo>(2, "127.0.0.1:1001");
  reg.add(tenant);
  reg.add(bypass);
  auto rows = reg.snapshot();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].state, "login");
  EXPECT_EQ(rows[0].client, "127.0.0.1:1000");

  tenant->set_login("t1", std::string("1"), ClientInfo::Kind::kTenant);
  bypass->set_login("dba", std::nullopt, ClientInfo::Kind::kBypass);
  bypass->set_upstream("127.0.0.1:5432", "127.0.0.1:4000", "appdb", 99, false);
  rows = reg.snapshot();
  EXPECT_EQ(rows[0].state, "idle");
  EXPECT_EQ(rows[0].tx, 'I');
  EXPECT_EQ(rows[0].statements, 0u);
  EXPECT_FALSE(rows[0].upstream);
  EXPECT_EQ(rows[1].state, "relay");
  EXPECT_EQ(rows[1].tx, std::nullopt);
  EXPECT_TRUE(rows[1].upstream);
  EXPECT_EQ(rows[1].backend_pid, 99);
  EXPECT_EQ(reg.blocking_pause(), 0u);

  tenant->count_statement();
  tenant->set_tx('T', false);  // inside a transaction: a PAUSE must wait for it
  rows = reg.snapshot();
  EXPECT_EQ(rows[0].state, "active");
  EXPECT_EQ(rows[0].statements, 1u);
  EXPECT_EQ(reg.blocking_pause(), 1u);
  tenant->set_tx('I', true);  // between transactions but a batch in flight
  EXPECT_EQ(reg.blocking_pause(), 1u);
  tenant->set_tx('I', false);
  EXPECT_EQ(reg.blocking_pause(), 0u);

  reg.remove(1);
  rows = reg.snapshot();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].id, 2u);
}

TEST(PauseGate, HoldsASessionAtTheBoundaryUntilResume) {
  boost::asio::io_context ctx;
  PauseGate gate;
  ClientRegistry reg;
  auto info = std::make_shared<ClientInfo>(1, "c");
  info->set_login("t1", std::string("1"), ClientInfo::Kind::kTenant);
  reg.add(info);

  // Not paused: passes straight through, and counts as busy until its ReadyForQuery.
  int passed = 0;
  boost::asio::co_spawn(ctx, [&]() -> boost::asio::awaitable<void> {
    co_await gate.at_boundary(*info);
    ++passed;
  }, boost::asio::detached);
  ctx.run();
  EXPECT_EQ(passed, 1);
  EXPECT_EQ(reg.blocking_pause(), 1u);
  info->set_tx('I', false);

  gate.pause();
  ctx.restart();
  boost::asio::co_spawn(ctx, [&]() -> boost::asio::awaitable<void> {
    co_await gate.at_boundary(*info);
    ++passed;
  }, boost::asio::detached);
  ctx.run_for(std::chrono::milliseconds(200));
  EXPECT_EQ(passed, 1);  // still held
  EXPECT_EQ(reg.snapshot()[0].state, "paused");
  EXPECT_EQ(reg.blocking_pause(), 0u);  // a held session does not keep PAUSE waiting

  EXPECT_TRUE(gate.resume());
  EXPECT_FALSE(gate.resume());
  ctx.run();
  EXPECT_EQ(passed, 2);
  EXPECT_EQ(reg.snapshot()[0].state, "active");
}

}  // namespace
}  // namespace rowguard::net
