// Fuzz target: the backend (server -> client) side of the wire codec.
//
// The input is a byte stream of regular messages. decode_frame splits it (same framing
// properties as fuzz_frontend_codec); each complete frame's body goes through every backend
// body parser (parse_ready_for_query, parse_authentication, parse_parameter_status,
// parse_backend_key_data, parse_error_fields), whatever its tag. Properties (abort() otherwise):
//   * an accepted body re-encodes to exactly the same bytes, with the codec's encoder where one
//     exists (append_ready_for_query, append_auth_ok / _cleartext / _sasl / _sasl_continue /
//     _sasl_final, append_parameter_status, append_backend_key_data, append_error_fields) and
//     otherwise (MD5 salt request, other auth codes) from the protocol documentation; the
//     re-encoded frame decodes and re-parses to the same values;
//   * append_error_response / append_notice_response with the parsed fields produce a message
//     that parse_error_fields reads back (S, V, C, M, D, H);
//   * FrameScanner (the bypass relay's framing), fed the stream in pieces as the relay does,
//     sees the same messages as decode_frame, consumes exactly the bytes of the messages whose
//     header is valid, and fails exactly where decode_frame says Malformed.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/protocol/codec.h"
#include "proxy/protocol/frame_scanner.h"

namespace {

namespace protocol = rowguard::protocol;
constexpr size_t kMaxLen = size_t{1} << 20;

[[noreturn]] void fail(const std::string& why, std::string_view frame) {
  std::fprintf(stderr, "\n==== fuzz_backend_codec: INVARIANT VIOLATION ====\n%s\nframe (%zu bytes):",
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
uint32_t rd32(std::string_view s, size_t at) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return v;
}

std::string_view single_frame(const std::string& enc, char tag, std::string_view orig) {
  auto r = protocol::decode_frame(enc, kMaxLen * 2);
  if (r.status != protocol::DecodeStatus::kComplete || r.frame.size != enc.size() || r.frame.tag != tag) {
    fail("an encoder's output is not exactly one complete frame", orig);
  }
  return r.frame.body;
}

bool same(const protocol::Authentication& a, const protocol::Authentication& b) {
  return a.code == b.code && a.data == b.data && a.mechanisms == b.mechanisms;
}

void check_body(char tag, std::string_view body, std::string_view frame) {
  if (auto z = protocol::parse_ready_for_query(body)) {
    std::string enc;
    protocol::append_ready_for_query(enc, z->status);
    if (single_frame(enc, 'Z', frame) != body) fail("ReadyForQuery round trip", frame);
    if (z->status != 'I' && z->status != 'T' && z->status != 'E') fail("bad transaction status accepted", frame);
  }
  if (auto a = protocol::parse_authentication(body)) {
    std::string enc;
    const auto code = static_cast<int32_t>(a->code);
    switch (a->code) {
      case protocol::AuthCode::kOk: protocol::append_auth_ok(enc); break;
      case protocol::AuthCode::kCleartextPassword: protocol::append_auth_cleartext(enc); break;
      case protocol::AuthCode::kSASL: protocol::append_auth_sasl(enc, a->mechanisms); break;
      case protocol::AuthCode::kSASLContinue: protocol::append_auth_sasl_continue(enc, a->data); break;
      case protocol::AuthCode::kSASLFinal: protocol::append_auth_sasl_final(enc, a->data); break;
      default: {  // MD5 (4-byte salt) and unsupported codes (payload kept): documented layout
        std::string b;
        be32(b, static_cast<uint32_t>(code));
        b += a->data;
        protocol::append_frame(enc, 'R', b);
        if (a->code == protocol::AuthCode::kMD5Password && a->data.size() != 4) fail("MD5 salt is not 4 bytes", frame);
        break;
      }
    }
    std::string_view eb = single_frame(enc, 'R', frame);
    if (eb != body) fail("Authentication (code " + std::to_string(code) + ") re-encodes differently", frame);
    auto again = protocol::parse_authentication(eb);
    if (!again || !same(*again, *a)) fail("Authentication round trip", frame);
    for (const auto& m : a->mechanisms) if (m.empty() || m.find('\0') != std::string::npos) fail("bad SASL mechanism name", frame);
  }
  if (auto p = protocol::parse_parameter_status(body)) {
    std::string enc;
    protocol::append_parameter_status(enc, p->name, p->value);
    if (single_frame(enc, 'S', frame) != body) fail("ParameterStatus round trip", frame);
  }
  if (auto k = protocol::parse_backend_key_data(body)) {
    std::string enc;
    protocol::append_backend_key_data(enc, k->pid, k->key);
    if (single_frame(enc, 'K', frame) != body) fail("BackendKeyData round trip", frame);
  }
  if (auto e = protocol::parse_error_fields(body)) {
    for (const char t : {'E', 'N'}) {
      std::string enc;
      protocol::append_error_fields(enc, t, *e);
      std::string_view eb = single_frame(enc, t, frame);
      if (eb != body) fail("append_error_fields(parse_error_fields(body)) != body", frame);
      if (t == tag && enc != frame) fail("re-encoded ErrorResponse differs from the input frame", frame);
    }
    for (const auto& [code, value] : e->fields) {
      if (code == '\0' || value.find('\0') != std::string::npos) fail("bad error field accepted", frame);
    }
    // The field getter returns the first occurrence.
    for (const auto& [code, value] : e->fields) {
      const std::string* first = nullptr;
      for (const auto& [c2, v2] : e->fields) {
        if (c2 == code) { first = &v2; break; }
      }
      if (e->get(code) != *first) fail("ErrorFields::get does not return the first field of that code", frame);
    }
    // Building an error from the fields reads back.
    const std::string sev = e->get('S'), state = e->get('C'), msg = e->get('M'), detail = e->get('D'),
                      hint = e->get('H');
    std::string enc;
    protocol::append_error_response(enc, sev, state, msg, detail, hint);
    auto back = protocol::parse_error_fields(single_frame(enc, 'E', frame));
    if (!back || back->get('S') != sev || back->get('V') != sev || back->get('C') != state ||
        back->get('M') != msg || back->get('D') != detail || back->get('H') != hint) {
      fail("append_error_response does not read back", frame);
    }
    std::string notice;
    protocol::append_notice_response(notice, state, msg);
    auto nb = protocol::parse_error_fields(single_frame(notice, 'N', frame));
    if (!nb || nb->get('S') != "NOTICE" || nb->get('C') != state || nb->get('M') != msg) {
      fail("append_notice_response does not read back", frame);
    }
  }
}

}  // namespace

void check_scanner(std::string_view in) {
  // Reference: decode_frame message by message.
  std::vector<std::pair<char, char>> expected;
  size_t valid = 0;  // bytes of the messages whose header is valid (the last may be truncated)
  bool malformed = false;
  for (size_t pos = 0; pos < in.size();) {
    auto r = protocol::decode_frame(in.substr(pos), kMaxLen);
    if (r.status == protocol::DecodeStatus::kMalformed) {
      malformed = true;
      break;
    }
    if (r.status == protocol::DecodeStatus::kNeedMore) {
      if (in.size() - pos >= 5) valid = in.size();  // a truncated body is relayed as it comes
      break;
    }
    expected.emplace_back(r.frame.tag, r.frame.body.empty() ? '\0' : r.frame.body[0]);
    pos += r.frame.size;
    valid = pos;
  }
  // The relay: pieces of 1..8 bytes (sizes taken from the input), unconsumed bytes carried over.
  protocol::FrameScanner scanner(kMaxLen);
  std::vector<std::pair<char, char>> seen;
  std::string carry;
  size_t consumed = 0;
  for (size_t pos = 0, i = 0; pos < in.size() && !scanner.failed(); ++i) {
    const size_t n = std::min<size_t>(1 + static_cast<unsigned char>(in[i % in.size()]) % 8, in.size() - pos);
    carry.append(in.substr(pos, n));
    pos += n;
    const size_t used = scanner.feed(carry, [&](char tag, char first) { seen.emplace_back(tag, first); });
    consumed += used;
    carry.erase(0, used);
    if (!scanner.failed() && carry.size() >= 5) fail("FrameScanner left a whole header unconsumed", in);
  }
  if (seen != expected) fail("FrameScanner saw other messages than decode_frame", in);
  if (scanner.failed() != malformed) fail("FrameScanner failed where decode_frame did not (or not where it did)", in);
  if (consumed != valid) fail("FrameScanner consumed other bytes than those of valid messages", in);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  check_scanner(in);
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
    for (size_t cut : {size_t{0}, size_t{4}, size_t{5}, f.size / 2, f.size - 1}) {
      if (cut < f.size && protocol::decode_frame(frame.substr(0, cut), kMaxLen).status != protocol::DecodeStatus::kNeedMore) {
        fail("prefix of " + std::to_string(cut) + " bytes is not NeedMore", frame);
      }
    }
    check_body(f.tag, f.body, frame);
    pos += f.size;
  }
  return 0;
}
