# Ruby pg (Debian ruby-pg, libpq underneath) through rowguard, as tenants t1 and t2: exec_params
# (extended protocol, text parameters), named prepared statements (prepare / exec_prepared),
# INSERT without the tenant column, cross-tenant writes refused with SQLSTATE 42501, the
# connection usable afterwards. Run by tests/e2e/stacks_e2e_test.cc with ROWGUARD_HOST,
# ROWGUARD_PORT, ROWGUARD_DB in the environment; prints "ok <check>" / "FAIL <check>: ..." and
# "all checks passed" (exit 0) when nothing failed.
require 'pg'

ID = 6001 # this script's rows: 6001..6049
PASSWORDS = { 't1' => 'pw1', 't2' => 'pw2' }.freeze
$failures = 0

def ok(name) = puts("ok #{name}")

def fail(name, details)
  $failures += 1
  puts "FAIL #{name}: #{details}"
end

def check_eq(name, actual, expected)
  actual == expected ? ok(name) : fail(name, "got #{actual.inspect}, expected #{expected.inspect}")
end

def expect_refused(name)
  r = yield
  fail(name, "expected SQLSTATE 42501, but it succeeded: #{r.respond_to?(:values) ? r.values.inspect : r.inspect}")
rescue PG::Error => e
  state = e.result&.error_field(PG::Result::PG_DIAG_SQLSTATE)
  if state == '42501'
    ok(name)
    puts "   refused: #{e.message.lines.first.strip}"
  else
    fail(name, "expected SQLSTATE 42501, got #{state}: #{e.message.strip}")
  end
end

def connect(user)
  PG.connect(host: ENV.fetch('ROWGUARD_HOST', '127.0.0.1'), port: ENV.fetch('ROWGUARD_PORT', '6432').to_i,
             dbname: ENV.fetch('ROWGUARD_DB', 'appdb'), user: user, password: PASSWORDS.fetch(user),
             sslmode: 'disable', connect_timeout: 10)
end

def group(name)
  yield
rescue StandardError => e
  fail(name, "unexpected #{e.class}: #{e.message}\n#{e.backtrace.first(5).join("\n")}")
end

t1 = connect('t1')
t2 = connect('t2')

group('reads') do
  check_eq('t1 reads only its orders', t1.exec('SELECT id FROM orders ORDER BY id').column_values(0).map(&:to_i),
           [101, 102, 103])
  check_eq('t2 reads only its orders', t2.exec('SELECT id FROM orders ORDER BY id').column_values(0).map(&:to_i),
           [201, 202, 203, 204])
  r = t1.exec_params('SELECT count(*) FROM orders WHERE id BETWEEN $1 AND $2', [201, 204])
  check_eq("t1 exec_params: tenant 2's rows invisible", r.getvalue(0, 0), '0')
end

group('prepared insert') do
  t1.prepare('ins', 'INSERT INTO orders (id, customer_id, amount) VALUES ($1, $2, $3)')
  r = t1.exec_prepared('ins', [ID, 101, '12.50'])
  check_eq('t1 prepared insert without tenant_id', r.cmd_tuples, 1)
  t1.prepare('get', 'SELECT tenant_id, amount, status FROM orders WHERE id = $1')
  check_eq('t1 reads it back with tenant 1', t1.exec_prepared('get', [ID]).values, [%w[1 12.50 new]])
  check_eq('t2 does not see it', t2.exec_params('SELECT count(*) FROM orders WHERE id = $1', [ID]).getvalue(0, 0), '0')
  r = t2.exec_params('UPDATE orders SET status = $1 WHERE id = $2', ['hacked', ID])
  check_eq("t2 update of t1's row affects 0 rows", r.cmd_tuples, 0)
  r = t2.exec_params('INSERT INTO orders (id, customer_id, amount) VALUES ($1, $2, $3)', [ID + 1, 201, '5'])
  check_eq('t2 insert without tenant_id', r.cmd_tuples, 1)
  check_eq('t2 reads it back with tenant 2',
           t2.exec_params('SELECT tenant_id FROM orders WHERE id = $1', [ID + 1]).getvalue(0, 0), '2')
end

group('cross-tenant writes') do
  t1.prepare('ins_t', 'INSERT INTO orders (id, tenant_id, amount) VALUES ($1, $2, 1)')
  expect_refused('t1 prepared insert with tenant_id 2 refused') { t1.exec_prepared('ins_t', [ID + 2, 2]) }
  r = t1.exec_prepared('ins_t', [ID + 3, 1])
  check_eq('the prepared statement usable after the refusal (tenant_id 1)', r.cmd_tuples, 1)
  expect_refused('t1 moving its row to tenant 2 refused') do
    t1.exec_params('UPDATE orders SET tenant_id = $1 WHERE id = $2', [2, ID])
  end
  expect_refused('t1 table outside the policy refused') { t1.exec('SELECT * FROM audit_log') }
  t1.exec('BEGIN')
  expect_refused('refusal inside a transaction') { t1.exec("INSERT INTO orders (id, tenant_id, amount) VALUES (#{ID + 4}, 2, 1)") }
  t1.exec('ROLLBACK')
  check_eq('connection usable after refusals', t1.exec_params('SELECT $1::int + 1', [41]).getvalue(0, 0), '42')
  check_eq('t1 prepared select usable after refusals', t1.exec_prepared('get', [ID]).values, [%w[1 12.50 new]])
end

group('cleanup') do
  check_eq('t1 deletes its rows', t1.exec_params('DELETE FROM orders WHERE id BETWEEN $1 AND $2', [ID, ID + 48]).cmd_tuples, 2)
  check_eq('t2 deletes its row', t2.exec_params('DELETE FROM orders WHERE id BETWEEN $1 AND $2', [ID, ID + 48]).cmd_tuples, 1)
end

t1.close
t2.close
if $failures.positive?
  puts "#{$failures} check(s) failed"
  exit 1
end
puts 'all checks passed'
