#pragma once
// PostgreSQL wire protocol v3 codec: bytes <-> typed messages. No sockets, no I/O.
//
// Decoding is incremental: give it the bytes received so far, it answers Complete (one message
// and how many bytes it used), NeedMore, or Malformed (with a reason). Length fields are
// validated against a cap *before* anything is allocated.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rowguard::protocol {

// Message tags, by their PostgreSQL names (protocol-message-formats).
namespace fe {  // frontend -> backend
inline constexpr char kQuery = 'Q';
inline constexpr char kParse = 'P';
inline constexpr char kBind = 'B';
inline constexpr char kDescribe = 'D';
inline constexpr char kExecute = 'E';
inline constexpr char kClose = 'C';
inline constexpr char kSync = 'S';
inline constexpr char kFlush = 'H';
inline constexpr char kFunctionCall = 'F';
inline constexpr char kCopyData = 'd';
inline constexpr char kCopyDone = 'c';
inline constexpr char kCopyFail = 'f';
inline constexpr char kTerminate = 'X';
inline constexpr char kPasswordMessage = 'p';  // also SASLInitialResponse / SASLResponse
}  // namespace fe
namespace be {  // backend -> frontend
inline constexpr char kAuthentication = 'R';
inline constexpr char kBackendKeyData = 'K';
inline constexpr char kParameterStatus = 'S';
inline constexpr char kReadyForQuery = 'Z';
inline constexpr char kErrorResponse = 'E';
inline constexpr char kNoticeResponse = 'N';
inline constexpr char kNotificationResponse = 'A';
inline constexpr char kRowDescription = 'T';
inline constexpr char kDataRow = 'D';
inline constexpr char kCommandComplete = 'C';
inline constexpr char kEmptyQueryResponse = 'I';
inline constexpr char kCopyInResponse = 'G';
inline constexpr char kCopyOutResponse = 'H';
inline constexpr char kCopyBothResponse = 'W';
inline constexpr char kParameterDescription = 't';
inline constexpr char kParseComplete = '1';
inline constexpr char kBindComplete = '2';
inline constexpr char kCloseComplete = '3';
inline constexpr char kNoData = 'n';
inline constexpr char kPortalSuspended = 's';
inline constexpr char kNegotiateProtocolVersion = 'v';
}  // namespace be

// Authentication request codes (the int32 after 'R').
enum class AuthCode : int32_t {
  kOk = 0,
  kCleartextPassword = 3,
  kMD5Password = 5,
  kSASL = 10,
  kSASLContinue = 11,
  kSASLFinal = 12,
};

inline constexpr int32_t kProtocolV3 = 196608;        // 3.0
inline constexpr int32_t kSSLRequestCode = 80877103;
inline constexpr int32_t kGSSENCRequestCode = 80877104;
inline constexpr int32_t kCancelRequestCode = 80877102;

enum class DecodeStatus { kComplete, kNeedMore, kMalformed };

// One regular message: 1-byte tag + int32 length (counting itself) + body.
struct Frame {
  char tag = 0;
  std::string_view body;  // points into the input buffer
  size_t size = 0;        // total bytes of the frame (1 + length)
};

struct FrameResult {
  DecodeStatus status = DecodeStatus::kNeedMore;
  Frame frame;
  std::string error;      // set when kMalformed
  bool too_long = false;  // kMalformed because the length word is over max_len
  uint32_t length = 0;    // the length word, once the 5-byte header is there
};

// Decodes the first regular message of `in`. A length < 4 or > max_len is Malformed, decided
// from the 5-byte header alone (before the body is received).
FrameResult decode_frame(std::string_view in, size_t max_len);

// The first packet of a connection has no tag: int32 length + int32 code + payload.
struct StartupPacket {
  enum class Kind { kStartup, kSSLRequest, kGSSENCRequest, kCancelRequest };
  Kind kind = Kind::kStartup;
  int32_t protocol_version = 0;                              // kStartup
  std::vector<std::pair<std::string, std::string>> params;  // kStartup, in order
  int32_t cancel_pid = 0;                                    // kCancelRequest
  int32_t cancel_key = 0;                                    // kCancelRequest

  const std::string* param(std::string_view name) const;
};

struct StartupResult {
  DecodeStatus status = DecodeStatus::kNeedMore;
  StartupPacket packet;
  size_t size = 0;
  std::string error;
  bool too_long = false;  // kMalformed because the length word is over max_len
};

// Decodes a startup-phase packet. Rejects: length < 8 or > max_len, an unknown code, a protocol
// major version other than 3, params not terminated properly, a missing "user" param, leftover
// bytes inside the declared length.
StartupResult decode_startup(std::string_view in, size_t max_len);

// "Bind", "CopyData", ... for a frontend message tag; "message 'x'" for an unknown one.
std::string frontend_message_name(char tag);

// ---- bodies of individual messages (body = Frame::body) --------------------------------------
// Each returns std::nullopt when the body is malformed (missing terminator, short, leftover bytes).

std::optional<std::string_view> parse_query(std::string_view body);  // Query: the SQL text

struct ReadyForQuery { char status = 'I'; };  // 'I' idle, 'T' in transaction, 'E' failed tx
std::optional<ReadyForQuery> parse_ready_for_query(std::string_view body);

struct Authentication {
  AuthCode code = AuthCode::kOk;
  std::string data;                     // MD5: 4-byte salt; SASLContinue/Final: payload
  std::vector<std::string> mechanisms;  // SASL
};
std::optional<Authentication> parse_authentication(std::string_view body);

struct ParameterStatus { std::string name, value; };
std::optional<ParameterStatus> parse_parameter_status(std::string_view body);

struct BackendKeyData { int32_t pid = 0; int32_t key = 0; };
std::optional<BackendKeyData> parse_backend_key_data(std::string_view body);

// ErrorResponse / NoticeResponse: (field code, value) pairs, e.g. ('C', "42501"), ('M', "...").
struct ErrorFields {
  std::vector<std::pair<char, std::string>> fields;
  std::string get(char code) const;  // "" when absent
};
std::optional<ErrorFields> parse_error_fields(std::string_view body);

struct SASLInitialResponse { std::string mechanism; std::string data; };  // data empty if len -1
std::optional<SASLInitialResponse> parse_sasl_initial_response(std::string_view body);

// ---- extended query protocol (frontend) ----------------------------------------------------

struct ParseMessage {
  std::string_view statement;        // "" = the unnamed statement
  std::string_view query;
  std::vector<int32_t> param_types;  // OIDs; 0 = let the server infer
};
std::optional<ParseMessage> parse_parse(std::string_view body);

struct BindMessage {
  std::string_view portal;
  std::string_view statement;
  std::vector<int16_t> param_formats;  // 0, 1 (all same) or one per parameter
  std::vector<std::optional<std::string_view>> params;  // nullopt = NULL
  std::vector<int16_t> result_formats;
  int16_t format_of(size_t param) const;  // 0 text, 1 binary
};
std::optional<BindMessage> parse_bind(std::string_view body);

struct TargetMessage {  // Describe and Close: 'S' statement or 'P' portal + name
  char kind = 'S';
  std::string_view name;
};
std::optional<TargetMessage> parse_target(std::string_view body);

void append_parse(std::string& out, std::string_view statement, std::string_view query,
                  const std::vector<int32_t>& param_types);
// A Bind with no parameters and no format codes (rowguard uses it only for refusals).
void append_bind_empty(std::string& out, std::string_view portal, std::string_view statement);

// ---- encoders: each appends one complete message to `out` ---------------------------------
void append_frame(std::string& out, char tag, std::string_view body);
void append_startup(std::string& out, const std::vector<std::pair<std::string, std::string>>& params);
void append_ssl_request(std::string& out);
void append_cancel_request(std::string& out, int32_t pid, int32_t key);
void append_query(std::string& out, std::string_view sql);
void append_terminate(std::string& out);
void append_password(std::string& out, std::string_view password);  // cleartext or md5 hex
void append_sasl_initial_response(std::string& out, std::string_view mechanism, std::string_view data);
void append_sasl_response(std::string& out, std::string_view data);

void append_auth_ok(std::string& out);
void append_auth_sasl(std::string& out, const std::vector<std::string>& mechanisms);
void append_auth_sasl_continue(std::string& out, std::string_view data);
void append_auth_sasl_final(std::string& out, std::string_view data);
void append_auth_cleartext(std::string& out);
void append_parameter_status(std::string& out, std::string_view name, std::string_view value);
void append_backend_key_data(std::string& out, int32_t pid, int32_t key);
void append_ready_for_query(std::string& out, char status);
// Severity: "ERROR", "FATAL", ... ; both S and V fields are written, then C and M (+ D/H if set).
void append_error_response(std::string& out, std::string_view severity, std::string_view sqlstate,
                           std::string_view message, std::string_view detail = {},
                           std::string_view hint = {});
void append_notice_response(std::string& out, std::string_view sqlstate, std::string_view message);
void append_error_fields(std::string& out, char tag, const ErrorFields& fields);  // 'E' or 'N'

}  // namespace rowguard::protocol
