// Process, file and socket helpers for rowguard's integration and end-to-end tests:
// run a command to completion with captured output (fork/execvp, pipes, poll; no shell),
// keep a command running in the background with its output in a file, find a free TCP
// port and wait for a port to accept connections.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace rowguard::testing {

// Outcome of run_command. exit_code is the child's exit status, 128 + signal number when a
// signal ended it, and -1 when it was killed because it ran past its timeout (or could not
// be started; err then says why).
struct CommandResult {
  int exit_code = -1;
  std::string out, err;
};

// Everything run_command_with accepts.
struct CommandOptions {
  std::map<std::string, std::string> extra_env;  // added to (or overriding) this process's environment
  std::string stdin_data;                        // written to the child's stdin, which is then closed
  int timeout_seconds = 60;                      // the child's process group is killed after this
  std::string cwd;                               // working directory of the child; empty: inherit
};

// Runs argv[0] (looked up in PATH) with the given arguments and waits for it to finish.
CommandResult run_command(const std::vector<std::string>& argv,
                          const std::map<std::string, std::string>& extra_env = {},
                          const std::string& stdin_data = "", int timeout_seconds = 60);
CommandResult run_command_with(const std::vector<std::string>& argv, const CommandOptions& options);

// "argv[0] arg1 'arg two'": for error messages.
std::string format_command(const std::vector<std::string>& argv);

// "exit code 1\nstdout:\n...\nstderr:\n...": for assertion messages.
std::string describe(const CommandResult& result);

// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, close).
int free_tcp_port();

// Whether host:port accepts a TCP connection (the connection is closed at once).
bool tcp_port_open(const std::string& host, int port);

// Creates a fresh directory /tmp/<prefix>XXXXXX (mkdtemp) and returns its path.
std::string make_temp_dir(const std::string& prefix);

// Removes path and everything below it; errors are ignored.
void remove_tree(const std::string& path);

std::string read_text_file(const std::string& path);   // "" when it cannot be read
void write_text_file(const std::string& path, const std::string& text);  // throws on error
void append_text_file(const std::string& path, const std::string& text);  // throws on error

// The last max_lines lines of text.
std::string tail_lines(const std::string& text, std::size_t max_lines);

// A child process that runs in the background with stdin from /dev/null and stdout and
// stderr appended to output_path. It gets SIGTERM if this process dies first. The destructor
// stops it.
class BackgroundProcess {
 public:
  BackgroundProcess(const std::vector<std::string>& argv, const std::string& output_path,
                    const std::map<std::string, std::string>& extra_env = {});
  ~BackgroundProcess();
  BackgroundProcess(const BackgroundProcess&) = delete;
  BackgroundProcess& operator=(const BackgroundProcess&) = delete;

  pid_t pid() const { return pid_; }

  // Whether the child is still running (reaps it if it has exited).
  bool running();

  // The exit code once it has exited (128 + signal when killed by a signal).
  std::optional<int> exit_code();

  // SIGTERM, wait up to grace, then SIGKILL. Returns the exit code; idempotent.
  int stop(std::chrono::milliseconds grace = std::chrono::seconds(5));

 private:
  bool reap(bool block);

  pid_t pid_ = -1;
  std::optional<int> exit_code_;
};

}  // namespace rowguard::testing
