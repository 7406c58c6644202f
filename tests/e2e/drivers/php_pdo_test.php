<?php
// PHP PDO pgsql (Debian php-pgsql, libpq underneath) through rowguard, as tenants t1 and t2, with
// PDO::ATTR_EMULATE_PREPARES on ("emulated": PDO interpolates the parameters and sends simple
// queries) or off ("native": PQprepare / PQexecPrepared, named server-side statements). Checks:
// reads filtered, INSERT without the tenant column, cross-tenant writes refused with SQLSTATE
// 42501, the connection and its prepared statements usable afterwards. Run by
// tests/e2e/stacks_e2e_test.cc as `php php_pdo_test.php emulated|native` with ROWGUARD_HOST,
// ROWGUARD_PORT, ROWGUARD_DB in the environment; prints "ok <check>" / "FAIL <check>: ..." and
// "all checks passed" (exit 0) when nothing failed.
$mode = $argv[1] ?? 'native';
if ($mode !== 'emulated' && $mode !== 'native') {
    fwrite(STDERR, "usage: php php_pdo_test.php emulated|native\n");
    exit(2);
}
$ID = $mode === 'emulated' ? 6101 : 6151;  // this run's rows: ID..ID+48
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
    } catch (PDOException $e) {
        $state = $e->errorInfo[0] ?? $e->getCode();
        if ($state === '42501') { ok($name); echo '   refused: ' . strtok($e->getMessage(), "\n") . "\n"; }
        else fail($name, "expected SQLSTATE 42501, got $state: " . $e->getMessage());
    }
}
function connect($user, $password, $mode) {
    $dsn = sprintf('pgsql:host=%s;port=%s;dbname=%s;sslmode=disable;connect_timeout=10',
        getenv('ROWGUARD_HOST') ?: '127.0.0.1', getenv('ROWGUARD_PORT') ?: '6432', getenv('ROWGUARD_DB') ?: 'appdb');
    return new PDO($dsn, $user, $password, [
        PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
        PDO::ATTR_EMULATE_PREPARES => $mode === 'emulated',
        PDO::ATTR_DEFAULT_FETCH_MODE => PDO::FETCH_NUM,
    ]);
}
function ids(PDOStatement $st) { return array_map('intval', $st->fetchAll(PDO::FETCH_COLUMN, 0)); }
function group($name, callable $fn) {
    try { $fn(); } catch (Throwable $e) { fail($name, 'unexpected ' . get_class($e) . ': ' . $e->getMessage()); }
}

$t1 = connect('t1', 'pw1', $mode);
$t2 = connect('t2', 'pw2', $mode);
check_eq("PDO::ATTR_EMULATE_PREPARES is " . ($mode === 'emulated' ? 'on' : 'off'),
    (bool)$t1->getAttribute(PDO::ATTR_EMULATE_PREPARES), $mode === 'emulated');

group('reads', function () use ($t1, $t2) {
    check_eq('t1 reads only its orders', ids($t1->query('SELECT id FROM orders ORDER BY id')), [101, 102, 103]);
    check_eq('t2 reads only its orders', ids($t2->query('SELECT id FROM orders ORDER BY id')), [201, 202, 203, 204]);
    $st = $t1->prepare('SELECT id FROM orders WHERE id = ?');
    $seen = [];
    foreach ([101, 201, 102, 202, 103, 203, 204] as $id) { $st->execute([$id]); $seen = array_merge($seen, ids($st)); }
    check_eq('t1 prepared select by id: only its rows', $seen, [101, 102, 103]);
});

group('insert', function () use ($t1, $t2, $ID) {
    $ins = $t1->prepare('INSERT INTO orders (id, customer_id, amount) VALUES (:id, :customer, :amount)');
    $ins->execute([':id' => $ID, ':customer' => 101, ':amount' => '12.50']);
    check_eq('t1 prepared insert without tenant_id', $ins->rowCount(), 1);
    $get = $t1->prepare('SELECT tenant_id, amount, status FROM orders WHERE id = ?');
    $get->execute([$ID]);
    $row = $get->fetch();
    check_eq('t1 reads it back with tenant 1', [(int)$row[0], (string)$row[1], $row[2]], [1, '12.50', 'new']);
    $st = $t2->prepare('SELECT count(*) FROM orders WHERE id = ?');
    $st->execute([$ID]);
    check_eq('t2 does not see it', (int)$st->fetchColumn(), 0);
    $up = $t2->prepare('UPDATE orders SET status = ? WHERE id = ?');
    $up->execute(['hacked', $ID]);
    check_eq("t2 update of t1's row affects 0 rows", $up->rowCount(), 0);
    $ins2 = $t2->prepare('INSERT INTO orders (id, customer_id, amount) VALUES (?, ?, ?)');
    $ins2->execute([$ID + 1, 201, '5']);
    check_eq('t2 insert without tenant_id', $ins2->rowCount(), 1);
    $st = $t2->prepare('SELECT tenant_id FROM orders WHERE id = ?');
    $st->execute([$ID + 1]);
    check_eq('t2 reads it back with tenant 2', (int)$st->fetchColumn(), 2);
});

group('cross-tenant writes', function () use ($t1, $ID) {
    $ins = $t1->prepare('INSERT INTO orders (id, tenant_id, amount) VALUES (?, ?, 1)');
    expect_refused('t1 prepared insert with tenant_id 2 refused', function () use ($ins, $ID) { return $ins->execute([$ID + 2, 2]); });
    $ins->execute([$ID + 3, 1]);
    check_eq('the prepared statement usable after the refusal (tenant_id 1)', $ins->rowCount(), 1);
    expect_refused('t1 moving its row to tenant 2 refused', function () use ($t1, $ID) {
        return $t1->prepare('UPDATE orders SET tenant_id = ? WHERE id = ?')->execute([2, $ID]);
    });
    expect_refused('t1 table outside the policy refused', function () use ($t1) { return $t1->query('SELECT * FROM audit_log')->fetchAll(); });
    $t1->beginTransaction();
    expect_refused('refusal inside a transaction', function () use ($t1, $ID) {
        return $t1->exec('INSERT INTO orders (id, tenant_id, amount) VALUES (' . ($ID + 4) . ', 2, 1)');
    });
    $t1->rollBack();
    $st = $t1->prepare('SELECT CAST(? AS int) + 1');
    $st->execute([41]);
    check_eq('connection usable after refusals', (int)$st->fetchColumn(), 42);
    $t1->beginTransaction();
    $n = $t1->exec('UPDATE orders SET status = \'paid\' WHERE id = ' . $ID);
    $t1->commit();
    check_eq('transaction after refusals commits', $n, 1);
});

group('cleanup', function () use ($t1, $t2, $ID) {
    $del = $t1->prepare('DELETE FROM orders WHERE id BETWEEN ? AND ?');
    $del->execute([$ID, $ID + 48]);
    check_eq('t1 deletes its rows', $del->rowCount(), 2);
    $del = $t2->prepare('DELETE FROM orders WHERE id BETWEEN ? AND ?');
    $del->execute([$ID, $ID + 48]);
    check_eq('t2 deletes its row', $del->rowCount(), 1);
});

$t1 = null;
$t2 = null;
if ($failures > 0) { echo "$failures check(s) failed\n"; exit(1); }
echo "all checks passed\n";
