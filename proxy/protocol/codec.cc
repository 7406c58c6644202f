// PostgreSQL wire protocol v3 codec: incremental frame / startup-packet decoding, parsers for
// the message bodies rowguard inspects, and encoders that append complete messages.
// Reference: https://www.postgresql.org/docs/15/protocol-message-formats.html
// All integers on the wire are big-endian. Nothing here does I/O or throws.
#include "proxy/protocol/codec.h"

#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>

namespace rowguard::protocol {
namespace {

// An encoder asked to write a message body this big has been handed garbage: every input is
// capped far below this by decode_frame / decode_startup's max_len. PostgreSQL's own limit for a
// single message is 1 GiB as well.
constexpr size_t kMaxEncodedMessage = size_t{1} << 30;

// ---- big-endian primitives -----------------------------------------------------------------

uint32_t read_u32(std::string_view in, size_t pos) {
  const auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(in[pos + i])); };
  return (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3);
}

int32_t read_i32(std::string_view in, size_t pos) {
  return static_cast<int32_t>(read_u32(in, pos));  // modular conversion (C++20)
}

void put_i32(std::string& out, int32_t value) {
  const auto v = static_cast<uint32_t>(value);
  out.push_back(static_cast<char>((v >> 24) & 0xff));
  out.push_back(static_cast<char>((v >> 16) & 0xff));
  out.push_back(static_cast<char>((v >> 8) & 0xff));
  out.push_back(static_cast<char>(v & 0xff));
}

void patch_i32(std::string& out, size_t pos, int32_t value) {
  const auto v = static_cast<uint32_t>(value);
  out[pos] = static_cast<char>((v >> 24) & 0xff);
  out[pos + 1] = static_cast<char>((v >> 16) & 0xff);
  out[pos + 2] = static_cast<char>((v >> 8) & 0xff);
  out[pos + 3] = static_cast<char>(v & 0xff);
}

void put_cstring(std::string& out, std::string_view s) {
  out.append(s);
  out.push_back('\0');
}

// ---- message building: reserve the length field, fill it in when the body is done ----------

// Starts a message; returns the offset of its int32 length field.
size_t begin_message(std::string& out, char tag) {
  out.push_back(tag);
  const size_t length_pos = out.size();
  put_i32(out, 0);
  return length_pos;
}

// Same, for untagged (startup-phase) packets.
size_t begin_untagged(std::string& out) {
  const size_t length_pos = out.size();
  put_i32(out, 0);
  return length_pos;
}

// Programming error (see kMaxEncodedMessage): never emit a wrapped int32 length.
void require_encodable(size_t length) {
  if (length <= kMaxEncodedMessage) return;
  std::fputs("rowguard: protocol encoder asked to write a message over 1 GiB\n", stderr);
  std::abort();
}

// Writes the length (counting itself) of the message whose length field is at `length_pos`.
void end_message(std::string& out, size_t length_pos) {
  const size_t length = out.size() - length_pos;
  require_encodable(length);
  patch_i32(out, length_pos, static_cast<int32_t>(length));
}

// ---- body reading --------------------------------------------------------------------------

// Sequential reader over a message body. Every read fails (returns false / nullopt) instead of
// running past the end; `done()` tells whether the whole body was consumed.
class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}

  bool done() const { return pos_ == data_.size(); }
  size_t remaining() const { return data_.size() - pos_; }

  std::optional<int32_t> i32() {
    if (remaining() < 4) return std::nullopt;
    const int32_t v = read_i32(data_, pos_);
    pos_ += 4;
    return v;
  }

  std::optional<char> byte() {
    if (remaining() < 1) return std::nullopt;
    return data_[pos_++];
  }

  // A NUL-terminated string; nullopt when there is no terminator before the end.
  std::optional<std::string_view> cstring() {
    const size_t nul = data_.find('\0', pos_);
    if (nul == std::string_view::npos) return std::nullopt;
    std::string_view s = data_.substr(pos_, nul - pos_);
    pos_ = nul + 1;
    return s;
  }

  std::optional<std::string_view> bytes(size_t n) {
    if (remaining() < n) return std::nullopt;
    std::string_view s = data_.substr(pos_, n);
    pos_ += n;
    return s;
  }

  std::string_view rest() {
    std::string_view s = data_.substr(pos_);
    pos_ = data_.size();
    return s;
  }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

FrameResult frame_error(std::string reason) {
  FrameResult r;
  r.status = DecodeStatus::kMalformed;
  r.error = std::move(reason);
  return r;
}

StartupResult startup_error(std::string reason) {
  StartupResult r;
  r.status = DecodeStatus::kMalformed;
  r.error = std::move(reason);
  return r;
}

// Validates the length/code pair of a startup-phase packet as soon as both are known, so a
// bogus packet is rejected before we wait for (or buffer) its body. Empty string = fine.
std::string check_startup_header(int32_t length, int32_t code) {
  switch (code) {
    case kSSLRequestCode:
      return length == 8 ? "" : "SSLRequest length must be 8, got " + std::to_string(length);
    case kGSSENCRequestCode:
      return length == 8 ? "" : "GSSENCRequest length must be 8, got " + std::to_string(length);
    case kCancelRequestCode:
      return length == 16 ? "" : "CancelRequest length must be 16, got " + std::to_string(length);
    default:
      break;
  }
  const int32_t major = static_cast<int32_t>(static_cast<uint32_t>(code) >> 16);
  if (major == 1234) return "unknown startup request code " + std::to_string(code);
  if (major != 3) {
    return "unsupported frontend protocol " + std::to_string(major) + "." +
           std::to_string(code & 0xffff) + " (only 3.x is supported)";
  }
  return "";
}

// Parses the name\0value\0...\0 list of a StartupMessage. Empty string = fine.
std::string parse_startup_params(std::string_view payload, StartupPacket& packet) {
  Reader r(payload);
  for (;;) {
    const auto name = r.cstring();
    if (!name) return "startup parameters are not terminated";
    if (name->empty()) break;  // the final terminator
    const auto value = r.cstring();
    if (!value) return "startup parameter \"" + std::string(*name) + "\" has no value terminator";
    if (packet.param(*name) != nullptr) {
      return "duplicate startup parameter \"" + std::string(*name) + "\"";
    }
    packet.params.emplace_back(std::string(*name), std::string(*value));
  }
  if (!r.done()) return "unexpected bytes after the startup parameter terminator";
  return "";
}

}  // namespace

// ---- decoding ------------------------------------------------------------------------------

FrameResult decode_frame(std::string_view in, size_t max_len) {
  if (in.size() < 5) return {};  // kNeedMore
  const uint32_t length = read_u32(in, 1);
  if (length < 4) return frame_error("message length " + std::to_string(length) + " is below 4");
  if (length > static_cast<uint32_t>(std::numeric_limits<int32_t>::max()) || length > max_len) {
    FrameResult r = frame_error("message length " + std::to_string(length) + " exceeds the limit of " +
                                std::to_string(max_len));
    r.too_long = length <= static_cast<uint32_t>(std::numeric_limits<int32_t>::max());
    r.length = length;
    return r;
  }
  const size_t total = size_t{1} + length;
  if (in.size() < total) {
    FrameResult more;  // kNeedMore
    more.length = length;
    return more;
  }
  FrameResult r;
  r.length = length;
  r.status = DecodeStatus::kComplete;
  r.frame.tag = in[0];
  r.frame.body = in.substr(5, length - 4);
  r.frame.size = total;
  return r;
}

std::string frontend_message_name(char tag) {
  switch (tag) {
    case fe::kQuery: return "Query";
    case fe::kParse: return "Parse";
    case fe::kBind: return "Bind";
    case fe::kDescribe: return "Describe";
    case fe::kExecute: return "Execute";
    case fe::kClose: return "Close";
    case fe::kSync: return "Sync";
    case fe::kFlush: return "Flush";
    case fe::kFunctionCall: return "FunctionCall";
    case fe::kCopyData: return "CopyData";
    case fe::kCopyDone: return "CopyDone";
    case fe::kCopyFail: return "CopyFail";
    case fe::kTerminate: return "Terminate";
    case fe::kPasswordMessage: return "PasswordMessage";
    default: break;
  }
  const auto c = static_cast<unsigned char>(tag);
  if (c >= 0x20 && c < 0x7f) return std::string("message '") + tag + "'";
  char hex[16];
  std::snprintf(hex, sizeof hex, "message 0x%02x", c);
  return hex;
}

const std::string* StartupPacket::param(std::string_view name) const {
  for (const auto& [key, value] : params) {
    if (key == name) return &value;
  }
  return nullptr;
}

StartupResult decode_startup(std::string_view in, size_t max_len) {
  if (in.size() < 4) return {};  // kNeedMore
  const int32_t length = read_i32(in, 0);
  if (length < 8) {
    return startup_error("startup packet length " + std::to_string(length) + " is below 8");
  }
  if (static_cast<size_t>(length) > max_len) {
    StartupResult r = startup_error("startup packet length " + std::to_string(length) +
                                    " exceeds the limit of " + std::to_string(max_len));
    r.too_long = true;
    return r;
  }
  if (in.size() < 8) return {};  // kNeedMore
  const int32_t code = read_i32(in, 4);
  if (std::string err = check_startup_header(length, code); !err.empty()) {
    return startup_error(std::move(err));
  }
  if (in.size() < static_cast<size_t>(length)) return {};  // kNeedMore

  StartupResult r;
  r.size = static_cast<size_t>(length);
  StartupPacket& p = r.packet;
  switch (code) {
    case kSSLRequestCode:
      p.kind = StartupPacket::Kind::kSSLRequest;
      break;
    case kGSSENCRequestCode:
      p.kind = StartupPacket::Kind::kGSSENCRequest;
      break;
    case kCancelRequestCode:
      p.kind = StartupPacket::Kind::kCancelRequest;
      p.cancel_pid = read_i32(in, 8);
      p.cancel_key = read_i32(in, 12);
      break;
    default: {
      p.kind = StartupPacket::Kind::kStartup;
      p.protocol_version = code;
      const std::string_view payload = in.substr(8, r.size - 8);
      if (std::string err = parse_startup_params(payload, p); !err.empty()) {
        return startup_error(std::move(err));
      }
      // As PostgreSQL: "no PostgreSQL user name specified in startup packet" (also when empty).
      const std::string* user = p.param("user");
      if (user == nullptr || user->empty()) {
        return startup_error("no user name specified in startup packet");
      }
      break;
    }
  }
  r.status = DecodeStatus::kComplete;
  return r;
}

// ---- body parsers --------------------------------------------------------------------------

std::optional<std::string_view> parse_query(std::string_view body) {
  Reader r(body);
  const auto sql = r.cstring();
  if (!sql || !r.done()) return std::nullopt;
  return sql;
}

std::optional<ReadyForQuery> parse_ready_for_query(std::string_view body) {
  if (body.size() != 1) return std::nullopt;
  const char s = body[0];
  if (s != 'I' && s != 'T' && s != 'E') return std::nullopt;
  return ReadyForQuery{s};
}

std::optional<Authentication> parse_authentication(std::string_view body) {
  Reader r(body);
  const auto code = r.i32();
  if (!code) return std::nullopt;
  Authentication a;
  a.code = static_cast<AuthCode>(*code);
  switch (a.code) {
    case AuthCode::kOk:
    case AuthCode::kCleartextPassword:
      break;
    case AuthCode::kMD5Password: {
      const auto salt = r.bytes(4);
      if (!salt) return std::nullopt;
      a.data = std::string(*salt);
      break;
    }
    case AuthCode::kSASL:
      for (;;) {
        const auto mech = r.cstring();
        if (!mech) return std::nullopt;
        if (mech->empty()) break;
        a.mechanisms.emplace_back(*mech);
      }
      break;
    case AuthCode::kSASLContinue:
    case AuthCode::kSASLFinal:
    default:  // an unsupported method: keep the payload, the caller rejects the code
      a.data = std::string(r.rest());
      break;
  }
  if (!r.done()) return std::nullopt;
  return a;
}

std::optional<ParameterStatus> parse_parameter_status(std::string_view body) {
  Reader r(body);
  const auto name = r.cstring();
  if (!name) return std::nullopt;
  const auto value = r.cstring();
  if (!value || !r.done()) return std::nullopt;
  return ParameterStatus{std::string(*name), std::string(*value)};
}

std::optional<BackendKeyData> parse_backend_key_data(std::string_view body) {
  Reader r(body);
  const auto pid = r.i32();
  const auto key = r.i32();
  if (!pid || !key || !r.done()) return std::nullopt;
  return BackendKeyData{*pid, *key};
}

std::string ErrorFields::get(char code) const {
  for (const auto& [c, value] : fields) {
    if (c == code) return value;
  }
  return "";
}

std::optional<ErrorFields> parse_error_fields(std::string_view body) {
  Reader r(body);
  ErrorFields ef;
  for (;;) {
    const auto code = r.byte();
    if (!code) return std::nullopt;  // no terminating 0 byte
    if (*code == '\0') break;
    const auto value = r.cstring();
    if (!value) return std::nullopt;
    ef.fields.emplace_back(*code, std::string(*value));
  }
  if (!r.done()) return std::nullopt;
  return ef;
}

std::optional<SASLInitialResponse> parse_sasl_initial_response(std::string_view body) {
  Reader r(body);
  const auto mech = r.cstring();
  if (!mech) return std::nullopt;
  const auto length = r.i32();
  if (!length || *length < -1) return std::nullopt;
  SASLInitialResponse s;
  s.mechanism = std::string(*mech);
  if (*length >= 0) {
    const auto data = r.bytes(static_cast<size_t>(*length));
    if (!data) return std::nullopt;
    s.data = std::string(*data);
  }
  if (!r.done()) return std::nullopt;
  return s;
}

// ---- extended query protocol ---------------------------------------------------------------

std::optional<ParseMessage> parse_parse(std::string_view body) {
  Reader r(body);
  ParseMessage m;
  const auto name = r.cstring();
  const auto query = name ? r.cstring() : std::nullopt;
  if (!query) return std::nullopt;
  m.statement = *name;
  m.query = *query;
  const auto n = r.bytes(2);
  if (!n) return std::nullopt;
  const int count = (static_cast<unsigned char>((*n)[0]) << 8) | static_cast<unsigned char>((*n)[1]);
  for (int i = 0; i < count; ++i) {
    const auto oid = r.i32();
    if (!oid) return std::nullopt;
    m.param_types.push_back(*oid);
  }
  if (!r.done()) return std::nullopt;
  return m;
}

namespace {
std::optional<int16_t> read_i16(Reader& r) {
  const auto b = r.bytes(2);
  if (!b) return std::nullopt;
  return static_cast<int16_t>((static_cast<unsigned char>((*b)[0]) << 8) |
                              static_cast<unsigned char>((*b)[1]));
}

bool read_formats(Reader& r, std::vector<int16_t>& out) {
  const auto n = read_i16(r);
  if (!n || *n < 0) return false;
  for (int i = 0; i < *n; ++i) {
    const auto f = read_i16(r);
    if (!f || (*f != 0 && *f != 1)) return false;
    out.push_back(*f);
  }
  return true;
}

void put_i16(std::string& out, int16_t v) {
  out.push_back(static_cast<char>((static_cast<uint16_t>(v) >> 8) & 0xff));
  out.push_back(static_cast<char>(static_cast<uint16_t>(v) & 0xff));
}
}  // namespace

int16_t BindMessage::format_of(size_t param) const {
  if (param_formats.empty()) return 0;
  if (param_formats.size() == 1) return param_formats[0];
  return param < param_formats.size() ? param_formats[param] : 0;
}

std::optional<BindMessage> parse_bind(std::string_view body) {
  Reader r(body);
  BindMessage m;
  const auto portal = r.cstring();
  const auto stmt = portal ? r.cstring() : std::nullopt;
  if (!stmt) return std::nullopt;
  m.portal = *portal;
  m.statement = *stmt;
  if (!read_formats(r, m.param_formats)) return std::nullopt;
  const auto n = read_i16(r);
  if (!n || *n < 0) return std::nullopt;
  if (m.param_formats.size() > 1 && m.param_formats.size() != static_cast<size_t>(*n)) return std::nullopt;
  for (int i = 0; i < *n; ++i) {
    const auto len = r.i32();
    if (!len || *len < -1) return std::nullopt;
    if (*len == -1) {
      m.params.emplace_back(std::nullopt);
      continue;
    }
    const auto v = r.bytes(static_cast<size_t>(*len));
    if (!v) return std::nullopt;
    m.params.emplace_back(*v);
  }
  if (!read_formats(r, m.result_formats)) return std::nullopt;
  if (!r.done()) return std::nullopt;
  return m;
}

std::optional<TargetMessage> parse_target(std::string_view body) {
  Reader r(body);
  const auto kind = r.byte();
  if (!kind || (*kind != 'S' && *kind != 'P')) return std::nullopt;
  const auto name = r.cstring();
  if (!name || !r.done()) return std::nullopt;
  return TargetMessage{*kind, *name};
}

void append_parse(std::string& out, std::string_view statement, std::string_view query,
                  const std::vector<int32_t>& param_types) {
  const size_t at = begin_message(out, fe::kParse);
  put_cstring(out, statement);
  put_cstring(out, query);
  put_i16(out, static_cast<int16_t>(param_types.size()));
  for (int32_t oid : param_types) put_i32(out, oid);
  end_message(out, at);
}

void append_bind_empty(std::string& out, std::string_view portal, std::string_view statement) {
  const size_t at = begin_message(out, fe::kBind);
  put_cstring(out, portal);
  put_cstring(out, statement);
  put_i16(out, 0);
  put_i16(out, 0);
  put_i16(out, 0);
  end_message(out, at);
}

// ---- encoders ------------------------------------------------------------------------------
// Strings written as NUL-terminated fields must not contain NUL themselves; the encoders do not
// check this (the messages they re-encode were parsed by the functions above, which split on NUL).

void append_frame(std::string& out, char tag, std::string_view body) {
  const size_t at = begin_message(out, tag);
  out.append(body);
  end_message(out, at);
}

void append_startup(std::string& out, const std::vector<std::pair<std::string, std::string>>& params) {
  const size_t at = begin_untagged(out);
  put_i32(out, kProtocolV3);
  for (const auto& [name, value] : params) {
    put_cstring(out, name);
    put_cstring(out, value);
  }
  out.push_back('\0');
  end_message(out, at);
}

void append_ssl_request(std::string& out) {
  put_i32(out, 8);
  put_i32(out, kSSLRequestCode);
}

void append_cancel_request(std::string& out, int32_t pid, int32_t key) {
  put_i32(out, 16);
  put_i32(out, kCancelRequestCode);
  put_i32(out, pid);
  put_i32(out, key);
}

void append_query(std::string& out, std::string_view sql) {
  const size_t at = begin_message(out, fe::kQuery);
  put_cstring(out, sql);
  end_message(out, at);
}

void append_terminate(std::string& out) { append_frame(out, fe::kTerminate, {}); }

void append_password(std::string& out, std::string_view password) {
  const size_t at = begin_message(out, fe::kPasswordMessage);
  put_cstring(out, password);
  end_message(out, at);
}

void append_sasl_initial_response(std::string& out, std::string_view mechanism, std::string_view data) {
  require_encodable(data.size());
  const size_t at = begin_message(out, fe::kPasswordMessage);
  put_cstring(out, mechanism);
  put_i32(out, static_cast<int32_t>(data.size()));
  out.append(data);
  end_message(out, at);
}

void append_sasl_response(std::string& out, std::string_view data) {
  append_frame(out, fe::kPasswordMessage, data);
}

namespace {
// 'R' + code + payload.
void append_auth(std::string& out, AuthCode code, std::string_view payload) {
  const size_t at = begin_message(out, be::kAuthentication);
  put_i32(out, static_cast<int32_t>(code));
  out.append(payload);
  end_message(out, at);
}
}  // namespace

void append_auth_ok(std::string& out) { append_auth(out, AuthCode::kOk, {}); }

void append_auth_sasl(std::string& out, const std::vector<std::string>& mechanisms) {
  const size_t at = begin_message(out, be::kAuthentication);
  put_i32(out, static_cast<int32_t>(AuthCode::kSASL));
  for (const auto& m : mechanisms) put_cstring(out, m);
  out.push_back('\0');
  end_message(out, at);
}

void append_auth_sasl_continue(std::string& out, std::string_view data) {
  append_auth(out, AuthCode::kSASLContinue, data);
}

void append_auth_sasl_final(std::string& out, std::string_view data) {
  append_auth(out, AuthCode::kSASLFinal, data);
}

void append_auth_cleartext(std::string& out) { append_auth(out, AuthCode::kCleartextPassword, {}); }

void append_parameter_status(std::string& out, std::string_view name, std::string_view value) {
  const size_t at = begin_message(out, be::kParameterStatus);
  put_cstring(out, name);
  put_cstring(out, value);
  end_message(out, at);
}

void append_backend_key_data(std::string& out, int32_t pid, int32_t key) {
  const size_t at = begin_message(out, be::kBackendKeyData);
  put_i32(out, pid);
  put_i32(out, key);
  end_message(out, at);
}

void append_ready_for_query(std::string& out, char status) {
  const size_t at = begin_message(out, be::kReadyForQuery);
  out.push_back(status);
  end_message(out, at);
}

namespace {
void put_field(std::string& out, char code, std::string_view value) {
  out.push_back(code);
  put_cstring(out, value);
}

void append_report(std::string& out, char tag, std::string_view severity, std::string_view sqlstate,
                   std::string_view message, std::string_view detail, std::string_view hint) {
  const size_t at = begin_message(out, tag);
  put_field(out, 'S', severity);
  put_field(out, 'V', severity);
  put_field(out, 'C', sqlstate);
  put_field(out, 'M', message);
  if (!detail.empty()) put_field(out, 'D', detail);
  if (!hint.empty()) put_field(out, 'H', hint);
  out.push_back('\0');
  end_message(out, at);
}
}  // namespace

void append_error_response(std::string& out, std::string_view severity, std::string_view sqlstate,
                           std::string_view message, std::string_view detail,
                           std::string_view hint) {
  append_report(out, be::kErrorResponse, severity, sqlstate, message, detail, hint);
}

void append_notice_response(std::string& out, std::string_view sqlstate, std::string_view message) {
  append_report(out, be::kNoticeResponse, "NOTICE", sqlstate, message, {}, {});
}

void append_error_fields(std::string& out, char tag, const ErrorFields& fields) {
  const size_t at = begin_message(out, tag);
  for (const auto& [code, value] : fields.fields) {
    if (code == '\0') continue;  // would end the field list early
    put_field(out, code, value);
  }
  out.push_back('\0');
  end_message(out, at);
}

}  // namespace rowguard::protocol
