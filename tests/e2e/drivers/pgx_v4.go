// Go pgx v4 (Debian golang-github-jackc-pgx-v4-dev) through rowguard, as tenants t1 and t2:
// pgx's default prepared-statement cache (every parameterized query is Parse/Describe'd once, then
// Bind/Execute'd, binary format), explicit conn.Prepare, a Batch (pipelined), a transaction;
// reads filtered, INSERT without the tenant column, cross-tenant writes refused with SQLSTATE
// 42501, the connection usable afterwards. Built offline by tests/e2e/stacks_e2e_test.cc
// (GOPATH=/usr/share/gocode GO111MODULE=off) and run with ROWGUARD_HOST, ROWGUARD_PORT,
// ROWGUARD_DB in the environment; prints "ok <check>" / "FAIL <check>: ..." and
// "all checks passed" (exit 0) when nothing failed.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/jackc/pgconn"
	"github.com/jackc/pgx/v4"
)

const id = 6201 // this program's rows: 6201..6249

var failures = 0

func ok(name string) { fmt.Println("ok " + name) }
func fail(name, details string) {
	failures++
	fmt.Printf("FAIL %s: %s\n", name, details)
}
func checkEq(name string, actual, expected interface{}) {
	if reflect.DeepEqual(actual, expected) {
		ok(name)
	} else {
		fail(name, fmt.Sprintf("got %#v, expected %#v", actual, expected))
	}
}
func expectRefused(name string, err error) {
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		fail(name, "expected SQLSTATE 42501, but it succeeded")
	case errors.As(err, &pgErr) && pgErr.Code == "42501":
		ok(name)
		fmt.Println("   refused: " + strings.SplitN(pgErr.Message, "\n", 2)[0])
	default:
		fail(name, "expected SQLSTATE 42501, got: "+err.Error())
	}
}
func must(name string, err error) bool {
	if err != nil {
		fail(name, "unexpected error: "+err.Error())
		return false
	}
	return true
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func connect(ctx context.Context, user, password string) *pgx.Conn {
	url := fmt.Sprintf("postgres://%s:%s@%s:%s/%s?sslmode=disable&connect_timeout=10", user, password,
		env("ROWGUARD_HOST", "127.0.0.1"), env("ROWGUARD_PORT", "6432"), env("ROWGUARD_DB", "appdb"))
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		fmt.Println("FAIL connect as " + user + ": " + err.Error())
		os.Exit(1)
	}
	return c
}

func ids(ctx context.Context, c *pgx.Conn, sql string, args ...interface{}) []int32 {
	rows, err := c.Query(ctx, sql, args...)
	if err != nil {
		fail(sql, err.Error())
		return nil
	}
	defer rows.Close()
	out := []int32{}
	for rows.Next() {
		var v int32
		if err := rows.Scan(&v); err != nil {
			fail(sql, err.Error())
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		fail(sql, err.Error())
	}
	return out
}

func count(ctx context.Context, c *pgx.Conn, sql string, args ...interface{}) int64 {
	var n int64
	if err := c.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		fail(sql, err.Error())
		return -1
	}
	return n
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	t1 := connect(ctx, "t1", "pw1")
	t2 := connect(ctx, "t2", "pw2")

	// Reads.
	checkEq("t1 reads only its orders", ids(ctx, t1, "SELECT id FROM orders ORDER BY id"), []int32{101, 102, 103})
	checkEq("t2 reads only its orders", ids(ctx, t2, "SELECT id FROM orders ORDER BY id"), []int32{201, 202, 203, 204})
	seen := []int32{}
	for _, x := range []int32{101, 201, 102, 202, 103, 203, 204} {
		seen = append(seen, ids(ctx, t1, "SELECT id FROM orders WHERE id = $1", x)...)
	}
	checkEq("t1 cached prepared select by id: only its rows", seen, []int32{101, 102, 103})

	// INSERT without the tenant column (explicitly prepared statement).
	if _, err := t1.Prepare(ctx, "ins", "INSERT INTO orders (id, customer_id, amount) VALUES ($1, $2, $3)"); must("prepare ins", err) {
		tag, err := t1.Exec(ctx, "ins", id, 101, "12.50")
		if must("t1 prepared insert without tenant_id", err) {
			checkEq("t1 prepared insert without tenant_id", tag.RowsAffected(), int64(1))
		}
	}
	var tenant int32
	var amount, status string
	if must("t1 read back", t1.QueryRow(ctx, "SELECT tenant_id, amount::text, status FROM orders WHERE id = $1", id).Scan(&tenant, &amount, &status)) {
		checkEq("t1 reads it back with tenant 1", []interface{}{tenant, amount, status}, []interface{}{int32(1), "12.50", "new"})
	}
	checkEq("t2 does not see it", count(ctx, t2, "SELECT count(*) FROM orders WHERE id = $1", id), int64(0))
	if tag, err := t2.Exec(ctx, "UPDATE orders SET status = $1 WHERE id = $2", "hacked", id); must("t2 update", err) {
		checkEq("t2 update of t1's row affects 0 rows", tag.RowsAffected(), int64(0))
	}
	// A batch (pipelined Parse/Bind/Execute) as t2: insert without tenant_id, read it back.
	b := &pgx.Batch{}
	b.Queue("INSERT INTO orders (id, customer_id, amount) VALUES ($1, $2, $3)", id+1, 201, "5")
	b.Queue("SELECT tenant_id FROM orders WHERE id = $1", id+1)
	br := t2.SendBatch(ctx, b)
	if tag, err := br.Exec(); must("t2 batch insert without tenant_id", err) {
		checkEq("t2 batch insert without tenant_id", tag.RowsAffected(), int64(1))
	}
	if must("t2 batch read back", br.QueryRow().Scan(&tenant)) {
		checkEq("t2 batch reads it back with tenant 2", tenant, int32(2))
	}
	must("t2 batch close", br.Close())

	// Cross-tenant writes.
	_, err := t1.Exec(ctx, "INSERT INTO orders (id, tenant_id, amount) VALUES ($1, $2, 1)", id+2, 2)
	expectRefused("t1 insert with tenant_id 2 as a parameter refused", err)
	if tag, err := t1.Exec(ctx, "INSERT INTO orders (id, tenant_id, amount) VALUES ($1, $2, 1)", id+3, 1); must("same statement with tenant_id 1", err) {
		checkEq("the cached statement usable after the refusal (tenant_id 1)", tag.RowsAffected(), int64(1))
	}
	_, err = t1.Exec(ctx, "UPDATE orders SET tenant_id = $1 WHERE id = $2", 2, id)
	expectRefused("t1 moving its row to tenant 2 refused", err)
	_, err = t1.Exec(ctx, "SELECT * FROM audit_log")
	expectRefused("t1 table outside the policy refused", err)
	if tx, err := t1.Begin(ctx); must("begin", err) {
		_, err = tx.Exec(ctx, fmt.Sprintf("INSERT INTO orders (id, tenant_id, amount) VALUES (%d, 2, 1)", id+4))
		expectRefused("refusal inside a transaction", err)
		must("rollback", tx.Rollback(ctx))
	}
	var v int32
	if must("select after refusals", t1.QueryRow(ctx, "SELECT $1::int + 1", 41).Scan(&v)) {
		checkEq("connection usable after refusals", v, int32(42))
	}
	if tag, err := t1.Exec(ctx, "ins", id+5, 102, "1.00"); must("prepared insert after refusals", err) {
		checkEq("prepared statement usable after refusals", tag.RowsAffected(), int64(1))
	}

	// Cleanup.
	if tag, err := t1.Exec(ctx, "DELETE FROM orders WHERE id BETWEEN $1 AND $2", id, id+48); must("t1 cleanup", err) {
		checkEq("t1 deletes its rows", tag.RowsAffected(), int64(3))
	}
	if tag, err := t2.Exec(ctx, "DELETE FROM orders WHERE id BETWEEN $1 AND $2", id, id+48); must("t2 cleanup", err) {
		checkEq("t2 deletes its row", tag.RowsAffected(), int64(1))
	}
	t1.Close(ctx)
	t2.Close(ctx)
	if failures > 0 {
		fmt.Printf("%d check(s) failed\n", failures)
		os.Exit(1)
	}
	fmt.Println("all checks passed")
}
