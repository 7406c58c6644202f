// Process, file and socket helpers for the tests (see process.h). Children are started with
// fork + execvpe; everything the child needs is prepared before fork so that the child only
// makes async-signal-safe calls.
#include "tests/support/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

extern char** environ;

namespace rowguard::testing {
namespace {

using Clock = std::chrono::steady_clock;

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

// argv or envp in the form exec wants, owning its strings.
class CStringArray {
 public:
  explicit CStringArray(std::vector<std::string> items) : items_(std::move(items)) {
    for (auto& item : items_) pointers_.push_back(item.data());
    pointers_.push_back(nullptr);
  }
  char** data() { return pointers_.data(); }

 private:
  std::vector<std::string> items_;
  std::vector<char*> pointers_;
};

// This process's environment with extra_env added or overridden.
std::vector<std::string> merged_environment(const std::map<std::string, std::string>& extra_env) {
  std::vector<std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    std::string item(*entry);
    std::string name = item.substr(0, item.find('='));
    if (extra_env.count(name) == 0) env.push_back(std::move(item));
  }
  for (const auto& [name, value] : extra_env) env.push_back(name + "=" + value);
  return env;
}

int decode_wait_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// An fd closed on scope exit.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept {
    reset(other.release());
    return *this;
  }
  int release() { return std::exchange(fd_, -1); }
  int get() const { return fd_; }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

struct Pipe {
  Fd read_end, write_end;
};

Pipe make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error(errno_text("pipe2"));
  Pipe pipe;
  pipe.read_end.reset(fds[0]);
  pipe.write_end.reset(fds[1]);
  return pipe;
}

// In the child after fork: wire up stdio, make the child die with its parent, close every
// other descriptor, exec. Only async-signal-safe calls.
[[noreturn]] void exec_child(int stdin_fd, int stdout_fd, int stderr_fd, pid_t parent, const char* cwd,
                             char** argv, char** envp) {
  ::setpgid(0, 0);  // own process group, so a timeout can kill the whole tree
  ::signal(SIGPIPE, SIG_DFL);
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (::getppid() != parent) ::_exit(127);
  if (::dup2(stdin_fd, 0) < 0 || ::dup2(stdout_fd, 1) < 0 || ::dup2(stderr_fd, 2) < 0) ::_exit(127);
  ::syscall(SYS_close_range, 3U, ~0U, 0U);
  if (cwd != nullptr && ::chdir(cwd) != 0) {
    const char message[] = "run_command: cannot chdir\n";
    (void)!::write(2, message, sizeof(message) - 1);
    ::_exit(127);
  }
  ::execvpe(argv[0], argv, envp);
  const char message[] = "run_command: exec failed: ";
  (void)!::write(2, message, sizeof(message) - 1);
  (void)!::write(2, argv[0], std::strlen(argv[0]));
  (void)!::write(2, "\n", 1);
  ::_exit(127);
}

// Reads whatever is available on fd into sink; closes fd on EOF or error.
void read_available(Fd& fd, std::string& sink) {
  char buffer[65536];
  ssize_t n = ::read(fd.get(), buffer, sizeof(buffer));
  if (n > 0) {
    sink.append(buffer, static_cast<std::size_t>(n));
  } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
    fd.reset();
  }
}

// Writes as much of data[offset..] as the pipe takes; closes fd when done or the reader left.
void write_available(Fd& fd, const std::string& data, std::size_t& offset) {
  if (offset < data.size()) {
    ssize_t n = ::write(fd.get(), data.data() + offset, data.size() - offset);
    if (n > 0) offset += static_cast<std::size_t>(n);
    else if (errno != EINTR && errno != EAGAIN) offset = data.size();
  }
  if (offset >= data.size()) fd.reset();
}

void ignore_sigpipe_once() {
  static const bool done = [] {
    ::signal(SIGPIPE, SIG_IGN);  // a child that exits early must not kill us through its stdin
    return true;
  }();
  (void)done;
}

}  // namespace

std::string format_command(const std::vector<std::string>& argv) {
  std::string text;
  for (const auto& arg : argv) {
    if (!text.empty()) text += ' ';
    bool plain = !arg.empty() && arg.find_first_of(" \t\n'\"\\$`*?;&|<>(){}") == std::string::npos;
    if (plain) {
      text += arg;
      continue;
    }
    text += '\'';
    for (char c : arg) text += (c == '\'') ? std::string("'\\''") : std::string(1, c);
    text += '\'';
  }
  return text;
}

std::string describe(const CommandResult& result) {
  return "exit code " + std::to_string(result.exit_code) + "\nstdout:\n" + result.out + "\nstderr:\n" +
         result.err;
}

CommandResult run_command(const std::vector<std::string>& argv, const std::map<std::string, std::string>& extra_env,
                          const std::string& stdin_data, int timeout_seconds) {
  CommandOptions options;
  options.extra_env = extra_env;
  options.stdin_data = stdin_data;
  options.timeout_seconds = timeout_seconds;
  return run_command_with(argv, options);
}

CommandResult run_command_with(const std::vector<std::string>& argv, const CommandOptions& options) {
  CommandResult result;
  if (argv.empty()) {
    result.err = "run_command: empty argv";
    return result;
  }
  ignore_sigpipe_once();
  CStringArray child_argv(argv);
  CStringArray child_env(merged_environment(options.extra_env));
  const char* cwd = options.cwd.empty() ? nullptr : options.cwd.c_str();

  Pipe in = make_pipe(), out = make_pipe(), err = make_pipe();
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(errno_text("fork"));
  if (pid == 0) {
    exec_child(in.read_end.get(), out.write_end.get(), err.write_end.get(), parent, cwd, child_argv.data(),
               child_env.data());
  }
  in.read_end.reset();
  out.write_end.reset();
  err.write_end.reset();
  ::fcntl(in.write_end.get(), F_SETFL, O_NONBLOCK);

  std::size_t stdin_offset = 0;
  if (options.stdin_data.empty()) in.write_end.reset();
  const auto deadline = Clock::now() + std::chrono::seconds(options.timeout_seconds);
  std::optional<Clock::time_point> exited_at;
  int status = 0;
  bool timed_out = false;

  while (true) {
    if (!exited_at && ::waitpid(pid, &status, WNOHANG) == pid) exited_at = Clock::now();
    bool pipes_open = out.read_end.get() >= 0 || err.read_end.get() >= 0;
    // A grandchild may keep the pipes open after the child exits: give the pipes a short
    // grace period to deliver what the child wrote, then stop reading.
    if (exited_at && (!pipes_open || Clock::now() - *exited_at > std::chrono::milliseconds(200))) break;
    if (!exited_at && Clock::now() > deadline) {
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      timed_out = true;
      break;
    }
    std::vector<pollfd> fds;
    if (out.read_end.get() >= 0) fds.push_back({out.read_end.get(), POLLIN, 0});
    if (err.read_end.get() >= 0) fds.push_back({err.read_end.get(), POLLIN, 0});
    if (in.write_end.get() >= 0) fds.push_back({in.write_end.get(), POLLOUT, 0});
    int ready = ::poll(fds.data(), fds.size(), 20);
    if (ready <= 0) continue;
    for (const pollfd& p : fds) {
      if (p.revents == 0) continue;
      if (p.fd == out.read_end.get()) read_available(out.read_end, result.out);
      else if (p.fd == err.read_end.get()) read_available(err.read_end, result.err);
      else if (p.fd == in.write_end.get()) write_available(in.write_end, options.stdin_data, stdin_offset);
    }
  }
  if (timed_out) {
    result.exit_code = -1;
    result.err += "\nrun_command: killed after " + std::to_string(options.timeout_seconds) + " s: " +
                  format_command(argv) + "\n";
  } else {
    result.exit_code = decode_wait_status(status);
  }
  return result;
}

int free_tcp_port() {
  Fd sock(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (sock.get() < 0) throw std::runtime_error(errno_text("socket"));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
    throw std::runtime_error(errno_text("bind 127.0.0.1:0"));
  socklen_t len = sizeof(addr);
  if (::getsockname(sock.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    throw std::runtime_error(errno_text("getsockname"));
  return ntohs(addr.sin_port);
}

bool tcp_port_open(const std::string& host, int port) {
  Fd sock(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (sock.get() < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) return false;
  return ::connect(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
}

std::string make_temp_dir(const std::string& prefix) {
  std::string pattern = "/tmp/" + prefix + "XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error(errno_text("mkdtemp " + pattern));
  return pattern;
}

void remove_tree(const std::string& path) {
  if (path.empty()) return;
  std::error_code ignored;
  std::filesystem::remove_all(path, ignored);
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

namespace {
void write_file_mode(const std::string& path, const std::string& text, std::ios::openmode mode) {
  std::ofstream out(path, std::ios::binary | mode);
  out << text;
  out.close();
  if (!out) throw std::runtime_error("cannot write " + path);
}
}  // namespace

void write_text_file(const std::string& path, const std::string& text) {
  write_file_mode(path, text, std::ios::trunc);
}

void append_text_file(const std::string& path, const std::string& text) {
  write_file_mode(path, text, std::ios::app);
}

std::string tail_lines(const std::string& text, std::size_t max_lines) {
  std::size_t pos = text.size();
  if (pos > 0 && text[pos - 1] == '\n') --pos;
  for (std::size_t lines = 0; pos > 0; --pos) {
    if (text[pos - 1] == '\n' && ++lines == max_lines) break;
  }
  return text.substr(pos);
}

BackgroundProcess::BackgroundProcess(const std::vector<std::string>& argv, const std::string& output_path,
                                     const std::map<std::string, std::string>& extra_env) {
  if (argv.empty()) throw std::invalid_argument("BackgroundProcess: empty argv");
  ignore_sigpipe_once();
  CStringArray child_argv(argv);
  CStringArray child_env(merged_environment(extra_env));
  Fd null_in(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  Fd output(::open(output_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (null_in.get() < 0 || output.get() < 0) throw std::runtime_error(errno_text("open " + output_path));
  pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error(errno_text("fork"));
  if (pid_ == 0) {
    exec_child(null_in.get(), output.get(), output.get(), parent, nullptr, child_argv.data(), child_env.data());
  }
}

BackgroundProcess::~BackgroundProcess() { stop(); }

bool BackgroundProcess::reap(bool block) {
  if (exit_code_) return true;
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    exit_code_ = decode_wait_status(status);
    return true;
  }
  if (r < 0) {  // not our child any more (should not happen): treat as gone
    exit_code_ = -1;
    return true;
  }
  return false;
}

bool BackgroundProcess::running() { return pid_ > 0 && !reap(false); }

std::optional<int> BackgroundProcess::exit_code() {
  if (pid_ > 0) reap(false);
  return exit_code_;
}

int BackgroundProcess::stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return -1;
  if (!reap(false)) {
    ::kill(pid_, SIGTERM);
    const auto deadline = Clock::now() + grace;
    while (!reap(false) && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (!exit_code_) {
      ::kill(-pid_, SIGKILL);
      ::kill(pid_, SIGKILL);
      reap(true);
    }
  }
  return *exit_code_;
}

}  // namespace rowguard::testing
