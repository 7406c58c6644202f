// bench/tenants: prepared point selects through rowguard in transaction mode, many tenants at once.
// One connection per client; client i logs in as tenant user t<(i % tenants) + 1> (password
// pw<n>), prepares one statement shape once (protocol Parse, named "s") and then runs it with
// Bind/Execute (PQexecPrepared) for `seconds`; `threads` threads each drive their share of the
// connections round-robin, one statement at a time. Every row must be the client's tenant's
// (bench/tenants/run's data: tenant_id = (aid - 1) % 1000 + 1): a wrong row fails the run.
//
//   tenant_bench HOST PORT DB CLIENTS TENANTS THREADS SECONDS
// Prints: "transactions=<n> tps=<x> wrong_rows=<n> errors=<n>".
#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 8) {
    std::fprintf(stderr, "usage: %s HOST PORT DB CLIENTS TENANTS THREADS SECONDS\n", argv[0]);
    return 2;
  }
  const std::string host = argv[1], port = argv[2], db = argv[3];
  const int clients = std::atoi(argv[4]), tenants = std::atoi(argv[5]), threads = std::atoi(argv[6]);
  const int seconds = std::atoi(argv[7]);
  const long accounts = 400000;  // pgbench scale 4
  const long kDataTenants = 1000;  // bench/tenants/run: tenant_id = (aid - 1) % 1000 + 1
  std::vector<PGconn*> conns(clients);
  std::vector<int> tenant_of(clients);
  for (int i = 0; i < clients; ++i) {
    const int t = (i % tenants) + 1;
    tenant_of[i] = t;
    const std::string ci = "host=" + host + " port=" + port + " dbname=" + db + " user=t" + std::to_string(t) +
                           " password=pw" + std::to_string(t) + " sslmode=disable";
    conns[i] = PQconnectdb(ci.c_str());
    if (PQstatus(conns[i]) != CONNECTION_OK) {
      std::fprintf(stderr, "connect %d: %s", i, PQerrorMessage(conns[i]));
      return 1;
    }
    PGresult* r = PQprepare(conns[i], "s", "SELECT aid, abalance FROM pgbench_accounts WHERE aid = $1", 1, nullptr);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
      std::fprintf(stderr, "prepare %d: %s", i, PQerrorMessage(conns[i]));
      return 1;
    }
    PQclear(r);
  }
  std::atomic<long> done{0}, wrong{0}, errors{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> pool;
  for (int th = 0; th < threads; ++th) {
    pool.emplace_back([&, th] {
      std::mt19937_64 rng(th + 1);
      long n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        for (int i = th; i < clients && !stop.load(std::memory_order_relaxed); i += threads) {
          const int t = tenant_of[i];
          // Half the lookups hit one of the tenant's own rows, half another tenant's row (must
          // come back empty).
          long aid = static_cast<long>(rng() % static_cast<uint64_t>(accounts)) + 1;
          const bool own = (rng() & 1) != 0;
          if (own) aid = t + kDataTenants * static_cast<long>(rng() % static_cast<uint64_t>(accounts / kDataTenants));
          const std::string v = std::to_string(aid);
          const char* vals[1] = {v.c_str()};
          PGresult* r = PQexecPrepared(conns[i], "s", 1, vals, nullptr, nullptr, 0);
          if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            if (errors.fetch_add(1) < 5) std::fprintf(stderr, "exec: %s", PQerrorMessage(conns[i]));
          } else {
            for (int row = 0; row < PQntuples(r); ++row) {
              const long got = std::atol(PQgetvalue(r, row, 0));
              if ((got - 1) % kDataTenants + 1 != t) wrong.fetch_add(1);
            }
            ++n;
          }
          PQclear(r);
        }
      }
      done.fetch_add(n);
    });
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  stop = true;
  for (auto& t : pool) t.join();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("transactions=%ld tps=%.0f wrong_rows=%ld errors=%ld\n", done.load(), done.load() / secs, wrong.load(),
              errors.load());
  for (PGconn* c : conns) PQfinish(c);
  return wrong.load() == 0 && errors.load() == 0 ? 0 : 1;
}
