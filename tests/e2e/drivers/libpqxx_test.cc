// C++ libpqxx 6.4 (Debian libpqxx-dev) through rowguard, as tenants t1 and t2: prepared statements
// (connection::prepare + work::exec_prepared), exec_params, pqxx::work transactions; reads
// filtered, INSERT without the tenant column, cross-tenant writes refused with SQLSTATE 42501
// (pqxx::insufficient_privilege, the class libpqxx 6 maps 42501 to), the connection usable afterwards. Built by tests/CMakeLists.txt
// (libpqxx found by pkg-config) and run by tests/e2e/stacks_e2e_test.cc with ROWGUARD_HOST,
// ROWGUARD_PORT, ROWGUARD_DB in the environment; prints "ok <check>" / "FAIL <check>: ..." and
// "all checks passed" (exit 0) when nothing failed.
#include <cstdlib>
#include <functional>
#include <iostream>
#include <pqxx/pqxx>
#include <sstream>
#include <string>
#include <vector>

namespace {

constexpr int kId = 6301;  // this program's rows: 6301..6349
int failures = 0;

void ok(const std::string& name) { std::cout << "ok " << name << std::endl; }
void fail(const std::string& name, const std::string& details) {
  ++failures;
  std::cout << "FAIL " << name << ": " << details << std::endl;
}
template <typename T>
std::string show(const T& v) {
  std::ostringstream out;
  out << v;
  return out.str();
}
std::string show(const std::vector<int>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + std::to_string(v[i]);
  return out + "]";
}
template <typename T>
void check_eq(const std::string& name, const T& actual, const T& expected) {
  if (actual == expected) ok(name);
  else fail(name, "got " + show(actual) + ", expected " + show(expected));
}

// fn runs in its own transaction, which must fail with SQLSTATE 42501.
void expect_refused(pqxx::connection& c, const std::string& name, const std::function<void(pqxx::work&)>& fn) {
  try {
    pqxx::work w(c);
    fn(w);
    w.commit();
    fail(name, "expected SQLSTATE 42501, but it succeeded");
  } catch (const pqxx::insufficient_privilege& e) {
    // libpqxx 6 reports SQLSTATE 42501 by this exception class (its sqlstate() stays empty).
    ok(name);
    std::string msg = e.what();
    std::cout << "   refused: " << msg.substr(0, msg.find('\n')) << std::endl;
  } catch (const pqxx::sql_error& e) {
    fail(name, "expected SQLSTATE 42501 (pqxx::insufficient_privilege), got SQLSTATE \"" + e.sqlstate() + "\": " + e.what());
  }
}

std::string env(const char* name, const char* def) {
  const char* v = std::getenv(name);
  return v && *v ? v : def;
}

std::string conninfo(const std::string& user, const std::string& password) {
  return "host=" + env("ROWGUARD_HOST", "127.0.0.1") + " port=" + env("ROWGUARD_PORT", "6432") +
         " dbname=" + env("ROWGUARD_DB", "appdb") + " user=" + user + " password=" + password +
         " sslmode=disable connect_timeout=10";
}

std::vector<int> ids(const pqxx::result& r) {
  std::vector<int> out;
  for (const auto& row : r) out.push_back(row[0].as<int>());
  return out;
}

void group(const std::string& name, const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    fail(name, std::string("unexpected exception: ") + e.what());
  }
}

}  // namespace

int main() {
  try {
    pqxx::connection t1(conninfo("t1", "pw1"));
    pqxx::connection t2(conninfo("t2", "pw2"));
    for (auto* c : {&t1, &t2}) {
      c->prepare("by_id", "SELECT id FROM orders WHERE id = $1");
      c->prepare("ins", "INSERT INTO orders (id, customer_id, amount) VALUES ($1, $2, $3)");
      c->prepare("ins_tenant", "INSERT INTO orders (id, tenant_id, amount) VALUES ($1, $2, 1)");
      c->prepare("get", "SELECT tenant_id, amount, status FROM orders WHERE id = $1");
    }

    group("reads", [&] {
      pqxx::work w1(t1);
      check_eq("t1 reads only its orders", ids(w1.exec("SELECT id FROM orders ORDER BY id")), std::vector<int>{101, 102, 103});
      std::vector<int> seen;
      for (int id : {101, 201, 102, 202, 103, 203, 204})
        for (int x : ids(w1.exec_prepared("by_id", id))) seen.push_back(x);
      check_eq("t1 prepared select by id: only its rows", seen, std::vector<int>{101, 102, 103});
      w1.commit();
      pqxx::work w2(t2);
      check_eq("t2 reads only its orders", ids(w2.exec("SELECT id FROM orders ORDER BY id")),
               std::vector<int>{201, 202, 203, 204});
      w2.commit();
    });

    group("insert", [&] {
      {
        pqxx::work w(t1);
        check_eq("t1 prepared insert without tenant_id", w.exec_prepared("ins", kId, 101, "12.50").affected_rows(), 1ul);
        w.commit();
      }
      {
        pqxx::work w(t1);
        pqxx::row r = w.exec_prepared1("get", kId);
        check_eq("t1 reads it back with tenant 1",
                 r[0].as<std::string>() + " " + r[1].as<std::string>() + " " + r[2].as<std::string>(),
                 std::string("1 12.50 new"));
        w.commit();
      }
      pqxx::work w(t2);
      check_eq("t2 does not see it", w.exec_params1("SELECT count(*) FROM orders WHERE id = $1", kId)[0].as<int>(), 0);
      check_eq("t2 update of t1's row affects 0 rows",
               w.exec_params("UPDATE orders SET status = $1 WHERE id = $2", "hacked", kId).affected_rows(), 0ul);
      check_eq("t2 prepared insert without tenant_id", w.exec_prepared("ins", kId + 1, 201, "5").affected_rows(), 1ul);
      check_eq("t2 reads it back with tenant 2", w.exec_prepared1("get", kId + 1)[0].as<int>(), 2);
      w.commit();
    });

    group("cross-tenant writes", [&] {
      expect_refused(t1, "t1 prepared insert with tenant_id 2 refused",
                     [](pqxx::work& w) { w.exec_prepared("ins_tenant", kId + 2, 2); });
      {
        pqxx::work w(t1);
        check_eq("the prepared statement usable after the refusal (tenant_id 1)",
                 w.exec_prepared("ins_tenant", kId + 3, 1).affected_rows(), 1ul);
        w.commit();
      }
      expect_refused(t1, "t1 moving its row to tenant 2 refused",
                     [](pqxx::work& w) { w.exec_params("UPDATE orders SET tenant_id = $1 WHERE id = $2", 2, kId); });
      expect_refused(t1, "t1 table outside the policy refused", [](pqxx::work& w) { w.exec("SELECT * FROM audit_log"); });
      expect_refused(t1, "refusal after a statement of the same transaction", [](pqxx::work& w) {
        w.exec_prepared("ins", kId + 4, 101, "1");
        w.exec("INSERT INTO orders (id, tenant_id, amount) VALUES (" + std::to_string(kId + 5) + ", 2, 1)");
      });
      pqxx::work w(t1);
      check_eq("connection usable after refusals", w.exec_params1("SELECT $1::int + 1", 41)[0].as<int>(), 42);
      check_eq("refused transaction left nothing",
               w.exec_params1("SELECT count(*) FROM orders WHERE id IN ($1, $2)", kId + 4, kId + 5)[0].as<int>(), 0);
      w.commit();
    });

    group("cleanup", [&] {
      pqxx::work w1(t1);
      check_eq("t1 deletes its rows",
               w1.exec_params("DELETE FROM orders WHERE id BETWEEN $1 AND $2", kId, kId + 48).affected_rows(), 2ul);
      w1.commit();
      pqxx::work w2(t2);
      check_eq("t2 deletes its row",
               w2.exec_params("DELETE FROM orders WHERE id BETWEEN $1 AND $2", kId, kId + 48).affected_rows(), 1ul);
      w2.commit();
    });
  } catch (const std::exception& e) {
    fail("main", std::string("unexpected exception: ") + e.what());
  }
  if (failures > 0) {
    std::cout << failures << " check(s) failed" << std::endl;
    return 1;
  }
  std::cout << "all checks passed" << std::endl;
  return 0;
}
