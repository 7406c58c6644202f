#include "tests/support/raw_pq.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

namespace rowguard::testing::raw {
namespace {

void put32(std::string& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>((v >> s) & 0xFF));
}
void put16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xFF));
}
void cstr(std::string& out, std::string_view s) {
  out.append(s);
  out.push_back('\0');
}
std::string frame(char tag, std::string_view body) {
  std::string out(1, tag);
  put32(out, static_cast<uint32_t>(body.size() + 4));
  out.append(body);
  return out;
}
uint32_t get32(std::string_view b) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(b[i]);
  return v;
}

}  // namespace

std::string Message::bytes() const { return frame(tag, body); }

std::string parse(std::string_view name, std::string_view query, const std::vector<int32_t>& types) {
  std::string b;
  cstr(b, name);
  cstr(b, query);
  put16(b, static_cast<uint16_t>(types.size()));
  for (int32_t t : types) put32(b, static_cast<uint32_t>(t));
  return frame('P', b);
}

std::string bind(std::string_view portal, std::string_view statement,
                 const std::vector<std::optional<std::string>>& params) {
  std::string b;
  cstr(b, portal);
  cstr(b, statement);
  put16(b, 0);  // all parameters text
  put16(b, static_cast<uint16_t>(params.size()));
  for (const auto& p : params) {
    if (!p) {
      put32(b, 0xFFFFFFFFu);
    } else {
      put32(b, static_cast<uint32_t>(p->size()));
      b.append(*p);
    }
  }
  put16(b, 0);  // all results text
  return frame('B', b);
}

std::string describe(char kind, std::string_view name) {
  std::string b(1, kind);
  cstr(b, name);
  return frame('D', b);
}

std::string execute(std::string_view portal, int32_t max_rows) {
  std::string b;
  cstr(b, portal);
  put32(b, static_cast<uint32_t>(max_rows));
  return frame('E', b);
}

std::string close(char kind, std::string_view name) {
  std::string b(1, kind);
  cstr(b, name);
  return frame('C', b);
}

std::string sync() { return frame('S', {}); }
std::string flush() { return frame('H', {}); }

std::string query(std::string_view sql) {
  std::string b;
  cstr(b, sql);
  return frame('Q', b);
}

std::string error_field(const Message& m, char code) {
  size_t i = 0;
  while (i < m.body.size() && m.body[i] != '\0') {
    const char c = m.body[i++];
    size_t end = m.body.find('\0', i);
    if (end == std::string::npos) break;
    if (c == code) return m.body.substr(i, end - i);
    i = end + 1;
  }
  return "";
}

std::string summary(const std::vector<Message>& messages) {
  std::string out;
  for (const auto& m : messages) {
    if (!out.empty()) out += ' ';
    out += m.tag;
    if (m.tag == 'E') out += "(" + error_field(m, 'C') + ")";
    if (m.tag == 'Z' && !m.body.empty()) out += "(" + m.body.substr(0, 1) + ")";
  }
  return out;
}

Wire::~Wire() {
  if (owned_ && fd_ >= 0) ::close(fd_);
}

std::unique_ptr<Wire> Wire::connect_trust(const std::string& socket_dir, int port, const std::string& user,
                                          const std::string& database) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0) return nullptr;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string path = socket_dir + "/.s.PGSQL." + std::to_string(port);
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return nullptr;
  }
  auto w = std::make_unique<Wire>(fd);
  w->owned_ = true;
  std::string body;
  put32(body, 196608);
  cstr(body, "user");
  cstr(body, user);
  cstr(body, "database");
  cstr(body, database);
  body.push_back('\0');
  std::string packet;
  put32(packet, static_cast<uint32_t>(body.size() + 4));
  packet += body;
  if (!w->send(packet)) return nullptr;
  for (;;) {
    auto m = w->read();
    if (!m || m->tag == 'E') return nullptr;
    if (m->tag == 'R' && get32(m->body) != 0) return nullptr;  // not trust
    if (m->tag == 'Z') return w;
  }
}

bool Wire::send(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::optional<Message> Wire::read(int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    if (buf_.size() >= 5) {
      const uint32_t len = get32(std::string_view(buf_).substr(1, 4));
      if (len >= 4 && buf_.size() >= 1 + static_cast<size_t>(len)) {
        Message m{buf_[0], buf_.substr(5, len - 4)};
        buf_.erase(0, 1 + len);
        return m;
      }
    }
    if (closed_) return std::nullopt;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return std::nullopt;
    char chunk[16384];
    ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n <= 0) {
      closed_ = true;
      continue;
    }
    buf_.append(chunk, static_cast<size_t>(n));
  }
}

std::vector<Message> Wire::read_until_ready(int count, int timeout_ms) {
  std::vector<Message> out;
  while (count > 0) {
    auto m = read(timeout_ms);
    if (!m) break;
    if (m->tag == 'Z') --count;
    out.push_back(std::move(*m));
  }
  return out;
}

}  // namespace rowguard::testing::raw
