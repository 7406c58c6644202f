// TypeORM 0.3 (npm, over node-pg) through rowguard, as tenants t1 and t2: a DataSource with an
// EntitySchema (plain JavaScript, no decorators), Repository find / findOneBy / insert / save /
// update / delete, the QueryBuilder, a transaction; reads filtered, inserts without the tenant
// column (rowguard fills it), cross-tenant writes refused with SQLSTATE 42501, the connection
// usable afterwards. Run by tests/e2e/stacks_e2e_test.cc with NODE_PATH at the npm packages of
// node_orms/ and ROWGUARD_HOST, ROWGUARD_PORT, ROWGUARD_DB in the environment.
'use strict';
require('reflect-metadata');
const { DataSource, EntitySchema, Between, In } = require('typeorm');
const { ok, fail, check, checkEq, sqlstate, expectRefused, group, connection, finish } = require('./stackcheck');

const ID = 6601;  // this script's rows: 6601..6649

// The application's entity: it maps tenant_id to read it, and tells TypeORM never to write it
// (insert: false, update: false), so INSERTs leave the column out and rowguard fills it in.
const Order = new EntitySchema({
  name: 'Order', tableName: 'orders',
  columns: {
    id: { type: 'int', primary: true },
    tenantId: { type: 'int', name: 'tenant_id', insert: false, update: false },
    customerId: { type: 'int', name: 'customer_id', nullable: true },
    amount: { type: 'numeric', precision: 10, scale: 2 },
    status: { type: 'text', default: 'new' },
  },
});
// The same table with tenant_id as an ordinary (writable) column: what an application that sets
// the tenant itself maps. TypeORM sends DEFAULT for a column whose value is undefined:
// INSERT INTO "orders"("id", "tenant_id", ...) VALUES ($1, DEFAULT, ...).
const OrderWritable = new EntitySchema({
  name: 'OrderWritable', tableName: 'orders',
  columns: {
    id: { type: 'int', primary: true },
    tenantId: { type: 'int', name: 'tenant_id', nullable: true },
    customerId: { type: 'int', name: 'customer_id', nullable: true },
    amount: { type: 'numeric', precision: 10, scale: 2 },
    status: { type: 'text', default: 'new' },
  },
});

async function open(user) {
  const c = connection(user);
  const ds = new DataSource({
    type: 'postgres', host: c.host, port: c.port, username: c.user, password: c.password, database: c.database,
    entities: [Order, OrderWritable], synchronize: false, logging: false, poolSize: 1, connectTimeoutMS: 10000,
  });
  await ds.initialize();
  return ds;
}

async function main() {
  let a, b;
  await group('connect', async () => { a = await open('t1'); b = await open('t2'); ok('DataSource.initialize as t1 and t2'); });
  if (!a || !b) finish();
  const ra = a.getRepository('Order'), rb = b.getRepository('Order');
  const wa = a.getRepository('OrderWritable');

  await group('reads', async () => {
    checkEq('t1 find: only its orders', (await ra.find({ order: { id: 'ASC' } })).map(o => o.id), [101, 102, 103]);
    checkEq('t2 find: only its orders', (await rb.find({ order: { id: 'ASC' } })).map(o => o.id), [201, 202, 203, 204]);
    checkEq("t1 findOneBy tenant 2's row: null", await ra.findOneBy({ id: 201 }), null);
    checkEq("t1 findBy id in tenant 2's ids: nothing", await ra.findBy({ id: In([201, 202, 203, 204]) }), []);
    checkEq('t1 query builder count where tenant_id = 2: 0',
      await ra.createQueryBuilder('o').where('o.tenant_id = :t', { t: 2 }).getCount(), 0);
  });

  await group('insert', async () => {
    await ra.insert({ id: ID, customerId: 101, amount: '12.50' });
    ok('t1 insert without tenant_id');
    const back = await ra.findOneBy({ id: ID });
    checkEq('t1 reads it back with tenant 1', back && [back.tenantId, back.amount, back.status], [1, '12.50', 'new']);
    checkEq('t2 does not see it', await rb.countBy({ id: ID }), 0);
    const u = await rb.update({ id: ID }, { status: 'hacked' });
    checkEq("t2 update of t1's row affects 0 rows", u.affected, 0);
    await b.transaction(async (m) => {
      await m.getRepository('Order').save({ id: ID + 1, customerId: 201, amount: '5' });
      const row = await m.getRepository('Order').findOneBy({ id: ID + 1 });
      checkEq('t2 save() in a transaction: tenant 2', row && row.tenantId, 2);
    });
  });

  await group('cross-tenant writes', async () => {
    await expectRefused('t1 insert with tenantId 2 refused', () => wa.insert({ id: ID + 2, tenantId: 2, amount: '1' }));
    await expectRefused('t1 update moving its row to tenant 2 refused', () => wa.update({ id: ID }, { tenantId: 2 }));
    await expectRefused('t1 raw query on a table outside the policy refused', () => a.query('SELECT * FROM audit_log'));
    await expectRefused('refusal inside a transaction', () => a.transaction(async (m) => {
      await m.getRepository('Order').insert({ id: ID + 3, customerId: 101, amount: '1' });
      await m.getRepository('OrderWritable').insert({ id: ID + 4, tenantId: 2, amount: '1' });
    }));
    checkEq('the refused transaction was rolled back', await ra.countBy({ id: Between(ID + 2, ID + 4) }), 0);
    checkEq('connection usable after refusals', await a.query('SELECT $1::int + 1 AS v', [41]), [{ v: 42 }]);
    checkEq('t1 update of its row after refusals', (await ra.update({ id: ID }, { status: 'paid' })).affected, 1);
  });

  // rowguard fills the session tenant in for DEFAULT (the column has no default of its own), as
  // when the column is left out. A refusal is reported UNSUPPORTED (TypeormTenantDefaultE2e fails).
  await group('writable tenant column left undefined', async () => {
    const name = 'insert with the tenant column mapped but undefined (VALUES (..., DEFAULT, ...))';
    try {
      await wa.insert({ id: ID + 5, customerId: 101, amount: '1' });
      const row = await ra.findOneBy({ id: ID + 5 });
      checkEq(name, row && row.tenantId, 1);
    } catch (e) {
      const msg = String(e.message).split('\n')[0];
      if (sqlstate(e) === '42501' && msg.includes('sets "tenant_id" to a value other than the session tenant')) {
        console.log('UNSUPPORTED ' + name + ': ' + msg);
      } else {
        fail(name, sqlstate(e) + ': ' + e.stack);
      }
    }
  });

  await group('cleanup', async () => {
    const n = (await ra.delete({ id: Between(ID, ID + 48) })).affected;
    check('t1 deletes its rows', n === 1 || n === 2, 'affected ' + n);
    checkEq('t2 deletes its row', (await rb.delete({ id: Between(ID, ID + 48) })).affected, 1);
  });
  await a.destroy();
  await b.destroy();
  finish();
}

main().catch(e => { fail('main', e && e.stack); finish(); });
