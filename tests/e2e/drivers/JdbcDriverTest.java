// pgJDBC (Debian libpostgresql-jdbc-java, /usr/share/java/postgresql.jar) through rowguard, as
// tenant t1: PreparedStatement select/insert/update/delete, batch insert (addBatch /
// executeBatch), one PreparedStatement executed more than prepareThreshold (5) times so the
// driver switches to a named server-side statement, the tenant column as a parameter, and
// isolation. Compiled and run by tests/e2e/drivers_e2e_test.cc:
//   javac -d DIR -cp /usr/share/java/postgresql.jar JdbcDriverTest.java
//   java -cp DIR:/usr/share/java/postgresql.jar JdbcDriverTest
// with ROWGUARD_HOST, ROWGUARD_PORT, ROWGUARD_DB in the environment. Prints "ok <check>" /
// "FAIL <check>: ..." lines and exits 1 if any check failed.
import java.math.BigDecimal;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Properties;

public class JdbcDriverTest {
  static final int ID = 5301;  // this program's rows: 5301..5349
  static int failures = 0;

  static void ok(String name) { System.out.println("ok " + name); }

  static void fail(String name, String details) {
    failures++;
    System.out.println("FAIL " + name + ": " + details);
  }

  static void checkEq(String name, Object actual, Object expected) {
    if (Objects.equals(actual, expected)) ok(name);
    else fail(name, "got " + actual + ", expected " + expected);
  }

  interface Sql { void run() throws SQLException; }

  static void expectRefused(String name, Sql body) {
    try {
      body.run();
      fail(name, "expected SQLSTATE 42501, but it succeeded");
    } catch (SQLException e) {
      if ("42501".equals(e.getSQLState())) {
        ok(name);
        System.out.println("   refused: " + e.getMessage().split("\n")[0]);
      } else {
        fail(name, "expected SQLSTATE 42501, got " + e.getSQLState() + ": " + e.getMessage());
      }
    }
  }

  static List<Integer> ids(Connection c, String sql, Object... params) throws SQLException {
    try (PreparedStatement ps = c.prepareStatement(sql)) {
      for (int i = 0; i < params.length; i++) ps.setObject(i + 1, params[i]);
      List<Integer> out = new ArrayList<>();
      try (ResultSet rs = ps.executeQuery()) {
        while (rs.next()) out.add(rs.getInt(1));
      }
      return out;
    }
  }

  static void usable(Connection c, String name) throws SQLException {
    try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT 42")) {
      rs.next();
      checkEq(name, rs.getInt(1), 42);
    }
  }

  static void crud(Connection c) throws SQLException {
    checkEq("select own orders", ids(c, "SELECT id FROM orders WHERE amount > ? ORDER BY id", 0), List.of(101, 102, 103));
    checkEq("select own orders: tenant ids", ids(c, "SELECT DISTINCT tenant_id FROM orders"), List.of(1));
    try (PreparedStatement ps = c.prepareStatement("INSERT INTO orders (id, customer_id, amount) VALUES (?, ?, ?)")) {
      ps.setInt(1, ID);
      ps.setInt(2, 101);
      ps.setBigDecimal(3, new BigDecimal("12.50"));
      checkEq("insert without tenant_id", ps.executeUpdate(), 1);
    }
    try (PreparedStatement ps = c.prepareStatement("SELECT tenant_id, amount, status FROM orders WHERE id = ?")) {
      ps.setInt(1, ID);
      try (ResultSet rs = ps.executeQuery()) {
        String got = rs.next() ? rs.getInt(1) + "/" + rs.getBigDecimal(2) + "/" + rs.getString(3) : "none";
        checkEq("insert without tenant_id: read back with tenant 1", got, "1/12.50/new");
      }
    }
    c.setAutoCommit(false);
    try (PreparedStatement ps = c.prepareStatement("UPDATE orders SET amount = ?, status = ? WHERE id = ?")) {
      ps.setBigDecimal(1, new BigDecimal("13.50"));
      ps.setString(2, "paid");
      ps.setInt(3, ID);
      checkEq("update own row in a transaction", ps.executeUpdate(), 1);
    }
    c.commit();
    c.setAutoCommit(true);
    checkEq("update own row: read back", ids(c, "SELECT id FROM orders WHERE id = ? AND status = 'paid'", ID), List.of(ID));
    try (PreparedStatement ps = c.prepareStatement("DELETE FROM orders WHERE id = ?")) {
      ps.setInt(1, ID);
      checkEq("delete own row", ps.executeUpdate(), 1);
    }
  }

  static void batch(Connection c) throws SQLException {
    try (PreparedStatement ps = c.prepareStatement("INSERT INTO orders (id, customer_id, amount) VALUES (?, ?, ?)")) {
      for (int i = 0; i < 8; i++) {
        ps.setInt(1, ID + 10 + i);
        ps.setInt(2, 102);
        ps.setBigDecimal(3, new BigDecimal(i));
        ps.addBatch();
      }
      int[] counts = ps.executeBatch();
      int total = 0;
      for (int n : counts) total += n;
      checkEq("batch insert without tenant_id: update counts", total, 8);
    }
    checkEq("batch insert: rows have tenant 1",
            ids(c, "SELECT tenant_id FROM orders WHERE id BETWEEN ? AND ? GROUP BY tenant_id", ID + 10, ID + 17), List.of(1));

    // A batch with one tenant-2 row: refused, nothing of it committed (autocommit batch).
    try (PreparedStatement ps = c.prepareStatement("INSERT INTO orders (id, tenant_id, amount) VALUES (?, ?, 1)")) {
      int[][] rows = {{ID + 20, 1}, {ID + 21, 2}, {ID + 22, 1}};
      for (int[] r : rows) {
        ps.setInt(1, r[0]);
        ps.setInt(2, r[1]);
        ps.addBatch();
      }
      expectRefused("batch with one tenant-2 row refused", ps::executeBatch);
    }
    usable(c, "connection usable after the refused batch");
    List<Integer> tenants = ids(c, "SELECT tenant_id FROM orders WHERE id BETWEEN ? AND ?", ID + 20, ID + 22);
    if (tenants.contains(2)) fail("refused batch: no tenant-2 row", tenants.toString());
    else ok("refused batch: no tenant-2 row");
    try (Statement s = c.createStatement()) {
      s.executeUpdate("DELETE FROM orders WHERE id BETWEEN " + (ID + 10) + " AND " + (ID + 29));
    }
  }

  static void serverPrepared(Connection c) throws SQLException {
    // prepareThreshold is 5: from the 5th execution on the driver uses a named statement (S_n).
    List<Integer> seen = new ArrayList<>();
    boolean switched = false;
    try (PreparedStatement ps = c.prepareStatement("SELECT id FROM orders WHERE id = ?")) {
      org.postgresql.PGStatement pg = ps.unwrap(org.postgresql.PGStatement.class);
      int[] probe = {101, 201, 102, 202, 103, 203, 204, 101};
      for (int id : probe) {
        ps.setInt(1, id);
        try (ResultSet rs = ps.executeQuery()) {
          while (rs.next()) seen.add(rs.getInt(1));
        }
        switched |= pg.isUseServerPrepare();
      }
    }
    checkEq("same PreparedStatement x8: only own rows", seen, List.of(101, 102, 103, 101));
    if (switched) ok("driver switched to a server-prepared statement");
    else fail("driver switched to a server-prepared statement", "isUseServerPrepare() stayed false");

    try (PreparedStatement ps = c.prepareStatement("INSERT INTO orders (id, tenant_id, amount) VALUES (?, ?, 1)")) {
      for (int i = 0; i < 7; i++) {
        ps.setInt(1, ID + 30 + i);
        ps.setInt(2, 1);
        ps.executeUpdate();
      }
      ok("server-prepared insert with tenant_id = 1 x7 accepted");
      ps.setInt(1, ID + 40);
      ps.setInt(2, 2);
      expectRefused("server-prepared insert with tenant_id = 2 refused", ps::executeUpdate);
      ps.setInt(1, ID + 41);
      ps.setInt(2, 1);
      checkEq("server-prepared statement usable after the refusal", ps.executeUpdate(), 1);
      ps.setInt(1, ID + 42);
      ps.setObject(2, "2", java.sql.Types.OTHER);  // sent as text with an unspecified type
      expectRefused("tenant_id = '2' as an untyped text parameter refused", ps::executeUpdate);
    }
    checkEq("only tenant-1 parameter rows exist",
            ids(c, "SELECT count(*) FROM orders WHERE id BETWEEN ? AND ? AND tenant_id = 1", ID + 30, ID + 42), List.of(8));
    checkEq("no tenant-2 row from parameters", ids(c, "SELECT count(*) FROM orders WHERE id BETWEEN ? AND ?", ID + 40, ID + 40), List.of(0));
    try (Statement s = c.createStatement()) {
      s.executeUpdate("DELETE FROM orders WHERE id BETWEEN " + (ID + 30) + " AND " + (ID + 49));
    }
  }

  static void isolation(Connection c) throws SQLException {
    List<String> names = new ArrayList<>();
    try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT name FROM customers")) {
      while (rs.next()) names.add(rs.getString(1));
    }
    if (!names.isEmpty() && names.stream().noneMatch(n -> n.startsWith("globex-"))) ok("customers: no globex rows");
    else fail("customers: no globex rows", names.toString());
    checkEq("orders 201..203 invisible", ids(c, "SELECT id FROM orders WHERE id IN (?, ?, ?)", 201, 202, 203), List.of());
    try (PreparedStatement ps = c.prepareStatement("UPDATE orders SET status = 'hacked' WHERE id = ?")) {
      ps.setInt(1, 201);
      checkEq("update of tenant 2's row affects 0 rows", ps.executeUpdate(), 0);
    }
    expectRefused("moving a row to tenant 2 refused", () -> {
      try (PreparedStatement ps = c.prepareStatement("UPDATE orders SET tenant_id = ? WHERE id = ?")) {
        ps.setInt(1, 2);
        ps.setInt(2, 101);
        ps.executeUpdate();
      }
    });
    expectRefused("table outside the policy refused", () -> {
      try (Statement s = c.createStatement()) { s.executeQuery("SELECT * FROM audit_log"); }
    });
    // Inside a transaction: the refusal aborts it; rollback and go on.
    c.setAutoCommit(false);
    expectRefused("refusal inside a transaction", () -> {
      try (Statement s = c.createStatement()) { s.executeUpdate("INSERT INTO orders (id, tenant_id, amount) VALUES (5399, 2, 1)"); }
    });
    c.rollback();
    c.setAutoCommit(true);
    usable(c, "connection usable after refusals");
  }

  public static void main(String[] args) throws Exception {
    String url = "jdbc:postgresql://" + System.getenv().getOrDefault("ROWGUARD_HOST", "127.0.0.1") + ":" +
                 System.getenv().getOrDefault("ROWGUARD_PORT", "6432") + "/" +
                 System.getenv().getOrDefault("ROWGUARD_DB", "appdb");
    Properties props = new Properties();
    props.setProperty("user", "t1");
    props.setProperty("password", "pw1");
    props.setProperty("sslmode", "disable");
    props.setProperty("connectTimeout", "10");
    try (Connection c = DriverManager.getConnection(url, props)) {
      System.out.println("connected: " + c.getMetaData().getDriverName() + " " + c.getMetaData().getDriverVersion());
      Sql[] groups = {() -> crud(c), () -> batch(c), () -> serverPrepared(c), () -> isolation(c)};
      String[] names = {"crud", "batch", "serverPrepared", "isolation"};
      for (int i = 0; i < groups.length; i++) {
        try {
          groups[i].run();
        } catch (SQLException e) {
          fail(names[i], "unexpected " + e.getSQLState() + ": " + e.getMessage());
          if (!c.getAutoCommit()) { c.rollback(); c.setAutoCommit(true); }
        }
      }
    }
    if (failures > 0) {
      System.out.println(failures + " check(s) failed");
      System.exit(1);
    }
    System.out.println("all checks passed");
  }
}
