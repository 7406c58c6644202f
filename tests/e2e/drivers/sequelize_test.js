// Sequelize 6 (npm, over node-pg) through rowguard, as tenants t1 and t2: Model.findAll /
// findByPk / create / update / destroy (bind parameters, extended protocol), a managed
// transaction, raw queries; reads filtered, create() without the tenant column (rowguard fills
// it), cross-tenant writes refused with SQLSTATE 42501, the connection usable afterwards. Run by
// tests/e2e/stacks_e2e_test.cc with NODE_PATH at the npm packages of node_orms/ and
// ROWGUARD_HOST, ROWGUARD_PORT, ROWGUARD_DB in the environment.
//
// At connect Sequelize sends "SET client_min_messages TO warning;SET TIME ZONE INTERVAL '+00:00'
// HOUR TO MINUTE;" (its defaults: clientMinMessages 'warning', timezone '+00:00'). Run as
// `node sequelize_test.js keep-default-timezone`, it sets keepDefaultTimezone: true (Sequelize
// then sends only the first SET) and uses rows of its own.
'use strict';
const { Sequelize, DataTypes, Op } = require('sequelize');
const { ok, fail, checkEq, expectRefused, group, connection, finish } = require('./stackcheck');

const KEEP_TZ = process.argv[2] === 'keep-default-timezone';
const ID = KEEP_TZ ? 6451 : 6401;  // this run's rows: ID..ID+48

function open(user) {
  const c = connection(user);
  const sequelize = new Sequelize(c.database, c.user, c.password, {
    host: c.host, port: c.port, dialect: 'postgres', logging: false,
    pool: { max: 1, min: 0 }, ...(KEEP_TZ ? { keepDefaultTimezone: true } : {}), dialectOptions: { connectionTimeoutMillis: 10000 },
  });
  // The application's model: it maps tenant_id (to read it) but never sets it.
  const Order = sequelize.define('Order', {
    id: { type: DataTypes.INTEGER, primaryKey: true },
    tenantId: { type: DataTypes.INTEGER, field: 'tenant_id' },
    customerId: { type: DataTypes.INTEGER, field: 'customer_id' },
    amount: { type: DataTypes.DECIMAL(10, 2), allowNull: false },
    status: { type: DataTypes.TEXT, allowNull: false, defaultValue: 'new' },
  }, { tableName: 'orders', timestamps: false });
  return { sequelize, Order };
}

async function main() {
  const a = open('t1'), b = open('t2');
  await group('connect', async () => { await a.sequelize.authenticate(); await b.sequelize.authenticate(); ok('authenticate t1 and t2'); });

  await group('reads', async () => {
    checkEq('t1 findAll: only its orders', (await a.Order.findAll({ order: [['id', 'ASC']] })).map(o => o.id), [101, 102, 103]);
    checkEq('t2 findAll: only its orders', (await b.Order.findAll({ order: [['id', 'ASC']] })).map(o => o.id), [201, 202, 203, 204]);
    checkEq("t1 findByPk of tenant 2's row: null", await a.Order.findByPk(201), null);
    checkEq("t1 count where tenantId = 2: 0", await a.Order.count({ where: { tenantId: 2 } }), 0);
  });

  await group('create', async () => {
    const o = await a.Order.create({ id: ID, customerId: 101, amount: '12.50' });
    checkEq('t1 create without tenant_id', o.id, ID);
    const back = await a.Order.findByPk(ID);
    checkEq('t1 reads it back with tenant 1', back && [back.tenantId, back.amount, back.status], [1, '12.50', 'new']);
    checkEq('t2 does not see it', await b.Order.count({ where: { id: ID } }), 0);
    const [n] = await b.Order.update({ status: 'hacked' }, { where: { id: ID } });
    checkEq("t2 update of t1's row affects 0 rows", n, 0);
    await b.sequelize.transaction(async (t) => {
      await b.Order.create({ id: ID + 1, customerId: 201, amount: '5' }, { transaction: t });
      const row = await b.Order.findByPk(ID + 1, { transaction: t });
      checkEq('t2 create in a transaction: tenant 2', row && row.tenantId, 2);
    });
  });

  await group('cross-tenant writes', async () => {
    await expectRefused('t1 create with tenantId 2 refused', () => a.Order.create({ id: ID + 2, tenantId: 2, amount: '1' }));
    await expectRefused('t1 update moving its row to tenant 2 refused', () => a.Order.update({ tenantId: 2 }, { where: { id: ID } }));
    await expectRefused('t1 raw query on a table outside the policy refused', () => a.sequelize.query('SELECT * FROM audit_log'));
    await expectRefused('refusal inside a managed transaction', () => a.sequelize.transaction(async (t) => {
      await a.Order.create({ id: ID + 3, customerId: 101, amount: '1' }, { transaction: t });
      await a.Order.create({ id: ID + 4, tenantId: 2, amount: '1' }, { transaction: t });
    }));
    checkEq('the refused transaction was rolled back', await a.Order.count({ where: { id: { [Op.between]: [ID + 2, ID + 4] } } }), 0);
    const [rows] = await a.sequelize.query('SELECT $1::int + 1 AS v', { bind: [41] });
    checkEq('connection usable after refusals', rows, [{ v: 42 }]);
    const [n] = await a.Order.update({ status: 'paid' }, { where: { id: ID } });
    checkEq('t1 update of its row after refusals', n, 1);
  });

  await group('cleanup', async () => {
    checkEq('t1 destroys its rows', await a.Order.destroy({ where: { id: { [Op.between]: [ID, ID + 48] } } }), 1);
    checkEq('t2 destroys its row', await b.Order.destroy({ where: { id: { [Op.between]: [ID, ID + 48] } } }), 1);
  });
  await a.sequelize.close();
  await b.sequelize.close();
  finish();
}

main().catch(e => { fail('main', e && e.stack); finish(); });
