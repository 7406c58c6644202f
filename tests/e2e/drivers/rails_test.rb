# Rails ActiveRecord 6.1 (Debian ruby-activerecord, ruby-pg) through rowguard, as tenants t1 and
# t2, with prepared_statements true (named server-side statements) and false (literals inlined):
# the adapter's connection setup (SET client_min_messages / search_path /
# standard_conforming_strings / intervalstyle / SESSION timezone, the type-map queries on
# pg_type), reads filtered, create without the tenant column, insert_all / upsert_all, a
# transaction, a cross-tenant write refused with SQLSTATE 42501 and the connection usable
# afterwards, the migrator's advisory lock. Run by tests/e2e/drivers_e2e_test.cc with ROWGUARD_HOST, ROWGUARD_PORT,
# ROWGUARD_DB in the environment. Prints "ok <check>" / "FAIL <check>: ..." and exits 0 when
# nothing failed.
require 'active_record'
require 'pg'

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
  fail(name, "expected SQLSTATE 42501, but it succeeded: #{r.inspect}")
rescue ActiveRecord::StatementInvalid => e
  code = e.cause.respond_to?(:result) && e.cause.result ? e.cause.result.error_field(PG::PG_DIAG_SQLSTATE) : nil
  if code == '42501'
    ok(name)
    puts "   refused: #{e.cause.message.lines.first&.strip}"
  else
    fail(name, "expected SQLSTATE 42501, got #{code}: #{e.message}")
  end
end

ActiveRecord::Base.default_timezone = :utc  # the adapter then sends SET SESSION timezone TO 'UTC'

class Order < ActiveRecord::Base
  self.table_name = 'orders'
  self.primary_key = 'id'  # the key is (tenant_id, id); ActiveRecord 6.1 has no composite keys
end

class Customer < ActiveRecord::Base
  self.table_name = 'customers'
  self.primary_key = 'id'
end

TENANTS = {
  't1' => { password: 'pw1', tenant: 1, own: [101, 102, 103], other: [201, 202, 203], customer: 101 },
  't2' => { password: 'pw2', tenant: 2, own: [201, 202, 203, 204], other: [101, 102, 103], customer: 201 },
}.freeze

def connect(user, prepared)
  ActiveRecord::Base.establish_connection(
    adapter: 'postgresql',
    host: ENV.fetch('ROWGUARD_HOST', '127.0.0.1'),
    port: Integer(ENV.fetch('ROWGUARD_PORT', '6432')),
    database: ENV.fetch('ROWGUARD_DB', 'appdb'),
    username: user, password: TENANTS[user][:password], sslmode: 'disable',
    encoding: 'utf8',
    prepared_statements: prepared,
    # what config/database.yml often says (SET search_path TO public); the default run sends none
    schema_search_path: prepared ? nil : 'public',
    variables: { statement_timeout: '30s', lock_timeout: '10s', application_name: 'rails-e2e' },
    pool: 1, connect_timeout: 10
  )
  Order.reset_column_information
  Customer.reset_column_information
  ActiveRecord::Base.connection  # connects: configure_connection runs here
end

def run_checks(user, prepared)
  t = TENANTS[user]
  tag = "#{user} prepared_statements=#{prepared}"
  base = 5600 + (t[:tenant] * 20) + (prepared ? 0 : 10)  # this run's rows: base..base+9

  begin
    connect(user, prepared)
    ok("#{tag}: connect (adapter setup statements accepted)")
  rescue StandardError => e
    fail("#{tag}: connect (adapter setup statements accepted)", "#{e.class}: #{e.message}")
    return
  end

  check_eq("#{tag}: SHOW standard_conforming_strings",
           ActiveRecord::Base.connection.select_value('SHOW standard_conforming_strings'), 'on')
  check_eq("#{tag}: SHOW TimeZone", ActiveRecord::Base.connection.select_value('SHOW TimeZone'), 'UTC')
  check_eq("#{tag}: SHOW search_path", ActiveRecord::Base.connection.select_value('SHOW search_path'), 'public')

  # reads filtered
  check_eq("#{tag}: Order.all is the tenant's orders", Order.order(:id).pluck(:id), t[:own])
  check_eq("#{tag}: tenant ids", Order.distinct.pluck(:tenant_id), [t[:tenant]])
  check_eq("#{tag}: where(id: other tenant's ids) is empty", Order.where(id: t[:other]).to_a, [])
  check_eq("#{tag}: find_by other tenant's order is nil", Order.find_by(id: t[:other].first), nil)
  check_eq("#{tag}: count", Order.count, t[:own].size)
  check_eq("#{tag}: customers joined", Customer.where(id: t[:customer]).pluck(:name).size, 1)

  # create without tenant_id: rowguard fills it in
  o = Order.create!(id: base, customer_id: t[:customer], amount: '12.50')
  check_eq("#{tag}: create without tenant_id", Order.where(id: base).pluck(:tenant_id, :amount, :status),
           [[t[:tenant], BigDecimal('12.50'), 'new']])
  o.update!(status: 'paid')
  check_eq("#{tag}: update own row", Order.where(id: base).pluck(:status), ['paid'])

  # insert_all / upsert_all
  # (the key is (tenant_id, id): ActiveRecord 6.1 wants it named; insert_all! cannot take it)
  Order.insert_all([{ id: base + 1, amount: 1 }, { id: base + 2, amount: 2 }], unique_by: %i[tenant_id id])
  check_eq("#{tag}: insert_all without tenant_id", Order.where(id: [base + 1, base + 2]).order(:id).pluck(:tenant_id),
           [t[:tenant], t[:tenant]])
  Order.upsert_all([{ tenant_id: t[:tenant], id: base + 1, amount: 7 }, { tenant_id: t[:tenant], id: base + 3, amount: 3 }],
                   unique_by: %i[tenant_id id])
  check_eq("#{tag}: upsert_all", Order.where(id: [base + 1, base + 3]).order(:id).pluck(:amount),
           [BigDecimal('7'), BigDecimal('3')])

  # a transaction, committed and rolled back
  Order.transaction do
    Order.where(id: base + 2).update_all(amount: 22)
    Order.create!(id: base + 4, amount: 4)
  end
  check_eq("#{tag}: transaction committed", Order.where(id: [base + 2, base + 4]).order(:id).pluck(:amount),
           [BigDecimal('22'), BigDecimal('4')])
  Order.transaction do
    Order.create!(id: base + 5, amount: 5)
    raise ActiveRecord::Rollback
  end
  check_eq("#{tag}: transaction rolled back", Order.where(id: base + 5).count, 0)

  # isolation: writes to the other tenant's rows
  check_eq("#{tag}: update_all of another tenant's row affects 0 rows",
           Order.where(id: t[:other].first).update_all(status: 'hacked'), 0)
  check_eq("#{tag}: delete_all of another tenant's row affects 0 rows", Order.where(id: t[:other].first).delete_all, 0)
  other = 3 - t[:tenant]
  expect_refused("#{tag}: create with the other tenant's tenant_id refused") do
    Order.create!(id: base + 6, tenant_id: other, amount: 1)
  end
  expect_refused("#{tag}: insert_all with the other tenant's tenant_id refused") do
    Order.insert_all([{ id: base + 7, tenant_id: other, amount: 1 }], unique_by: %i[tenant_id id])
  end
  expect_refused("#{tag}: moving a row to the other tenant refused") do
    Order.where(id: base).update_all(tenant_id: other)
  end
  begin
    Order.transaction do
      expect_refused("#{tag}: refusal inside a transaction") { Order.create!(id: base + 8, tenant_id: other, amount: 1) }
      raise ActiveRecord::Rollback
    end
  rescue StandardError => e
    fail("#{tag}: transaction after a refusal rolls back", "#{e.class}: #{e.message}")
  end
  check_eq("#{tag}: connection usable after refusals", Order.where(id: base).pluck(:status), ['paid'])
  expect_refused("#{tag}: table outside the policy refused") { ActiveRecord::Base.connection.select_all('SELECT * FROM audit_log') }
  # the advisory lock of migrations (ActiveRecord::Migrator): per tenant through rowguard
  lock_id = 1_553_074_126_848_393_010  # what a migrator derives from the database name
  check_eq("#{tag}: get_advisory_lock", ActiveRecord::Base.connection.get_advisory_lock(lock_id), true)
  check_eq("#{tag}: release_advisory_lock", ActiveRecord::Base.connection.release_advisory_lock(lock_id), true)
  check_eq("#{tag}: connection usable at the end", ActiveRecord::Base.connection.select_value('SELECT 40 + 2'), 42)
rescue StandardError => e
  fail("#{tag}: unexpected error", "#{e.class}: #{e.message}\n#{e.backtrace.first(5).join("\n")}")
ensure
  begin
    Order.where(id: base..(base + 9)).delete_all if ActiveRecord::Base.connected?
  rescue StandardError => e
    fail("#{tag}: cleanup", "#{e.class}: #{e.message}")
  end
  ActiveRecord::Base.remove_connection
end

[true, false].each do |prepared|
  %w[t1 t2].each { |user| run_checks(user, prepared) }
end

if $failures.positive?
  puts "#{$failures} check(s) failed"
  exit 1
end
puts 'all checks passed'
