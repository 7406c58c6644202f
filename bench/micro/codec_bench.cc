// Micro benchmarks of the wire codec on the hottest server->client traffic: DataRow messages.
//   codec/decode_1000_datarows  decode_frame() over one buffer of 1000 DataRows, as the
//                               server_to_client loop of a tenant session walks a read buffer
//   codec/encode_1000_datarows  append_frame('D', body) x 1000 into one output string
//
// The row is a pgbench_accounts row with the tenant column (aid int, bid int, abalance int,
// filler char(84), tenant_id int) in text format: 5 columns, 123 bytes per message.
// items/s counts messages; bytes/s counts wire bytes.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <vector>

#include "proxy/protocol/codec.h"

namespace {

namespace proto = rowguard::protocol;

constexpr int kRows = 1000;
constexpr size_t kMaxLen = size_t{1} << 30;

void put_i16(std::string& s, int16_t v) {
  s.push_back(static_cast<char>((v >> 8) & 0xff));
  s.push_back(static_cast<char>(v & 0xff));
}
void put_i32(std::string& s, int32_t v) {
  for (int sh = 24; sh >= 0; sh -= 8) s.push_back(static_cast<char>((v >> sh) & 0xff));
}

// DataRow body: int16 column count, then per column int32 length + bytes.
std::string datarow_body(int i) {
  std::vector<std::string> cols = {std::to_string(100000 + i), std::to_string(1 + i % 10),
                                   std::to_string(-4000 + i), std::string(84, ' '),
                                   std::to_string(1 + i % 4)};
  std::string b;
  put_i16(b, static_cast<int16_t>(cols.size()));
  for (const auto& c : cols) {
    put_i32(b, static_cast<int32_t>(c.size()));
    b += c;
  }
  return b;
}

const std::vector<std::string>& bodies() {
  static const std::vector<std::string> kBodies = [] {
    std::vector<std::string> v;
    for (int i = 0; i < kRows; ++i) v.push_back(datarow_body(i));
    return v;
  }();
  return kBodies;
}

const std::string& wire() {
  static const std::string kWire = [] {
    std::string w;
    for (const auto& b : bodies()) proto::append_frame(w, proto::be::kDataRow, b);
    return w;
  }();
  return kWire;
}

void BM_decode_datarows(benchmark::State& state) {
  const std::string& buf = wire();
  // Setup check: the buffer decodes to exactly kRows complete DataRows and nothing else.
  {
    size_t pos = 0;
    int n = 0;
    for (;;) {
      auto r = proto::decode_frame(std::string_view(buf).substr(pos), kMaxLen);
      if (r.status != proto::DecodeStatus::kComplete) break;
      if (r.frame.tag != proto::be::kDataRow || r.frame.body != bodies()[n]) {
        state.SkipWithError("decode_frame returned a wrong frame");
        return;
      }
      pos += r.frame.size;
      ++n;
    }
    if (n != kRows || pos != buf.size()) {
      state.SkipWithError("decode_frame did not decode all 1000 DataRows");
      return;
    }
  }
  for (auto _ : state) {
    size_t pos = 0;
    size_t body_bytes = 0;
    for (;;) {
      auto r = proto::decode_frame(std::string_view(buf).substr(pos), kMaxLen);
      if (r.status != proto::DecodeStatus::kComplete) break;
      body_bytes += r.frame.body.size();
      pos += r.frame.size;
    }
    benchmark::DoNotOptimize(body_bytes);
  }
  state.SetItemsProcessed(state.iterations() * kRows);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(buf.size()));
  state.counters["msg_bytes"] = static_cast<double>(buf.size()) / kRows;
  state.SetLabel("decode_frame x1000 (one buffer)");
}
BENCHMARK(BM_decode_datarows)->Name("codec/decode_1000_datarows")->Unit(benchmark::kMicrosecond);

void BM_encode_datarows(benchmark::State& state) {
  const auto& b = bodies();
  std::string out;
  out.reserve(wire().size());
  proto::append_frame(out, proto::be::kDataRow, b[0]);
  if (std::string_view(out) != std::string_view(wire()).substr(0, out.size())) {
    state.SkipWithError("append_frame does not produce the expected bytes");
    return;
  }
  for (auto _ : state) {
    out.clear();  // keeps capacity, as a session's output buffer does
    for (const auto& body : b) proto::append_frame(out, proto::be::kDataRow, body);
    benchmark::DoNotOptimize(out.data());
  }
  if (out != wire()) state.SkipWithError("encoded buffer differs from the reference");
  state.SetItemsProcessed(state.iterations() * kRows);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(wire().size()));
  state.SetLabel("append_frame('D') x1000 (one buffer)");
}
BENCHMARK(BM_encode_datarows)->Name("codec/encode_1000_datarows")->Unit(benchmark::kMicrosecond);

}  // namespace
