// rowguard: a PostgreSQL proxy that enforces tenant isolation.
//   rowguard --config FILE [--log-level LEVEL]
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstring>
#include <iostream>
#include <string>

#include "policy/policy.h"
#include "proxy/net/server.h"

namespace {

constexpr const char* kUsage = R"(rowguard - tenant isolation for PostgreSQL, as a wire-protocol proxy

Usage:
  rowguard --config FILE [--log-level LEVEL]
  rowguard --check FILE          validate a policy file and exit
  rowguard --help | --version

Options:
  -c, --config FILE      the policy file (TOML): [proxy], [tenancy], [[tenants]], [[bypass]], [tables."schema.table"]
  -l, --log-level LEVEL  trace, debug, info (default), warn, error
  -h, --help             this text
  -V, --version          the version

Signals: SIGHUP reloads the policy file (a bad file is rejected and the old policy kept);
SIGINT/SIGTERM stop.
)";

}  // namespace

int main(int argc, char** argv) {
  std::string config;
  std::string check;
  std::string level = "info";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* name) -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "rowguard: " << name << " needs a value\n" << kUsage;
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      return 0;
    } else if (a == "-V" || a == "--version") {
      std::cout << "rowguard " << ROWGUARD_VERSION << "\n";
      return 0;
    } else if (a == "-c" || a == "--config") {
      config = value("--config");
    } else if (a == "--check") {
      check = value("--check");
    } else if (a == "-l" || a == "--log-level") {
      level = value("--log-level");
    } else {
      std::cerr << "rowguard: unknown argument \"" << a << "\"\n" << kUsage;
      return 2;
    }
  }
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") {
    std::cerr << "rowguard: unknown log level \"" << level << "\"\n";
    return 2;
  }
  spdlog::set_level(lvl);
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ [%t] %v");

  if (!check.empty()) {
    try {
      auto p = rowguard::policy::load_policy(check);
      std::cout << check << ": OK (" << p->logins.size() << " users, " << p->tables.size()
                << " tables)\n";
      return 0;
    } catch (const std::exception& e) {
      std::cerr << e.what() << "\n";
      return 1;
    }
  }
  if (config.empty()) {
    std::cerr << "rowguard: --config FILE is required\n" << kUsage;
    return 2;
  }
  rowguard::policy::PolicyPtr policy;
  try {
    policy = rowguard::policy::load_policy(config);
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
  std::signal(SIGPIPE, SIG_IGN);
  rowguard::net::Server server(policy, config);
  return server.run();
}
