<?php
// Laravel's database layer (Illuminate\Database 8.83, Debian php-illuminate-database, over PHP PDO
// pgsql) through rowguard, as tenants t1 and t2, with PDO::ATTR_EMULATE_PREPARES on ("emulated")
// or off ("native") in the connection's PDO options. Connects through the Capsule Manager with
// driver pgsql and Laravel's default pgsql settings (charset utf8, schema public) plus a time
// zone and an application name, so that its PostgresConnector sends at connect `set names`,
// `set time zone`, `set search_path to "public"` and `set application_name` (and, on a third
// connection, its isolation_level and synchronous_commit statements). Checks: the query
// builder's select/where/count/join, insert without the tenant column, insertGetId (RETURNING),
// update/delete, transactions with rollback, an Eloquent model on orders (key (tenant_id, id):
// mapped with primaryKey 'id', not incrementing), reads filtered, cross-tenant writes refused
// with SQLSTATE 42501 (Illuminate\Database\QueryException, code 42501) and the connection usable
// afterwards. Run by tests/e2e/stacks_e2e_test.cc as `php laravel_test.php emulated|native` with
// ROWGUARD_HOST, ROWGUARD_PORT, ROWGUARD_DB in the environment; prints "ok <check>" /
// "FAIL <check>: ..." and "all checks passed" (exit 0) when nothing failed.
$mode = $argv[1] ?? 'native';
if ($mode !== 'emulated' && $mode !== 'native') {
    fwrite(STDERR, "usage: php laravel_test.php emulated|native\n");
    exit(2);
}
// Debian installs the library under /usr/share/php (in PHP's default include_path) with an
// autoload.php per package; no composer.
require_once 'Illuminate/Database/autoload.php';

use Illuminate\Database\Capsule\Manager as Capsule;
use Illuminate\Database\Eloquent\Model;
use Illuminate\Database\QueryException;

$ID = $mode === 'emulated' ? 6201 : 6251;  // this run's rows: ID..ID+48
$failures = 0;

function ok($name) { echo "ok $name\n"; }
function fail($name, $details) { global $failures; $failures++; echo "FAIL $name: $details\n"; }
function check_eq($name, $actual, $expected) {
    if ($actual === $expected) ok($name);
    else fail($name, 'got ' . json_encode($actual) . ', expected ' . json_encode($expected));
}
function expect_refused($name, callable $fn) {
    try {
        $r = $fn();
        fail($name, 'expected SQLSTATE 42501, but it succeeded: ' . json_encode($r));
    } catch (QueryException $e) {
        $state = (string)$e->getCode();
        if ($state === '42501') { ok($name); echo '   refused: ' . strtok($e->getMessage(), "\n") . "\n"; }
        else fail($name, "expected SQLSTATE 42501, got $state: " . $e->getMessage());
    }
}
function group($name, callable $fn) {
    try { $fn(); } catch (Throwable $e) { fail($name, 'unexpected ' . get_class($e) . ': ' . $e->getMessage()); }
}
function ints($values) { return array_map('intval', array_values(is_array($values) ? $values : $values->all())); }

// The orders table's key is (tenant_id, id); rowguard fills in tenant_id, so the model is keyed by
// id alone (ids are unique across tenants in the example) and does not expect a generated key.
class Order extends Model {
    protected $table = 'orders';
    protected $primaryKey = 'id';
    public $incrementing = false;
    protected $keyType = 'int';
    public $timestamps = false;
    protected $guarded = [];
}

$capsule = new Capsule;
// t1 and t2 with Laravel's default pgsql settings plus a time zone and an application name;
// 't1_opts' (t1 again) adds the connector's remaining options, isolation_level and
// synchronous_commit.
foreach (['t1' => 'pw1', 't2' => 'pw2', 't1_opts' => 'pw1'] as $name => $password) {
    $user = substr($name, 0, 2);
    $extra = $name === 't1_opts' ? ['isolation_level' => 'repeatable read', 'synchronous_commit' => 'off'] : [];
    $capsule->addConnection($extra + [
        'driver' => 'pgsql',
        'host' => getenv('ROWGUARD_HOST') ?: '127.0.0.1',
        'port' => getenv('ROWGUARD_PORT') ?: '6432',
        'database' => getenv('ROWGUARD_DB') ?: 'appdb',
        'username' => $user,
        'password' => $password,
        'charset' => 'utf8',
        'prefix' => '',
        'prefix_indexes' => true,
        'schema' => 'public',
        'sslmode' => 'disable',
        'timezone' => 'UTC',
        'application_name' => 'rowguard-laravel-test',
        'options' => [PDO::ATTR_EMULATE_PREPARES => $mode === 'emulated'],
    ], $name);
}
$capsule->setAsGlobal();
$capsule->bootEloquent();

$t1 = $capsule->getConnection('t1');
$t2 = $capsule->getConnection('t2');
try {
    $t1->getPdo();  // connects: PostgresConnector sends its session setup
    $t2->getPdo();
    ok('connect (set names, set time zone, set search_path, set application_name)');
} catch (Throwable $e) {
    fail('connect', get_class($e) . ': ' . $e->getMessage());
    echo "1 check(s) failed\n";
    exit(1);
}
check_eq('PDO::ATTR_EMULATE_PREPARES is ' . ($mode === 'emulated' ? 'on' : 'off'),
    (bool)$t1->getPdo()->getAttribute(PDO::ATTR_EMULATE_PREPARES), $mode === 'emulated');

group('session setup', function () use ($t1) {
    check_eq('the time zone set at connect is in effect', $t1->selectOne('show time zone')->TimeZone, 'UTC');
    check_eq('the application name set at connect is in effect',
        $t1->selectOne('show application_name')->application_name, 'rowguard-laravel-test');
});

group('connector options', function () use ($capsule) {
    $db = $capsule->getConnection('t1_opts');
    $db->getPdo();  // sends set session characteristics as transaction isolation level …, set synchronous_commit to …
    check_eq('isolation_level set at connect is in effect', $db->selectOne('show transaction_isolation')->transaction_isolation, 'repeatable read');
    check_eq('synchronous_commit set at connect is in effect', $db->selectOne('show synchronous_commit')->synchronous_commit, 'off');
    check_eq('t1 with these options reads only its orders', ints($db->table('orders')->orderBy('id')->pluck('id')), [101, 102, 103]);
    $capsule->getDatabaseManager()->disconnect('t1_opts');
});

group('reads', function () use ($t1, $t2) {
    check_eq('t1 query builder reads only its orders', ints($t1->table('orders')->orderBy('id')->pluck('id')), [101, 102, 103]);
    check_eq('t2 query builder reads only its orders', ints($t2->table('orders')->orderBy('id')->pluck('id')), [201, 202, 203, 204]);
    check_eq('t1 count()', $t1->table('orders')->count(), 3);
    check_eq('t2 count()', $t2->table('orders')->count(), 4);
    check_eq("t1 where('id', 201) finds nothing", $t1->table('orders')->where('id', 201)->first(), null);
    check_eq("t1 where('tenant_id', 2) counts 0", $t1->table('orders')->where('tenant_id', 2)->count(), 0);
    check_eq('t1 whereIn over both tenants: only its rows',
        ints($t1->table('orders')->whereIn('id', [101, 201, 103, 204])->orderBy('id')->pluck('id')), [101, 103]);
    check_eq('t1 join orders/customers: only its rows',
        $t1->table('orders')->join('customers', 'customers.id', '=', 'orders.customer_id')
            ->orderBy('orders.id')->pluck('customers.name')->all(),
        ['acme-anvils', 'acme-rockets', 'acme-anvils']);
    check_eq('t1 raw select with a binding', ints(array_column($t1->select('select id from orders where id >= ? order by id', [0]), 'id')), [101, 102, 103]);
});

group('query builder writes', function () use ($t1, $t2, $ID) {
    check_eq('t1 insert without tenant_id', $t1->table('orders')->insert(['id' => $ID, 'customer_id' => 101, 'amount' => '12.50']), true);
    $row = $t1->table('orders')->where('id', $ID)->first();
    check_eq('t1 reads it back with tenant 1', [(int)$row->tenant_id, (string)$row->amount, $row->status], [1, '12.50', 'new']);
    check_eq('t2 does not see it', $t2->table('orders')->where('id', $ID)->count(), 0);
    check_eq('t1 insertGetId (insert … returning "id") without tenant_id',
        (int)$t1->table('orders')->insertGetId(['id' => $ID + 1, 'customer_id' => 102, 'amount' => '3.00'], 'id'), $ID + 1);
    check_eq('its tenant is 1', (int)$t1->table('orders')->where('id', $ID + 1)->value('tenant_id'), 1);
    check_eq("t2 update of t1's row affects 0 rows", $t2->table('orders')->where('id', $ID)->update(['status' => 'hacked']), 0);
    check_eq("t2 delete of t1's row affects 0 rows", $t2->table('orders')->where('id', $ID)->delete(), 0);
    check_eq('t1 update of its row affects 1 row', $t1->table('orders')->where('id', $ID)->update(['status' => 'paid']), 1);
    check_eq('t1 increment()', $t1->table('orders')->where('id', $ID)->increment('amount', 1), 1);
    check_eq('the row after both updates', [(string)$t1->table('orders')->where('id', $ID)->value('amount'),
        $t1->table('orders')->where('id', $ID)->value('status')], ['13.50', 'paid']);
    check_eq('t2 insert without tenant_id', $t2->table('orders')->insert(['id' => $ID + 2, 'customer_id' => 201, 'amount' => 5]), true);
    check_eq('t2 reads it back with tenant 2', (int)$t2->table('orders')->where('id', $ID + 2)->value('tenant_id'), 2);
    check_eq('t1 delete of its row affects 1 row', $t1->table('orders')->where('id', $ID + 1)->delete(), 1);
});

group('transactions', function () use ($t1, $ID) {
    try {
        $t1->transaction(function ($db) use ($ID) {
            $db->table('orders')->insert(['id' => $ID + 3, 'amount' => 1]);
            throw new RuntimeException('roll back');
        });
        fail('transaction() rolled back by an exception', 'the closure did not throw');
    } catch (RuntimeException $e) {
        check_eq('transaction() rolled back by an exception leaves nothing', $t1->table('orders')->where('id', $ID + 3)->count(), 0);
    }
    $t1->beginTransaction();
    $t1->table('orders')->where('id', $ID)->update(['status' => 'shipped']);
    check_eq('inside beginTransaction() the update is seen', $t1->table('orders')->where('id', $ID)->value('status'), 'shipped');
    $t1->rollBack();
    check_eq('after rollBack() it is gone', $t1->table('orders')->where('id', $ID)->value('status'), 'paid');
    $t1->transaction(function ($db) use ($ID) {
        $db->table('orders')->insert(['id' => $ID + 4, 'customer_id' => 103, 'amount' => '4.00']);
    });
    check_eq('transaction() commits', (int)$t1->table('orders')->where('id', $ID + 4)->value('tenant_id'), 1);
});

group('eloquent', function () use ($ID) {
    check_eq('t1 Order::all() is its orders', ints(Order::on('t1')->orderBy('id')->pluck('id')->filter(fn ($id) => $id < 1000)), [101, 102, 103]);
    check_eq('t2 Order count', Order::on('t2')->where('id', '<', 1000)->count(), 4);
    check_eq("t1 Order::find(201) (t2's) is null", Order::on('t1')->find(201), null);
    check_eq('t1 Order::find(101)', (string)Order::on('t1')->find(101)->amount, '250.00');
    check_eq("t1 findMany over both tenants", ints(Order::on('t1')->findMany([102, 202])->pluck('id')), [102]);
    $o = Order::on('t1')->create(['id' => $ID + 5, 'customer_id' => 101, 'amount' => '7.00']);
    check_eq('t1 Order::create without tenant_id', $o->exists, true);
    $back = Order::on('t1')->find($ID + 5);
    check_eq('t1 reads the model back with tenant 1', [(int)$back->tenant_id, $back->status], [1, 'new']);
    check_eq('t2 does not find it', Order::on('t2')->find($ID + 5), null);
    $back->status = 'shipped';
    check_eq('t1 $order->save() (update where id)', $back->save(), true);
    check_eq('the saved change', Order::on('t1')->find($ID + 5)->status, 'shipped');
    check_eq("t2 mass update of t1's model affects 0 rows", Order::on('t2')->where('id', $ID + 5)->update(['status' => 'hacked']), 0);
    check_eq('t1 $order->delete()', $back->delete(), true);
    check_eq('it is gone', Order::on('t1')->find($ID + 5), null);
    expect_refused('t1 Order::create with tenant_id 2 refused', function () use ($ID) {
        return Order::on('t1')->create(['id' => $ID + 6, 'tenant_id' => 2, 'amount' => '1.00']);
    });
    $m = Order::on('t1')->find(102);
    $m->tenant_id = 2;
    expect_refused('t1 moving a model to tenant 2 with save() refused', function () use ($m) { return $m->save(); });
    check_eq('the model is unchanged', (int)Order::on('t1')->find(102)->tenant_id, 1);
});

group('cross-tenant writes', function () use ($t1, $ID) {
    expect_refused('t1 insert with tenant_id 2 refused', function () use ($t1, $ID) {
        return $t1->table('orders')->insert(['id' => $ID + 7, 'tenant_id' => 2, 'amount' => 1]);
    });
    check_eq('the connection usable after the refusal (insert with tenant_id 1)',
        $t1->table('orders')->insert(['id' => $ID + 8, 'tenant_id' => 1, 'amount' => 1]), true);
    expect_refused('t1 moving its row to tenant 2 refused', function () use ($t1, $ID) {
        return $t1->table('orders')->where('id', $ID)->update(['tenant_id' => 2]);
    });
    expect_refused('t1 table outside the policy refused', function () use ($t1) { return $t1->table('audit_log')->get(); });
    expect_refused('refusal inside transaction() (rolled back)', function () use ($t1, $ID) {
        return $t1->transaction(function ($db) use ($ID) {
            $db->table('orders')->where('id', $ID)->update(['status' => 'cancelled']);
            return $db->table('orders')->insert(['id' => $ID + 9, 'tenant_id' => 2, 'amount' => 1]);
        });
    });
    check_eq('transaction level back to 0', $t1->transactionLevel(), 0);
    check_eq('the update before the refusal was rolled back', $t1->table('orders')->where('id', $ID)->value('status'), 'paid');
    check_eq('connection usable after refusals', (int)$t1->selectOne('select cast(? as int) + 1 as n', [41])->n, 42);
    check_eq('transaction after refusals commits', $t1->transaction(function ($db) use ($ID) {
        return $db->table('orders')->where('id', $ID)->update(['status' => 'shipped']);
    }), 1);
});

group('cleanup', function () use ($t1, $t2, $ID) {
    check_eq('t1 deletes its rows', $t1->table('orders')->whereBetween('id', [$ID, $ID + 48])->delete(), 3);
    check_eq('t2 deletes its row', $t2->table('orders')->whereBetween('id', [$ID, $ID + 48])->delete(), 1);
});

$capsule->getDatabaseManager()->disconnect('t1');
$capsule->getDatabaseManager()->disconnect('t2');
if ($failures > 0) { echo "$failures check(s) failed\n"; exit(1); }
echo "all checks passed\n";
