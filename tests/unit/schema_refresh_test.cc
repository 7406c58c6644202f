// The schema snapshot's plumbing without sockets: which bypass CommandComplete tags schedule a
// re-read (proxy/net/ddl_watch.h, through the FrameScanner as the bypass relay uses it), and the
// refresher's start-up read, retry after a failure and reads on request (with a fake reader).
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "proxy/net/ddl_watch.h"
#include "proxy/net/schema_refresher.h"
#include "proxy/protocol/codec.h"
#include "proxy/protocol/frame_scanner.h"

namespace rowguard::net {
namespace {

// What the bypass relay decides for the server bytes `stream`, fed in chunks of `chunk` bytes.
std::vector<bool> ddl_decisions(const std::string& stream, size_t chunk) {
  std::vector<bool> out;
  protocol::FrameScanner scanner(1 << 20);
  std::string data;
  for (size_t pos = 0; pos < stream.size(); pos += chunk) {
    data += stream.substr(pos, chunk);
    const size_t ok = scanner.feed(data, [&](char tag, char first) {
      if (tag != protocol::be::kCommandComplete) return;
      const size_t body = scanner.frame_length() - 4;
      const bool whole = scanner.frame_end() >= body;
      out.push_back(schema_changing_command(
          first, whole ? std::optional<std::string_view>(std::string_view(data).substr(scanner.frame_end() - body, body))
                       : std::nullopt));
    });
    data.erase(0, ok);
  }
  return out;
}

TEST(DdlWatch, CreateAlterDropTagsScheduleARead) {
  std::string stream;
  for (const char* tag : {"ALTER TABLE", "SELECT 3", "CREATE INDEX", "DELETE 2", "DROP TABLE", "COPY 5",
                          "CREATE FUNCTION", "ANALYZE", "DISCARD ALL"}) {
    protocol::append_frame(stream, protocol::be::kCommandComplete, std::string(tag) + '\0');
    protocol::append_frame(stream, protocol::be::kReadyForQuery, "I");
  }
  const std::vector<bool> want = {true, false, true, false, true, false, true, false, false};
  EXPECT_EQ(ddl_decisions(stream, stream.size()), want);
  // One byte at a time: a body split across reads counts when its first byte may start DDL.
  const std::vector<bool> split = ddl_decisions(stream, 1);
  ASSERT_EQ(split.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    if (want[i]) EXPECT_TRUE(split[i]) << i;  // never misses one
  }
  EXPECT_FALSE(split[1]);  // SELECT: 'S' never counts
}

// A fake upstream: the first read fails, later ones succeed; every install is recorded.
struct Recorder {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::shared_ptr<const policy::SchemaSnapshot>> installs;
  int reads = 0;

  bool wait_for(size_t n) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(20), [&] { return installs.size() >= n; });
  }
};

TEST(SchemaRefresher, StartsUnloadedRetriesAndRereadsOnRequest) {
  Recorder rec;
  auto policy = std::make_shared<const policy::Policy>();
  SchemaRefresher refresher(
      [&] { return policy; },
      [&](SchemaRefresher::Snapshot s) {
        std::lock_guard lock(rec.mu);
        rec.installs.push_back(std::move(s));
        rec.cv.notify_all();
      },
      [&](const policy::Policy&) {
        policy::SchemaSnapshot s;
        std::lock_guard lock(rec.mu);
        if (rec.reads++ == 0) {
          s.error = "connection refused";
        } else {
          s.loaded = true;
        }
        return s;
      });
  refresher.start();  // waits for the start-up read
  {
    std::lock_guard lock(rec.mu);
    ASSERT_EQ(rec.installs.size(), 1u);
    EXPECT_FALSE(rec.installs[0]->loaded);
    EXPECT_EQ(rec.installs[0]->error, "connection refused");
  }
  EXPECT_EQ(refresher.status().last_error, "connection refused");
  ASSERT_TRUE(rec.wait_for(2));  // the retry, about 1 s later
  {
    std::lock_guard lock(rec.mu);
    EXPECT_TRUE(rec.installs[1]->loaded);
  }
  refresher.request("DDL by bypass session 7");
  ASSERT_TRUE(rec.wait_for(3));
  SchemaStatus st = refresher.status();
  EXPECT_EQ(st.last_error, "");
  EXPECT_EQ(st.last_reason, "DDL by bypass session 7");
  EXPECT_EQ(st.reads, 2u);
  EXPECT_EQ(st.failures, 1u);
}

}  // namespace
}  // namespace rowguard::net
