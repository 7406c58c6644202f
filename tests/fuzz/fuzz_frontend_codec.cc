// Fuzz target: the frontend (client -> server) side of the wire codec.
//
// The input is a byte stream of regular messages. decode_frame splits it; each complete frame's
// body goes through every frontend body parser (parse_query, parse_parse, parse_bind,
// parse_target, parse_sasl_initial_response), whatever its tag. Properties (abort() otherwise):
//   * decode_frame: Complete only with 1 + length <= input size and 4 <= length <= max_len;
//     the frame's tag/body/size are exactly those bytes; every shorter prefix of a complete
//     frame is NeedMore (incremental decoding); a max_len below the length is Malformed;
//   * every parser that accepts a body gives back exactly that body when re-encoded (with the
//     codec's encoder where one exists: append_query / append_parse / append_bind_empty /
//     append_password / append_sasl_initial_response / append_sasl_response; otherwise with an
//     encoder written here from the protocol documentation), and the re-encoded frame decodes
//     and re-parses to the same values;
//   * check_tenant_param (the Bind check of tenant parameters) accepts a value only when it
//     is the tenant.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/protocol/codec.h"
#include "proxy/session/session.h"

namespace {

namespace protocol = rowguard::protocol;
constexpr size_t kMaxLen = size_t{1} << 20;

[[noreturn]] void fail(const std::string& why, std::string_view frame) {
  std::fprintf(stderr, "\n==== fuzz_frontend_codec: INVARIANT VIOLATION ====\n%s\nframe (%zu bytes):",
               why.c_str(), frame.size());
  for (size_t i = 0; i < frame.size() && i < 512; ++i) {
    std::fprintf(stderr, "%s%02x", i % 32 ? " " : "\n  ", static_cast<unsigned char>(frame[i]));
  }
  std::fprintf(stderr, "\n");
  std::fflush(stderr);
  std::abort();
}

void be32(std::string& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>((v >> s) & 0xff));
}
void be16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xff));
}
uint32_t rd32(std::string_view s, size_t at) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return v;
}

// The one frame an encoder appended; checks it decodes completely and returns its body.
std::string_view single_frame(const std::string& enc, char tag, std::string_view orig) {
  auto r = protocol::decode_frame(enc, kMaxLen * 2);
  if (r.status != protocol::DecodeStatus::kComplete || r.frame.size != enc.size() || r.frame.tag != tag) {
    fail("an encoder's output is not exactly one complete frame", orig);
  }
  return r.frame.body;
}

// Bind, encoded from the protocol documentation (the codec has no general Bind encoder).
std::string encode_bind_body(const protocol::BindMessage& m) {
  std::string b;
  b.append(m.portal).push_back('\0');
  b.append(m.statement).push_back('\0');
  be16(b, static_cast<uint16_t>(m.param_formats.size()));
  for (int16_t f : m.param_formats) be16(b, static_cast<uint16_t>(f));
  be16(b, static_cast<uint16_t>(m.params.size()));
  for (const auto& p : m.params) {
    if (!p) {
      be32(b, 0xffffffffu);
    } else {
      be32(b, static_cast<uint32_t>(p->size()));
      b.append(*p);
    }
  }
  be16(b, static_cast<uint16_t>(m.result_formats.size()));
  for (int16_t f : m.result_formats) be16(b, static_cast<uint16_t>(f));
  return b;
}

void check_body(char tag, std::string_view body, std::string_view frame) {
  if (auto q = protocol::parse_query(body)) {
    if (q->find('\0') != std::string_view::npos || std::string(*q) + '\0' != body) fail("parse_query is lossy", frame);
    std::string enc;
    protocol::append_query(enc, *q);
    if (single_frame(enc, 'Q', frame) != body) fail("append_query(parse_query(body)) != body", frame);
    if (protocol::parse_query(single_frame(enc, 'Q', frame)) != q) fail("Query round trip", frame);
    std::string pw;
    protocol::append_password(pw, *q);
    if (single_frame(pw, 'p', frame) != body) fail("append_password(cstring body) != body", frame);
    if (tag == 'Q' && enc != frame) fail("re-encoded Query differs from the input frame", frame);
  }
  if (auto m = protocol::parse_parse(body)) {
    std::string enc;
    protocol::append_parse(enc, m->statement, m->query, m->param_types);
    std::string_view eb = single_frame(enc, 'P', frame);
    if (eb != body) fail("append_parse(parse_parse(body)) != body", frame);
    auto again = protocol::parse_parse(eb);
    if (!again || again->statement != m->statement || again->query != m->query ||
        again->param_types != m->param_types) {
      fail("Parse round trip", frame);
    }
    if (m->param_types.size() > 65535) fail("more than 65535 parameter types", frame);
  }
  if (auto m = protocol::parse_bind(body)) {
    if (encode_bind_body(*m) != body) fail("parse_bind is lossy (re-encoding differs)", frame);
    if (m->param_formats.size() > 1 && m->param_formats.size() != m->params.size()) {
      fail("parse_bind accepted a format count that is neither 0, 1 nor the parameter count", frame);
    }
    for (int16_t f : m->param_formats) if (f != 0 && f != 1) fail("bad param format accepted", frame);
    for (int16_t f : m->result_formats) if (f != 0 && f != 1) fail("bad result format accepted", frame);
    if (m->params.empty() && m->param_formats.empty() && m->result_formats.empty()) {
      std::string enc;
      protocol::append_bind_empty(enc, m->portal, m->statement);
      if (single_frame(enc, 'B', frame) != body) fail("append_bind_empty differs", frame);
    }
    // The Bind check of tenant parameters: "" only for the tenant itself.
    static const int32_t kOids[] = {0, 20, 21, 23, 25, 1042, 1043, 2950, 16, 701};
    for (size_t i = 0; i < m->params.size() && i < 8; ++i) {
      const int16_t format = m->format_of(i);
      for (int32_t oid : kOids) {
        const std::string why = rowguard::session::check_tenant_param(m->params[i], format, oid, "1", static_cast<int>(i + 1));
        if (!why.empty()) continue;
        const auto& v = *m->params[i];  // accepted: not NULL
        bool tenant = false;
        if (format == 0 || oid == 25 || oid == 1042 || oid == 1043) {
          tenant = v == "1";
        } else if (oid == 20 || oid == 21 || oid == 23) {
          // big-endian two's complement equal to 1
          tenant = !v.empty() && static_cast<unsigned char>(v.back()) == 1;
          for (size_t k = 0; k + 1 < v.size(); ++k) tenant = tenant && v[k] == 0;
        }
        if (!tenant) fail("check_tenant_param accepted a value that is not the tenant (oid " + std::to_string(oid) + ")", frame);
      }
    }
  }
  if (auto t = protocol::parse_target(body)) {
    std::string b(1, t->kind);
    b.append(t->name).push_back('\0');
    if (b != body || (t->kind != 'S' && t->kind != 'P')) fail("parse_target is lossy", frame);
  }
  if (auto s = protocol::parse_sasl_initial_response(body)) {
    const size_t after = s->mechanism.size() + 1;
    const bool null_data = body.size() >= after + 4 && rd32(body, after) == 0xffffffffu;
    std::string enc;
    protocol::append_sasl_initial_response(enc, s->mechanism, s->data);
    std::string_view eb = single_frame(enc, 'p', frame);
    if (null_data) {
      if (!s->data.empty() || body.size() != after + 4) fail("SASLInitialResponse with length -1", frame);
    } else if (eb != body) {
      fail("append_sasl_initial_response(parse(body)) != body", frame);
    }
    auto again = protocol::parse_sasl_initial_response(eb);
    if (!again || again->mechanism != s->mechanism || again->data != s->data) fail("SASLInitialResponse round trip", frame);
  }
  // SASLResponse: the body is the payload.
  std::string enc;
  protocol::append_sasl_response(enc, body);
  if (single_frame(enc, 'p', frame) != body) fail("append_sasl_response round trip", frame);
  if (tag == 'p' && enc != frame) fail("re-encoded SASLResponse differs from the input frame", frame);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t pos = 0;
  while (pos < in.size()) {
    const std::string_view rest = in.substr(pos);
    auto r = protocol::decode_frame(rest, kMaxLen);
    if (rest.size() < 5) {
      if (r.status != protocol::DecodeStatus::kNeedMore) fail("fewer than 5 bytes is not NeedMore", rest);
      break;
    }
    const uint32_t length = rd32(rest, 1);
    if (length < 4 || length > kMaxLen) {
      if (r.status != protocol::DecodeStatus::kMalformed || r.error.empty()) fail("bad length not Malformed", rest);
      break;
    }
    if (rest.size() < size_t{1} + length) {
      if (r.status != protocol::DecodeStatus::kNeedMore) fail("truncated frame not NeedMore", rest);
      break;
    }
    if (r.status != protocol::DecodeStatus::kComplete) fail("valid frame not Complete: " + r.error, rest);
    const auto& f = r.frame;
    if (f.size != size_t{1} + length || f.tag != rest[0] || f.body.data() != rest.data() + 5 ||
        f.body.size() != length - 4) {
      fail("frame fields do not match the bytes", rest);
    }
    const std::string_view frame = rest.substr(0, f.size);
    // Incremental decoding: every strict prefix needs more bytes.
    for (size_t cut : {size_t{0}, size_t{4}, size_t{5}, f.size / 2, f.size - 1}) {
      if (cut < f.size && protocol::decode_frame(frame.substr(0, cut), kMaxLen).status != protocol::DecodeStatus::kNeedMore) {
        fail("prefix of " + std::to_string(cut) + " bytes is not NeedMore", frame);
      }
    }
    if (length > 4 && protocol::decode_frame(frame, length - 1).status != protocol::DecodeStatus::kMalformed) {
      fail("length above max_len is not Malformed", frame);
    }
    check_body(f.tag, f.body, frame);
    pos += f.size;
  }
  return 0;
}
