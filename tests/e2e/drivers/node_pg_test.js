// node-postgres ("pg") through rowguard, as tenant t1: parameterized queries (extended
// protocol, text parameters of unspecified type), named prepared statements ({name: ...}),
// the tenant column as a parameter, isolation. Run by tests/e2e/drivers_e2e_test.cc with
// NODE_PATH pointing at the pg module (Debian's node-pg in /usr/share/nodejs, or an npm
// install) and ROWGUARD_HOST, ROWGUARD_PORT, ROWGUARD_DB in the environment.
'use strict';
const { Client } = require('pg');

const ID = 5401;  // this script's rows: 5401..5449
let failures = 0;

function ok(name) { console.log('ok ' + name); }
function fail(name, details) { failures++; console.log('FAIL ' + name + ': ' + details); }
function checkEq(name, actual, expected) {
  const a = JSON.stringify(actual), e = JSON.stringify(expected);
  if (a === e) ok(name); else fail(name, 'got ' + a + ', expected ' + e);
}
async function expectRefused(name, fn) {
  try {
    const r = await fn();
    fail(name, 'expected SQLSTATE 42501, but it succeeded: ' + JSON.stringify(r && r.rows));
  } catch (e) {
    if (e.code === '42501') { ok(name); console.log('   refused: ' + e.message); }
    else fail(name, 'expected SQLSTATE 42501, got ' + e.code + ': ' + e.message);
  }
}

async function crud(c) {
  let r = await c.query('SELECT id, tenant_id FROM orders WHERE amount > $1 ORDER BY id', [0]);
  checkEq('parameterized select: own orders', r.rows.map(x => x.id), [101, 102, 103]);
  checkEq('parameterized select: tenant ids', [...new Set(r.rows.map(x => x.tenant_id))], [1]);
  r = await c.query('INSERT INTO orders (id, customer_id, amount) VALUES ($1, $2, $3)', [ID, 101, '12.50']);
  checkEq('insert without tenant_id', r.rowCount, 1);
  r = await c.query('SELECT tenant_id, amount, status FROM orders WHERE id = $1', [ID]);
  checkEq('insert without tenant_id: read back with tenant 1', r.rows, [{ tenant_id: 1, amount: '12.50', status: 'new' }]);
  await c.query('BEGIN');
  r = await c.query('UPDATE orders SET amount = $1, status = $2 WHERE id = $3', ['13.50', 'paid', ID]);
  checkEq('update own row in a transaction', r.rowCount, 1);
  await c.query('COMMIT');
  r = await c.query('SELECT amount, status FROM orders WHERE id = $1', [ID]);
  checkEq('update own row: read back', r.rows, [{ amount: '13.50', status: 'paid' }]);
  r = await c.query('DELETE FROM orders WHERE id = $1', [ID]);
  checkEq('delete own row', r.rowCount, 1);
}

async function prepared(c) {
  const seen = [];
  for (const id of [101, 201, 102, 202, 103, 203, 204]) {
    const r = await c.query({ name: 'order_by_id', text: 'SELECT id FROM orders WHERE id = $1', values: [id] });
    seen.push(...r.rows.map(x => x.id));
  }
  checkEq('named prepared statement: only own rows', seen, [101, 102, 103]);
  const ins = { name: 'ins_with_tenant', text: 'INSERT INTO orders (id, tenant_id, amount) VALUES ($1, $2, 1)' };
  let r = await c.query({ ...ins, values: [ID + 1, 1] });
  checkEq('tenant_id = 1 as a parameter accepted', r.rowCount, 1);
  await expectRefused('tenant_id = 2 as a parameter refused', () => c.query({ ...ins, values: [ID + 2, 2] }));
  r = await c.query({ ...ins, values: [ID + 3, '1'] });
  checkEq('named statement usable after the refusal', r.rowCount, 1);
  await expectRefused('tenant_id = 2 as an unnamed parameterized insert refused',
    () => c.query('INSERT INTO orders (id, tenant_id, amount) VALUES ($1, $2, $3)', [ID + 4, 2, 1]));
  await expectRefused('tenant_id = NULL as a parameter refused',
    () => c.query('INSERT INTO orders (id, tenant_id, amount) VALUES ($1, $2, $3)', [ID + 5, null, 1]));
  r = await c.query('SELECT id, tenant_id FROM orders WHERE id BETWEEN $1 AND $2 ORDER BY id', [ID + 1, ID + 9]);
  checkEq('only the tenant-1 parameter rows exist', r.rows, [{ id: ID + 1, tenant_id: 1 }, { id: ID + 3, tenant_id: 1 }]);
  await c.query('DELETE FROM orders WHERE id BETWEEN $1 AND $2', [ID + 1, ID + 9]);
}

async function isolation(c) {
  let r = await c.query('SELECT name FROM customers WHERE id > $1', [0]);
  const names = r.rows.map(x => x.name);
  if (names.length > 0 && !names.some(n => n.startsWith('globex-'))) ok('customers: no globex rows');
  else fail('customers: no globex rows', JSON.stringify(names));
  r = await c.query('SELECT id FROM orders WHERE id = ANY($1::int[])', [[201, 202, 203]]);
  checkEq('orders 201..203 invisible', r.rows, []);
  r = await c.query('UPDATE orders SET status = $1 WHERE id = $2', ['hacked', 201]);
  checkEq("update of tenant 2's row affects 0 rows", r.rowCount, 0);
  await expectRefused('moving a row to tenant 2 refused', () => c.query('UPDATE orders SET tenant_id = $1 WHERE id = $2', [2, 101]));
  await expectRefused('table outside the policy refused', () => c.query('SELECT * FROM audit_log'));
  await c.query('BEGIN');
  await expectRefused('refusal inside a transaction', () => c.query('INSERT INTO orders (id, tenant_id, amount) VALUES ($1, 2, 1)', [ID + 10]));
  await c.query('ROLLBACK');
  r = await c.query('SELECT $1::int + 1 AS v', [41]);
  checkEq('connection usable after refusals', r.rows, [{ v: 42 }]);
}

async function main() {
  const c = new Client({
    host: process.env.ROWGUARD_HOST || '127.0.0.1',
    port: Number(process.env.ROWGUARD_PORT || 6432),
    database: process.env.ROWGUARD_DB || 'appdb',
    user: 't1', password: 'pw1', ssl: false, connectionTimeoutMillis: 10000,
  });
  // numeric as string, int4 as number (node-pg's defaults)
  await c.connect();
  for (const [name, fn] of [['crud', crud], ['prepared', prepared], ['isolation', isolation]]) {
    try { await fn(c); } catch (e) { fail(name, 'unexpected ' + e.code + ': ' + e.stack); }
  }
  await c.end();
  if (failures > 0) { console.log(failures + ' check(s) failed'); process.exit(1); }
  console.log('all checks passed');
}

main().catch(e => { console.log('FAIL main: ' + e.stack); process.exit(1); });
