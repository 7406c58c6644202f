// Unit tests for proxy/protocol/codec: encoder/decoder round trips, incremental decoding,
// length validation, startup packets, malformed bodies, and a random-bytes robustness loop.
#include "proxy/protocol/codec.h"

#include <gtest/gtest.h>

#include "proxy/protocol/frame_scanner.h"

#include <algorithm>
#include <random>
#include <string>
#include <vector>

namespace rowguard::protocol {
namespace {

constexpr size_t kMax = 1 << 20;

std::string be32(int32_t v) {
  std::string s;
  const auto u = static_cast<uint32_t>(v);
  s.push_back(static_cast<char>(u >> 24));
  s.push_back(static_cast<char>(u >> 16));
  s.push_back(static_cast<char>(u >> 8));
  s.push_back(static_cast<char>(u));
  return s;
}

// A tagged message with an arbitrary (possibly lying) length field.
std::string raw_frame(char tag, int32_t length, std::string_view body) {
  return std::string(1, tag) + be32(length) + std::string(body);
}

// An untagged startup-phase packet whose length field counts exactly what follows.
std::string startup_bytes(int32_t code, std::string_view payload) {
  return be32(static_cast<int32_t>(8 + payload.size())) + be32(code) + std::string(payload);
}

// Decodes exactly one frame that must fill `bytes` completely.
Frame one_frame(const std::string& bytes) {
  const FrameResult r = decode_frame(bytes, kMax);
  EXPECT_EQ(r.status, DecodeStatus::kComplete) << r.error;
  EXPECT_EQ(r.frame.size, bytes.size());
  return r.frame;
}

using namespace std::string_literals;

// ---- frames ----------------------------------------------------------------------------------

TEST(CodecFrame, AppendFrameRoundTrip) {
  std::string out;
  append_frame(out, 'x', "hello\0world"s);
  EXPECT_EQ(out, "x\0\0\0\x0fhello\0world"s);
  const Frame f = one_frame(out);
  EXPECT_EQ(f.tag, 'x');
  EXPECT_EQ(f.body, "hello\0world"s);
}

TEST(CodecFrame, EmptyBody) {
  std::string out;
  append_terminate(out);
  EXPECT_EQ(out, "X\0\0\0\x04"s);
  const Frame f = one_frame(out);
  EXPECT_EQ(f.tag, fe::kTerminate);
  EXPECT_TRUE(f.body.empty());
}

TEST(CodecFrame, NeedsFiveBytesForHeader) {
  EXPECT_EQ(decode_frame("", kMax).status, DecodeStatus::kNeedMore);
  EXPECT_EQ(decode_frame("Q\0\0\0"s, kMax).status, DecodeStatus::kNeedMore);
}

TEST(CodecFrame, ByteByByte) {
  std::string out;
  append_query(out, "SELECT * FROM t WHERE a = 'x'");
  for (size_t n = 0; n < out.size(); ++n) {
    const FrameResult r = decode_frame(std::string_view(out).substr(0, n), kMax);
    EXPECT_EQ(r.status, DecodeStatus::kNeedMore) << "prefix " << n;
  }
  const FrameResult r = decode_frame(out, kMax);
  ASSERT_EQ(r.status, DecodeStatus::kComplete);
  EXPECT_EQ(r.frame.size, out.size());
  EXPECT_EQ(parse_query(r.frame.body), "SELECT * FROM t WHERE a = 'x'");
}

TEST(CodecFrame, CoalescedFrames) {
  std::string out;
  append_query(out, "SELECT 1");
  append_ready_for_query(out, 'T');
  append_terminate(out);
  append_parameter_status(out, "TimeZone", "UTC");
  out += "Q\0\0"s;  // start of a fourth one

  std::string_view in = out;
  std::vector<char> tags;
  for (;;) {
    const FrameResult r = decode_frame(in, kMax);
    if (r.status != DecodeStatus::kComplete) {
      EXPECT_EQ(r.status, DecodeStatus::kNeedMore);
      break;
    }
    tags.push_back(r.frame.tag);
    if (r.frame.tag == fe::kQuery) {
      EXPECT_EQ(parse_query(r.frame.body), "SELECT 1");
    }
    if (r.frame.tag == be::kReadyForQuery) {
      EXPECT_EQ(parse_ready_for_query(r.frame.body)->status, 'T');
    }
    in.remove_prefix(r.frame.size);
  }
  EXPECT_EQ(tags, (std::vector<char>{'Q', 'Z', 'X', 'S'}));
  EXPECT_EQ(in, "Q\0\0"s);
}

TEST(CodecFrame, OversizedRejectedBeforeBody) {
  // Only the 5 header bytes: the length alone must be enough to refuse.
  const FrameResult r = decode_frame(raw_frame('Q', 1'000'000, ""), 8192);
  EXPECT_EQ(r.status, DecodeStatus::kMalformed);
  EXPECT_FALSE(r.error.empty());
  // Exactly at the cap is fine (and needs its body).
  EXPECT_EQ(decode_frame(raw_frame('Q', 8192, ""), 8192).status, DecodeStatus::kNeedMore);
  EXPECT_EQ(decode_frame(raw_frame('Q', 8193, ""), 8192).status, DecodeStatus::kMalformed);
}

TEST(CodecFrame, NegativeLengthRejected) {
  const FrameResult r = decode_frame(raw_frame('Q', INT32_MIN, ""), SIZE_MAX);
  EXPECT_EQ(r.status, DecodeStatus::kMalformed);
  EXPECT_EQ(decode_frame(raw_frame('Q', -1, ""), SIZE_MAX).status, DecodeStatus::kMalformed);
}

TEST(CodecFrame, LengthBelowFourRejected) {
  for (int32_t len : {0, 1, 2, 3}) {
    const FrameResult r = decode_frame(raw_frame('Q', len, "abcd"), kMax);
    EXPECT_EQ(r.status, DecodeStatus::kMalformed) << len;
    EXPECT_FALSE(r.error.empty());
  }
}

// ---- startup packets --------------------------------------------------------------------------

TEST(CodecStartup, RoundTripWithParams) {
  std::string out;
  append_startup(out, {{"user", "alice"}, {"database", "app"}, {"application_name", "psql"}});
  ASSERT_EQ(out.substr(4, 4), be32(kProtocolV3));
  const StartupResult r = decode_startup(out, 10000);
  ASSERT_EQ(r.status, DecodeStatus::kComplete) << r.error;
  EXPECT_EQ(r.size, out.size());
  EXPECT_EQ(r.packet.kind, StartupPacket::Kind::kStartup);
  EXPECT_EQ(r.packet.protocol_version, kProtocolV3);
  ASSERT_EQ(r.packet.params.size(), 3u);
  EXPECT_EQ(r.packet.params[1], (std::pair<std::string, std::string>{"database", "app"}));
  ASSERT_NE(r.packet.param("user"), nullptr);
  EXPECT_EQ(*r.packet.param("user"), "alice");
  EXPECT_EQ(*r.packet.param("application_name"), "psql");
  EXPECT_EQ(r.packet.param("options"), nullptr);
}

TEST(CodecStartup, EmptyValueAllowed) {
  const std::string pkt = startup_bytes(kProtocolV3, "user\0bob\0options\0\0\0"s);
  const StartupResult r = decode_startup(pkt, 10000);
  ASSERT_EQ(r.status, DecodeStatus::kComplete) << r.error;
  EXPECT_EQ(*r.packet.param("options"), "");
}

TEST(CodecStartup, ByteByByteAndTrailingData) {
  std::string out;
  append_startup(out, {{"user", "alice"}});
  const size_t n = out.size();
  append_query(out, "SELECT 1");  // the next message may already be in the buffer
  for (size_t i = 0; i < n; ++i) {
    EXPECT_EQ(decode_startup(std::string_view(out).substr(0, i), 10000).status,
              DecodeStatus::kNeedMore)
        << i;
  }
  const StartupResult r = decode_startup(out, 10000);
  ASSERT_EQ(r.status, DecodeStatus::kComplete);
  EXPECT_EQ(r.size, n);
}

TEST(CodecStartup, SSLRequest) {
  std::string out;
  append_ssl_request(out);
  EXPECT_EQ(out, "\0\0\0\x08\x04\xd2\x16\x2f"s);
  const StartupResult r = decode_startup(out, 10000);
  ASSERT_EQ(r.status, DecodeStatus::kComplete);
  EXPECT_EQ(r.packet.kind, StartupPacket::Kind::kSSLRequest);
  EXPECT_EQ(r.size, 8u);
}

TEST(CodecStartup, GSSENCRequest) {
  const StartupResult r = decode_startup(startup_bytes(kGSSENCRequestCode, ""), 10000);
  ASSERT_EQ(r.status, DecodeStatus::kComplete);
  EXPECT_EQ(r.packet.kind, StartupPacket::Kind::kGSSENCRequest);
  EXPECT_EQ(r.size, 8u);
}

TEST(CodecStartup, CancelRequest) {
  std::string out;
  append_cancel_request(out, 4242, -559038737);
  ASSERT_EQ(out.size(), 16u);
  const StartupResult r = decode_startup(out, 10000);
  ASSERT_EQ(r.status, DecodeStatus::kComplete);
  EXPECT_EQ(r.packet.kind, StartupPacket::Kind::kCancelRequest);
  EXPECT_EQ(r.packet.cancel_pid, 4242);
  EXPECT_EQ(r.packet.cancel_key, -559038737);
  EXPECT_EQ(r.size, 16u);
}

TEST(CodecStartup, SpecialRequestsWithWrongLength) {
  // Rejected as soon as length and code are known, without waiting for the declared body.
  EXPECT_EQ(decode_startup(be32(12) + be32(kSSLRequestCode), 10000).status, DecodeStatus::kMalformed);
  EXPECT_EQ(decode_startup(be32(16) + be32(kGSSENCRequestCode), 10000).status,
            DecodeStatus::kMalformed);
  EXPECT_EQ(decode_startup(startup_bytes(kCancelRequestCode, "12345678ab"), 10000).status,
            DecodeStatus::kMalformed);
  EXPECT_EQ(decode_startup(startup_bytes(kCancelRequestCode, "1234"), 10000).status,
            DecodeStatus::kMalformed);
  // Unknown 1234.x request code.
  EXPECT_EQ(decode_startup(startup_bytes(80877105, ""), 10000).status, DecodeStatus::kMalformed);
}

TEST(CodecStartup, ProtocolVersions) {
  const std::string params = "user\0u\0\0"s;
  const StartupResult v2 = decode_startup(startup_bytes(2 << 16, params), 10000);
  EXPECT_EQ(v2.status, DecodeStatus::kMalformed);
  EXPECT_FALSE(v2.error.empty());
  EXPECT_EQ(decode_startup(startup_bytes(4 << 16, params), 10000).status, DecodeStatus::kMalformed);
  EXPECT_EQ(decode_startup(startup_bytes(-1, params), 10000).status, DecodeStatus::kMalformed);
  // Version checked before the body arrives.
  EXPECT_EQ(decode_startup(be32(100) + be32(2 << 16), 10000).status, DecodeStatus::kMalformed);
  // 3.x minor versions are accepted (we speak 3.0; the caller can negotiate).
  const StartupResult v31 = decode_startup(startup_bytes((3 << 16) | 1, params), 10000);
  ASSERT_EQ(v31.status, DecodeStatus::kComplete) << v31.error;
  EXPECT_EQ(v31.packet.protocol_version, (3 << 16) | 1);
}

TEST(CodecStartup, MissingUser) {
  EXPECT_EQ(decode_startup(startup_bytes(kProtocolV3, "database\0x\0\0"s), 10000).status,
            DecodeStatus::kMalformed);
  EXPECT_EQ(decode_startup(startup_bytes(kProtocolV3, "\0"s), 10000).status,
            DecodeStatus::kMalformed);
  EXPECT_EQ(decode_startup(startup_bytes(kProtocolV3, "user\0\0\0"s), 10000).status,
            DecodeStatus::kMalformed);  // empty user name, as PostgreSQL
}

TEST(CodecStartup, MissingTerminator) {
  for (const std::string& payload :
       {"user\0alice\0"s, "user\0alice"s, "user"s, ""s, "user\0alice\0database\0app"s}) {
    const StartupResult r = decode_startup(startup_bytes(kProtocolV3, payload), 10000);
    EXPECT_EQ(r.status, DecodeStatus::kMalformed) << testing::PrintToString(payload);
    EXPECT_FALSE(r.error.empty());
  }
}

TEST(CodecStartup, LeftoverBytes) {
  EXPECT_EQ(decode_startup(startup_bytes(kProtocolV3, "user\0alice\0\0junk"s), 10000).status,
            DecodeStatus::kMalformed);
  EXPECT_EQ(decode_startup(startup_bytes(kProtocolV3, "user\0alice\0\0\0"s), 10000).status,
            DecodeStatus::kMalformed);
}

TEST(CodecStartup, DuplicateParam) {
  const StartupResult r =
      decode_startup(startup_bytes(kProtocolV3, "user\0a\0database\0d\0user\0b\0\0"s), 10000);
  EXPECT_EQ(r.status, DecodeStatus::kMalformed);
  EXPECT_NE(r.error.find("user"), std::string::npos);
}

TEST(CodecStartup, Oversized) {
  // Only the length field has arrived: refused right away.
  EXPECT_EQ(decode_startup(be32(10001), 10000).status, DecodeStatus::kMalformed);
  EXPECT_EQ(decode_startup(be32(INT32_MIN), 10000).status, DecodeStatus::kMalformed);
  std::string big;
  append_startup(big, {{"user", "u"}, {"options", std::string(200, 'x')}});
  EXPECT_EQ(decode_startup(big, 100).status, DecodeStatus::kMalformed);
  EXPECT_EQ(decode_startup(big, big.size()).status, DecodeStatus::kComplete);
}

TEST(CodecStartup, LengthBelowEight) {
  for (int32_t len : {0, 4, 7}) {
    EXPECT_EQ(decode_startup(be32(len) + be32(kProtocolV3), 10000).status, DecodeStatus::kMalformed)
        << len;
  }
  EXPECT_EQ(decode_startup("\0\0"s, 10000).status, DecodeStatus::kNeedMore);
}

// ---- bodies: round trips ----------------------------------------------------------------------

TEST(CodecBodies, Query) {
  std::string out;
  append_query(out, "SELECT 1");
  EXPECT_EQ(out, "Q\0\0\0\x0dSELECT 1\0"s);
  const Frame f = one_frame(out);
  EXPECT_EQ(f.tag, fe::kQuery);
  EXPECT_EQ(parse_query(f.body), "SELECT 1");
}

TEST(CodecBodies, QueryMalformed) {
  EXPECT_FALSE(parse_query(""));
  EXPECT_FALSE(parse_query("SELECT 1"));           // no NUL
  EXPECT_FALSE(parse_query("SELECT 1\0x"s));        // leftover
  EXPECT_FALSE(parse_query("SELECT 1\0\0"s));       // leftover NUL
  EXPECT_EQ(parse_query("\0"s), "");                // empty query is valid
}

TEST(CodecBodies, Password) {
  std::string out;
  append_password(out, "md5abcdef");
  const Frame f = one_frame(out);
  EXPECT_EQ(f.tag, fe::kPasswordMessage);
  EXPECT_EQ(f.body, "md5abcdef\0"s);
}

TEST(CodecBodies, SASLInitialResponse) {
  std::string out;
  append_sasl_initial_response(out, "SCRAM-SHA-256", "n,,n=,r=abc");
  const Frame f = one_frame(out);
  EXPECT_EQ(f.tag, fe::kPasswordMessage);
  const auto s = parse_sasl_initial_response(f.body);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->mechanism, "SCRAM-SHA-256");
  EXPECT_EQ(s->data, "n,,n=,r=abc");
}

TEST(CodecBodies, SASLInitialResponseNoData) {
  const auto s = parse_sasl_initial_response("SCRAM-SHA-256\0"s + be32(-1));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->mechanism, "SCRAM-SHA-256");
  EXPECT_EQ(s->data, "");
  const auto z = parse_sasl_initial_response("M\0"s + be32(0));
  ASSERT_TRUE(z);
  EXPECT_EQ(z->data, "");
}

TEST(CodecBodies, SASLInitialResponseMalformed) {
  EXPECT_FALSE(parse_sasl_initial_response(""));
  EXPECT_FALSE(parse_sasl_initial_response("SCRAM-SHA-256"));            // no NUL
  EXPECT_FALSE(parse_sasl_initial_response("SCRAM-SHA-256\0\0\0"s));     // short length
  EXPECT_FALSE(parse_sasl_initial_response("M\0"s + be32(5) + "abcd"));  // short data
  EXPECT_FALSE(parse_sasl_initial_response("M\0"s + be32(3) + "abcd"));  // leftover
  EXPECT_FALSE(parse_sasl_initial_response("M\0"s + be32(-1) + "x"));    // leftover after -1
  EXPECT_FALSE(parse_sasl_initial_response("M\0"s + be32(-2)));          // bad length
  EXPECT_FALSE(parse_sasl_initial_response("M\0"s + be32(INT32_MAX) + "x"));
}

TEST(CodecBodies, SASLResponse) {
  std::string out;
  append_sasl_response(out, "c=biws,r=x,p=y");
  const Frame f = one_frame(out);
  EXPECT_EQ(f.tag, fe::kPasswordMessage);
  EXPECT_EQ(f.body, "c=biws,r=x,p=y");
}

TEST(CodecBodies, AuthOkAndCleartext) {
  std::string out;
  append_auth_ok(out);
  EXPECT_EQ(out, "R\0\0\0\x08\0\0\0\0"s);
  auto a = parse_authentication(one_frame(out).body);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->code, AuthCode::kOk);

  out.clear();
  append_auth_cleartext(out);
  a = parse_authentication(one_frame(out).body);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->code, AuthCode::kCleartextPassword);
  EXPECT_TRUE(a->data.empty());
}

TEST(CodecBodies, AuthMD5) {
  const auto a = parse_authentication(be32(5) + "\x01\x02\x03\x04");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->code, AuthCode::kMD5Password);
  EXPECT_EQ(a->data, "\x01\x02\x03\x04");
  EXPECT_FALSE(parse_authentication(be32(5) + "\x01\x02\x03"));
  EXPECT_FALSE(parse_authentication(be32(5) + "\x01\x02\x03\x04\x05"));
}

TEST(CodecBodies, AuthSASL) {
  std::string out;
  append_auth_sasl(out, {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"});
  const Frame f = one_frame(out);
  EXPECT_EQ(f.tag, be::kAuthentication);
  const auto a = parse_authentication(f.body);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->code, AuthCode::kSASL);
  EXPECT_EQ(a->mechanisms, (std::vector<std::string>{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}));
}

TEST(CodecBodies, AuthSASLContinueAndFinal) {
  std::string out;
  append_auth_sasl_continue(out, "r=abc,s=c2FsdA==,i=4096");
  auto a = parse_authentication(one_frame(out).body);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->code, AuthCode::kSASLContinue);
  EXPECT_EQ(a->data, "r=abc,s=c2FsdA==,i=4096");

  out.clear();
  append_auth_sasl_final(out, "v=xyz");
  a = parse_authentication(one_frame(out).body);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->code, AuthCode::kSASLFinal);
  EXPECT_EQ(a->data, "v=xyz");
}

TEST(CodecBodies, AuthUnknownCodeKept) {
  const auto a = parse_authentication(be32(7) + "gss");
  ASSERT_TRUE(a);
  EXPECT_EQ(static_cast<int32_t>(a->code), 7);
  EXPECT_EQ(a->data, "gss");
}

TEST(CodecBodies, AuthMalformed) {
  EXPECT_FALSE(parse_authentication(""));
  EXPECT_FALSE(parse_authentication("\0\0\0"s));
  EXPECT_FALSE(parse_authentication(be32(0) + "x"));                     // leftover after Ok
  EXPECT_FALSE(parse_authentication(be32(3) + "x"));                     // leftover after cleartext
  EXPECT_FALSE(parse_authentication(be32(10)));                          // no list terminator
  EXPECT_FALSE(parse_authentication(be32(10) + "SCRAM-SHA-256\0"s));     // no final empty string
  EXPECT_FALSE(parse_authentication(be32(10) + "SCRAM-SHA-256"s));       // no NUL at all
  EXPECT_FALSE(parse_authentication(be32(10) + "SCRAM-SHA-256\0\0x"s));  // leftover
}

TEST(CodecBodies, ParameterStatus) {
  std::string out;
  append_parameter_status(out, "server_version", "15.4");
  const Frame f = one_frame(out);
  EXPECT_EQ(f.tag, be::kParameterStatus);
  const auto p = parse_parameter_status(f.body);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->name, "server_version");
  EXPECT_EQ(p->value, "15.4");

  EXPECT_FALSE(parse_parameter_status(""));
  EXPECT_FALSE(parse_parameter_status("name\0value"s));
  EXPECT_FALSE(parse_parameter_status("name"s));
  EXPECT_FALSE(parse_parameter_status("name\0value\0x"s));
}

TEST(CodecBodies, BackendKeyData) {
  std::string out;
  append_backend_key_data(out, 12345, -7);
  const Frame f = one_frame(out);
  EXPECT_EQ(f.tag, be::kBackendKeyData);
  const auto k = parse_backend_key_data(f.body);
  ASSERT_TRUE(k);
  EXPECT_EQ(k->pid, 12345);
  EXPECT_EQ(k->key, -7);

  EXPECT_FALSE(parse_backend_key_data(""));
  EXPECT_FALSE(parse_backend_key_data("1234567"));
  EXPECT_FALSE(parse_backend_key_data("123456789"));
}

TEST(CodecBodies, ReadyForQuery) {
  for (char s : {'I', 'T', 'E'}) {
    std::string out;
    append_ready_for_query(out, s);
    const Frame f = one_frame(out);
    EXPECT_EQ(f.tag, be::kReadyForQuery);
    const auto r = parse_ready_for_query(f.body);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, s);
  }
  EXPECT_FALSE(parse_ready_for_query(""));
  EXPECT_FALSE(parse_ready_for_query("II"));
  EXPECT_FALSE(parse_ready_for_query("X"));
}

TEST(CodecBodies, ErrorResponse) {
  std::string out;
  append_error_response(out, "FATAL", "28P01", "password authentication failed for user \"bob\"");
  const Frame f = one_frame(out);
  EXPECT_EQ(f.tag, be::kErrorResponse);
  const auto e = parse_error_fields(f.body);
  ASSERT_TRUE(e);
  ASSERT_EQ(e->fields.size(), 4u);
  EXPECT_EQ(e->fields[0], (std::pair<char, std::string>{'S', "FATAL"}));
  EXPECT_EQ(e->fields[1], (std::pair<char, std::string>{'V', "FATAL"}));
  EXPECT_EQ(e->fields[2], (std::pair<char, std::string>{'C', "28P01"}));
  EXPECT_EQ(e->get('M'), "password authentication failed for user \"bob\"");
  EXPECT_EQ(e->get('D'), "");
  EXPECT_EQ(e->get('H'), "");
}

TEST(CodecBodies, ErrorResponseWithDetailAndHint) {
  std::string out;
  append_error_response(out, "ERROR", "42501", "permission denied", "row policy", "ask an admin");
  const auto e = parse_error_fields(one_frame(out).body);
  ASSERT_TRUE(e);
  ASSERT_EQ(e->fields.size(), 6u);
  EXPECT_EQ(e->fields[4].first, 'D');
  EXPECT_EQ(e->fields[5].first, 'H');
  EXPECT_EQ(e->get('D'), "row policy");
  EXPECT_EQ(e->get('H'), "ask an admin");
  EXPECT_EQ(e->get('C'), "42501");
}

TEST(CodecBodies, NoticeResponse) {
  std::string out;
  append_notice_response(out, "01000", "query rewritten");
  const Frame f = one_frame(out);
  EXPECT_EQ(f.tag, be::kNoticeResponse);
  const auto e = parse_error_fields(f.body);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->get('S'), "NOTICE");
  EXPECT_EQ(e->get('V'), "NOTICE");
  EXPECT_EQ(e->get('C'), "01000");
  EXPECT_EQ(e->get('M'), "query rewritten");
}

TEST(CodecBodies, ErrorFieldsRoundTrip) {
  ErrorFields in;
  in.fields = {{'S', "ERROR"}, {'C', "XX000"}, {'M', "boom"}, {'P', "12"}, {'F', "x.c"}, {'R', ""}};
  std::string out;
  append_error_fields(out, 'N', in);
  const Frame f = one_frame(out);
  EXPECT_EQ(f.tag, 'N');
  const auto e = parse_error_fields(f.body);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->fields, in.fields);

  // An empty field list is just the terminator.
  out.clear();
  append_error_fields(out, 'E', ErrorFields{});
  EXPECT_EQ(out, "E\0\0\0\x05\0"s);
  const auto empty = parse_error_fields(one_frame(out).body);
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->fields.empty());
}

TEST(CodecBodies, ErrorFieldsMalformed) {
  EXPECT_FALSE(parse_error_fields(""));                    // no terminator
  EXPECT_FALSE(parse_error_fields("SERROR\0"s));           // no final 0
  EXPECT_FALSE(parse_error_fields("SERROR"s));             // value not terminated
  EXPECT_FALSE(parse_error_fields("S"s));                  // code without value
  EXPECT_FALSE(parse_error_fields("SERROR\0\0x"s));        // leftover
  EXPECT_FALSE(parse_error_fields("\0\0"s));               // leftover
}

// ---- robustness -------------------------------------------------------------------------------

TEST(CodecFuzz, RandomBytesNeverCrash) {
  std::mt19937 rng(20240611);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> len(0, 48);
  std::uniform_int_distribution<int> mode(0, 3);
  int frames_complete = 0, frames_malformed = 0, startups_decided = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string in;
    // Sometimes start from a plausible header so the decoders get past the length checks.
    switch (mode(rng)) {
      case 0:
        in = std::string(1, "QRSEKZp"[iter % 7]) + be32(4 + len(rng));
        break;
      case 1:
        in = be32(8 + len(rng)) + be32(iter % 2 ? kProtocolV3 : kCancelRequestCode);
        break;
      default:
        break;
    }
    const int n = len(rng);
    for (int i = 0; i < n; ++i) {
      // Bias towards NULs and small numbers, which is where the structure lives.
      const int b = byte(rng);
      in.push_back(static_cast<char>(b < 64 ? 0 : b));
    }

    const FrameResult fr = decode_frame(in, 64);
    if (fr.status == DecodeStatus::kComplete) {
      ++frames_complete;
      ASSERT_LE(fr.frame.size, in.size());
      ASSERT_EQ(fr.frame.body.size() + 5, fr.frame.size);
    } else if (fr.status == DecodeStatus::kMalformed) {
      ++frames_malformed;
      ASSERT_FALSE(fr.error.empty());
    }
    const StartupResult sr = decode_startup(in, 64);
    if (sr.status != DecodeStatus::kNeedMore) ++startups_decided;
    if (sr.status == DecodeStatus::kComplete) {
      ASSERT_LE(sr.size, in.size());
      ASSERT_GE(sr.size, 8u);
    } else if (sr.status == DecodeStatus::kMalformed) {
      ASSERT_FALSE(sr.error.empty());
    }

    for (std::string_view body : {std::string_view(in), fr.frame.body}) {
      (void)parse_query(body);
      (void)parse_ready_for_query(body);
      (void)parse_authentication(body);
      (void)parse_parameter_status(body);
      (void)parse_backend_key_data(body);
      (void)parse_error_fields(body);
      if (const auto s = parse_sasl_initial_response(body)) {
        ASSERT_LE(s->mechanism.size() + s->data.size(), body.size());
      }
    }
  }
  // The loop must actually reach the interesting paths.
  EXPECT_GT(frames_complete, 1000);
  EXPECT_GT(frames_malformed, 1000);
  EXPECT_GT(startups_decided, 1000);
}

// ---- [limits]: message length limits, decided from the length word -----------------------------

constexpr size_t kGiB = size_t{1} << 30;

TEST(CodecLimits, BindOverTheLimitRefusedFromItsHeaderAlone) {
  // A Bind claiming 1 GiB + 1: the 5 header bytes decide, no body is needed or looked at.
  const FrameResult r = decode_frame(raw_frame(fe::kBind, static_cast<int32_t>(kGiB + 1), ""), kGiB);
  EXPECT_EQ(r.status, DecodeStatus::kMalformed);
  EXPECT_TRUE(r.too_long);
  EXPECT_EQ(r.length, kGiB + 1);
  EXPECT_NE(r.error.find("exceeds the limit of 1073741824"), std::string::npos) << r.error;
  // Exactly 1 GiB is within the default limit: it waits for its body.
  const FrameResult at = decode_frame(raw_frame(fe::kCopyData, static_cast<int32_t>(kGiB), "abc"), kGiB);
  EXPECT_EQ(at.status, DecodeStatus::kNeedMore);
  EXPECT_FALSE(at.too_long);
  EXPECT_EQ(at.length, kGiB);
}

TEST(CodecLimits, ConfiguredSmallLimitAppliesToEveryMessageKind) {
  for (char tag : {fe::kQuery, fe::kParse, fe::kBind, fe::kCopyData, fe::kPasswordMessage, 'z'}) {
    const std::string body(2000, 'x');
    const FrameResult over = decode_frame(raw_frame(tag, 4 + 2000, body), 1024);
    EXPECT_EQ(over.status, DecodeStatus::kMalformed) << tag;
    EXPECT_TRUE(over.too_long) << tag;
    const FrameResult under = decode_frame(raw_frame(tag, 4 + 1000, body.substr(0, 1000)), 1024);
    EXPECT_EQ(under.status, DecodeStatus::kComplete) << tag;
    EXPECT_FALSE(under.too_long);
  }
}

TEST(CodecLimits, BrokenLengthsAreMalformedNotTooLong) {
  EXPECT_FALSE(decode_frame(raw_frame('Q', -1, ""), kGiB).too_long);  // 0xffffffff
  EXPECT_FALSE(decode_frame(raw_frame('Q', INT32_MIN, ""), SIZE_MAX).too_long);
  EXPECT_FALSE(decode_frame(raw_frame('Q', 3, ""), kGiB).too_long);
  EXPECT_EQ(decode_frame(raw_frame('Q', 3, ""), kGiB).status, DecodeStatus::kMalformed);
}

TEST(CodecLimits, StartupPacketOverTheLimitRefusedFromItsLengthWord) {
  // 64 KiB + 1, only the length word has arrived.
  const StartupResult r = decode_startup(be32(64 * 1024 + 1), 64 * 1024);
  EXPECT_EQ(r.status, DecodeStatus::kMalformed);
  EXPECT_TRUE(r.too_long);
  EXPECT_EQ(decode_startup(be32(64 * 1024), 64 * 1024).status, DecodeStatus::kNeedMore);
  // A real startup packet of 70 KB (a long application_name) against the default limit.
  std::string big;
  append_startup(big, {{"user", "t1"}, {"application_name", std::string(70'000, 'a')}});
  const StartupResult b = decode_startup(big, 64 * 1024);
  EXPECT_EQ(b.status, DecodeStatus::kMalformed);
  EXPECT_TRUE(b.too_long);
  // Not "too long": a length below 8.
  EXPECT_FALSE(decode_startup(be32(4) + be32(kProtocolV3), 64 * 1024).too_long);
}

TEST(CodecLimits, MessageNames) {
  EXPECT_EQ(frontend_message_name(fe::kBind), "Bind");
  EXPECT_EQ(frontend_message_name(fe::kCopyData), "CopyData");
  EXPECT_EQ(frontend_message_name(fe::kQuery), "Query");
  EXPECT_EQ(frontend_message_name('z'), "message 'z'");
  EXPECT_EQ(frontend_message_name('\x01'), "message 0x01");
}

// ---- FrameScanner: message boundaries of a relayed stream -------------------------------------

struct Seen {
  std::vector<std::pair<char, char>> frames;  // (tag, first body byte)
  auto sink() {
    return [this](char tag, char first) { frames.emplace_back(tag, first); };
  }
};

// Plays the relay: feeds `s` in pieces of the given sizes, keeping the unconsumed bytes (an
// incomplete header) in front of the next piece. Returns the bytes "forwarded", in order.
std::string relay(FrameScanner& scanner, Seen& seen, const std::string& s, const std::vector<size_t>& pieces,
                  std::vector<bool>* mid = nullptr) {
  std::string carry, forwarded;
  size_t pos = 0;
  for (size_t n : pieces) {
    carry += s.substr(pos, n);
    pos += n;
    const size_t used = scanner.feed(carry, seen.sink());
    forwarded += carry.substr(0, used);
    carry.erase(0, used);
    if (mid) mid->push_back(scanner.mid_message());
    if (scanner.failed()) break;
    EXPECT_LT(carry.size(), 5u);
  }
  return forwarded;
}

std::string backend_stream() {
  std::string s;
  append_frame(s, be::kRowDescription, "abc");
  append_frame(s, be::kCommandComplete, "SELECT 1\0"s);
  append_ready_for_query(s, 'T');
  append_frame(s, be::kNoData, "");
  append_ready_for_query(s, 'I');
  return s;
}

TEST(FrameScannerTest, WholeStreamAtOnce) {
  const std::string s = backend_stream();
  FrameScanner scanner(kMax);
  Seen seen;
  EXPECT_EQ(scanner.feed(s, seen.sink()), s.size());
  EXPECT_FALSE(scanner.mid_message());
  EXPECT_FALSE(scanner.failed());
  EXPECT_EQ(seen.frames, (std::vector<std::pair<char, char>>{
                             {'T', 'a'}, {'C', 'S'}, {'Z', 'T'}, {'n', '\0'}, {'Z', 'I'}}));
}

TEST(FrameScannerTest, ByteByByteGivesTheSameFramesAndBytes) {
  const std::string s = backend_stream();
  std::vector<size_t> ends;  // offsets where a message ends
  for (size_t pos = 0; pos < s.size();) {
    pos += decode_frame(std::string_view(s).substr(pos), kMax).frame.size;
    ends.push_back(pos);
  }
  FrameScanner scanner(kMax);
  Seen seen;
  std::vector<bool> mid;
  EXPECT_EQ(relay(scanner, seen, s, std::vector<size_t>(s.size(), 1), &mid), s);
  for (size_t i = 0; i < s.size(); ++i) {
    const bool at_boundary = std::find(ends.begin(), ends.end(), i + 1) != ends.end();
    EXPECT_EQ(mid[i], !at_boundary) << "after byte " << i;
  }
  EXPECT_EQ(seen.frames.size(), 5u);
  EXPECT_EQ(seen.frames[2], (std::pair<char, char>{'Z', 'T'}));
  EXPECT_EQ(seen.frames[4], (std::pair<char, char>{'Z', 'I'}));
}

TEST(FrameScannerTest, IncompleteHeaderIsNotConsumed) {
  std::string q;
  append_query(q, "SELECT 1");
  FrameScanner scanner(kMax);
  Seen seen;
  EXPECT_EQ(scanner.feed(std::string_view(q).substr(0, 3), seen.sink()), 0u);  // part of the header
  EXPECT_TRUE(scanner.mid_message());
  EXPECT_EQ(scanner.feed(std::string_view(q).substr(0, 8), seen.sink()), 8u);  // header + part of the body
  EXPECT_TRUE(scanner.mid_message());
  EXPECT_TRUE(seen.frames.empty());
  EXPECT_EQ(scanner.feed(std::string_view(q).substr(8), seen.sink()), q.size() - 8);
  EXPECT_FALSE(scanner.mid_message());
  ASSERT_EQ(seen.frames.size(), 1u);
  EXPECT_EQ(seen.frames[0], (std::pair<char, char>{'Q', 'S'}));
}

TEST(FrameScannerTest, OversizedMessageNotOneByteForwarded) {
  // A complete Sync, then a CopyData claiming 2 MB against a 1 MiB limit.
  std::string s = "S\0\0\0\x04"s;
  s += raw_frame(fe::kCopyData, 2'000'000, "some data");
  for (size_t split = 1; split < s.size(); ++split) {  // the header split at every point
    FrameScanner scanner(1 << 20);
    Seen seen;
    const std::string forwarded = relay(scanner, seen, s, {split, s.size() - split});
    EXPECT_EQ(forwarded, "S\0\0\0\x04"s) << split;
    EXPECT_TRUE(scanner.failed());
    EXPECT_TRUE(scanner.too_long());
    EXPECT_EQ(scanner.failed_tag(), fe::kCopyData);
    EXPECT_EQ(scanner.failed_length(), 2'000'000u);
    ASSERT_EQ(seen.frames.size(), 1u);
    EXPECT_EQ(seen.frames[0].first, 'S');
  }
  FrameScanner scanner(1 << 20);
  Seen seen;
  EXPECT_EQ(scanner.feed(s, seen.sink()), 5u);
  // Stuck for good: nothing more is accepted.
  EXPECT_EQ(scanner.feed("S\0\0\0\x04"s, seen.sink()), 0u);
  EXPECT_EQ(seen.frames.size(), 1u);
}

TEST(FrameScannerTest, OversizedBindAgainstTheDefaultLimit) {
  std::string s;
  append_query(s, "SELECT 1");
  const size_t first = s.size();
  s += raw_frame(fe::kBind, static_cast<int32_t>(kGiB + 1), "x");
  FrameScanner scanner(kGiB);
  Seen seen;
  EXPECT_EQ(scanner.feed(s, seen.sink()), first);
  EXPECT_TRUE(scanner.too_long());
  EXPECT_EQ(scanner.failed_tag(), fe::kBind);
}

TEST(FrameScannerTest, BadLengthIsNotTooLong) {
  FrameScanner scanner(kMax);
  Seen seen;
  EXPECT_EQ(scanner.feed(raw_frame('Q', 2, "xx"), seen.sink()), 0u);
  EXPECT_TRUE(scanner.failed());
  EXPECT_FALSE(scanner.too_long());
  EXPECT_FALSE(scanner.error().empty());
}

TEST(FrameScannerTest, RandomSplitsAgreeWithDecodeFrame) {
  std::mt19937 rng(7);
  std::string s;
  for (int i = 0; i < 200; ++i) {
    const int n = static_cast<int>(rng() % 40);
    append_frame(s, static_cast<char>('A' + rng() % 26),
                 std::string(static_cast<size_t>(n), static_cast<char>('a' + i % 26)));
  }
  std::vector<std::pair<char, char>> expected;
  for (std::string_view in = s; !in.empty();) {
    const FrameResult r = decode_frame(in, kMax);
    ASSERT_EQ(r.status, DecodeStatus::kComplete);
    expected.emplace_back(r.frame.tag, r.frame.body.empty() ? '\0' : r.frame.body[0]);
    in.remove_prefix(r.frame.size);
  }
  for (int round = 0; round < 20; ++round) {
    std::vector<size_t> pieces;
    for (size_t pos = 0; pos < s.size();) {
      const size_t n = std::min<size_t>(1 + rng() % 64, s.size() - pos);
      pieces.push_back(n);
      pos += n;
    }
    FrameScanner scanner(kMax);
    Seen seen;
    EXPECT_EQ(relay(scanner, seen, s, pieces), s);
    EXPECT_FALSE(scanner.mid_message());
    EXPECT_EQ(seen.frames, expected);
  }
}

}  // namespace
}  // namespace rowguard::protocol
