// Knex 3 (npm, over node-pg) through rowguard, as tenants t1 and t2: the query builder (select /
// insert / update / del with bindings, extended protocol), returning(), a transaction, raw
// queries; reads filtered, inserts without the tenant column (rowguard fills it), cross-tenant
// writes refused with SQLSTATE 42501, the connection usable afterwards. Run by
// tests/e2e/stacks_e2e_test.cc with NODE_PATH at the npm packages of node_orms/ and
// ROWGUARD_HOST, ROWGUARD_PORT, ROWGUARD_DB in the environment.
'use strict';
const knexFactory = require('knex');
const { ok, fail, checkEq, expectRefused, group, connection, finish } = require('./stackcheck');

const ID = 6501;  // this script's rows: 6501..6549

function open(user) {
  return knexFactory({ client: 'pg', connection: connection(user), pool: { min: 0, max: 1 }, acquireConnectionTimeout: 10000 });
}

async function main() {
  const a = open('t1'), b = open('t2');

  await group('reads', async () => {
    checkEq('t1 select: only its orders', (await a('orders').select('id').orderBy('id')).map(r => r.id), [101, 102, 103]);
    checkEq('t2 select: only its orders', (await b('orders').select('id').orderBy('id')).map(r => r.id), [201, 202, 203, 204]);
    checkEq("t1 whereIn tenant 2's ids: nothing", await a('orders').whereIn('id', [201, 202, 203, 204]).select('id'), []);
    const [{ n }] = await a('orders').where('tenant_id', 2).count({ n: '*' });
    checkEq('t1 count where tenant_id = 2: 0', Number(n), 0);
  });

  await group('insert', async () => {
    const rows = await a('orders').insert({ id: ID, customer_id: 101, amount: '12.50' }).returning(['id', 'tenant_id']);
    checkEq('t1 insert without tenant_id, returning', rows, [{ id: ID, tenant_id: 1 }]);
    const back = await a('orders').where({ id: ID }).first('tenant_id', 'amount', 'status');
    checkEq('t1 reads it back with tenant 1', back, { tenant_id: 1, amount: '12.50', status: 'new' });
    checkEq('t2 does not see it', await b('orders').where({ id: ID }).select('id'), []);
    checkEq("t2 update of t1's row affects 0 rows", await b('orders').where({ id: ID }).update({ status: 'hacked' }), 0);
    await b.transaction(async (trx) => {
      await trx('orders').insert([{ id: ID + 1, customer_id: 201, amount: '5' }, { id: ID + 2, customer_id: 202, amount: '6' }]);
      const r = await trx('orders').whereBetween('id', [ID, ID + 48]).select('id', 'tenant_id').orderBy('id');
      checkEq('t2 multi-row insert in a transaction: tenant 2, only its rows', r,
        [{ id: ID + 1, tenant_id: 2 }, { id: ID + 2, tenant_id: 2 }]);
    });
  });

  await group('cross-tenant writes', async () => {
    await expectRefused('t1 insert with tenant_id 2 refused', () => a('orders').insert({ id: ID + 3, tenant_id: 2, amount: '1' }));
    await expectRefused('t1 update moving its row to tenant 2 refused', () => a('orders').where({ id: ID }).update({ tenant_id: 2 }));
    await expectRefused('t1 table outside the policy refused', () => a('audit_log').select('*'));
    await expectRefused('refusal inside a transaction', () => a.transaction(async (trx) => {
      await trx('orders').insert({ id: ID + 4, customer_id: 101, amount: '1' });
      await trx('orders').insert({ id: ID + 5, tenant_id: 2, amount: '1' });
    }));
    checkEq('the refused transaction was rolled back', await a('orders').whereBetween('id', [ID + 3, ID + 5]).select('id'), []);
    const r = await a.raw('SELECT ?::int + 1 AS v', [41]);
    checkEq('connection usable after refusals', r.rows, [{ v: 42 }]);
    checkEq('t1 update of its row after refusals', await a('orders').where({ id: ID }).update({ status: 'paid' }), 1);
  });

  await group('cleanup', async () => {
    checkEq('t1 deletes its rows', await a('orders').whereBetween('id', [ID, ID + 48]).del(), 1);
    checkEq('t2 deletes its rows', await b('orders').whereBetween('id', [ID, ID + 48]).del(), 2);
  });
  await a.destroy();
  await b.destroy();
  finish();
}

main().catch(e => { fail('main', e && e.stack); finish(); });
