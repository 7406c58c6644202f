// Shared helpers of the npm stack scripts (sequelize_test.js, knex_test.js, typeorm_test.js):
// one line per check, "ok <check>" or "FAIL <check>: <details>", and "all checks passed" at the
// end when nothing failed (exit code 0), as tests/e2e/stacks_e2e_test.cc expects.
'use strict';

let failures = 0;

function ok(name) { console.log('ok ' + name); }
function fail(name, details) { failures++; console.log('FAIL ' + name + ': ' + details); }
function check(name, condition, details) { if (condition) ok(name); else fail(name, details); }
function checkEq(name, actual, expected) {
  const a = JSON.stringify(actual), e = JSON.stringify(expected);
  if (a === e) ok(name); else fail(name, 'got ' + a + ', expected ' + e);
}
// The SQLSTATE of a node-pg error, also when an ORM wrapped it (Sequelize: parent/original,
// TypeORM QueryFailedError: driverError, Knex: the pg error itself).
function sqlstate(e) {
  for (const x of [e, e && e.parent, e && e.original, e && e.driverError]) if (x && typeof x.code === 'string') return x.code;
  return undefined;
}
async function expectRefused(name, fn) {
  try {
    const r = await fn();
    fail(name, 'expected SQLSTATE 42501, but it succeeded: ' + JSON.stringify(r));
  } catch (e) {
    if (sqlstate(e) === '42501') { ok(name); console.log('   refused: ' + String(e.message).split('\n')[0]); }
    else fail(name, 'expected SQLSTATE 42501, got ' + sqlstate(e) + ': ' + (e && e.stack));
  }
}
async function group(name, fn) {
  try { await fn(); } catch (e) { fail(name, 'unexpected ' + sqlstate(e) + ': ' + (e && e.stack)); }
}
function connection(user) {
  return {
    host: process.env.ROWGUARD_HOST || '127.0.0.1',
    port: Number(process.env.ROWGUARD_PORT || 6432),
    database: process.env.ROWGUARD_DB || 'appdb',
    user, password: { t1: 'pw1', t2: 'pw2' }[user],
  };
}
function finish() {
  if (failures > 0) { console.log(failures + ' check(s) failed'); process.exit(1); }
  console.log('all checks passed');
  process.exit(0);
}

module.exports = { ok, fail, check, checkEq, sqlstate, expectRefused, group, connection, finish };
