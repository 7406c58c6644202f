#pragma once
// A raw PostgreSQL v3 wire client for tests that need message sequences no driver sends (an
// extended-protocol batch with a simple Query inside it, a Bind to a name never prepared, ...).
// It writes frames built here and reads the answers message by message, with a timeout.
// Either it logs in itself (trust authentication, straight to a PgServer) or it takes over the
// socket of an idle libpq connection (PQsocket), e.g. one that logged in to rowguard with SCRAM.
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rowguard::testing::raw {

struct Message {
  char tag = 0;
  std::string body;
  std::string bytes() const;  // the whole frame (tag, length, body)
};

// Frontend messages (text-format parameters; nullopt = NULL).
std::string parse(std::string_view name, std::string_view query, const std::vector<int32_t>& types = {});
std::string bind(std::string_view portal, std::string_view statement,
                 const std::vector<std::optional<std::string>>& params = {});
std::string describe(char kind, std::string_view name);
std::string execute(std::string_view portal, int32_t max_rows = 0);
std::string close(char kind, std::string_view name);
std::string sync();
std::string flush();
std::string query(std::string_view sql);

// Fields of an ErrorResponse / NoticeResponse ("" when absent).
std::string error_field(const Message& m, char code);
// "1 2 D C E(42501) Z(I)": tags, with the SQLSTATE of errors and the status of ReadyForQuery.
std::string summary(const std::vector<Message>& messages);

class Wire {
 public:
  // Not owned: the fd stays open (libpq closes it).
  explicit Wire(int fd) : fd_(fd) {}
  ~Wire();
  Wire(const Wire&) = delete;
  Wire& operator=(const Wire&) = delete;

  // A new connection to a PostgreSQL that trusts `user` on its Unix socket; returns after the
  // first ReadyForQuery (nullptr on failure). Owns its socket.
  static std::unique_ptr<Wire> connect_trust(const std::string& socket_dir, int port, const std::string& user,
                                             const std::string& database);

  bool send(std::string_view bytes);
  // The next message; nullopt when the connection closed or nothing came within timeout_ms.
  std::optional<Message> read(int timeout_ms = 10000);
  // Messages until the count-th ReadyForQuery (inclusive); stops early on close or timeout.
  std::vector<Message> read_until_ready(int count = 1, int timeout_ms = 10000);
  bool closed() const { return closed_; }

 private:
  int fd_ = -1;
  bool owned_ = false;
  bool closed_ = false;
  std::string buf_;
};

}  // namespace rowguard::testing::raw
