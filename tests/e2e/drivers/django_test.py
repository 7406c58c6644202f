"""Django ORM (django.db.backends.postgresql, psycopg2) through rowguard, configured in code:
two database aliases, "default" as tenant t1 and "t2" as tenant t2, and the unmanaged models
of tests/e2e/drivers/django_app over customers and orders. CRUD through the ORM as both
tenants, each seeing only its rows; Customer has no tenant_id field (Django omits it, rowguard
fills it in), Order has one (Django always sends it; the app sets its own tenant)."""
import decimal
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import rgdriver as rg  # noqa: E402

import django  # noqa: E402
from django.conf import settings  # noqa: E402


def database(user):
    return {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": rg.HOST, "PORT": str(rg.PORT), "NAME": rg.DB,
        "USER": user, "PASSWORD": rg.PASSWORDS[user],
        "OPTIONS": {"sslmode": "disable", "connect_timeout": 10},
    }


settings.configure(
    DATABASES={"default": database("t1"), "t2": database("t2")},
    INSTALLED_APPS=["django_app"],
    USE_TZ=True,
    TIME_ZONE="UTC",
    DEFAULT_AUTO_FIELD="django.db.models.AutoField",
)
django.setup()

import psycopg2.errors  # noqa: E402
from django.db import connections, transaction  # noqa: E402
from django.db.utils import ProgrammingError  # noqa: E402
from django_app.models import Customer, Order  # noqa: E402

UPDATE_TENANT_REFUSAL = "the tenant column cannot be changed"


def tenant_of(alias, table, row_id):
    with connections[alias].cursor() as cur:
        cur.execute("SELECT tenant_id FROM " + table + " WHERE id = %s", [row_id])
        rows = cur.fetchall()
    return rows[0][0] if rows else None


def tenant_crud(alias, tenant):
    p = "t%d: " % tenant
    other = 2 if tenant == 1 else 1
    base = 5600 + 10 * tenant  # t1: 5610.., t2: 5620..
    orders = Order.objects.using(alias)
    customers = Customer.objects.using(alias)

    rg.check_eq(p + "ORM query sees exactly its orders", list(orders.order_by("id").values_list("id", flat=True)),
                rg.ORDERS[tenant])
    names = list(customers.values_list("name", flat=True))
    rg.check(p + "ORM query sees only its customers",
             names and all(n.startswith(rg.CUSTOMER_PREFIX[tenant]) for n in names), names)
    rg.check_eq(p + "other tenant's order not found", orders.filter(id=rg.ORDERS[other][0]).first(), None)
    rg.check_eq(p + "filter on tenant_id of the other tenant: empty", orders.filter(tenant_id=other).count(), 0)

    c = customers.create(id=base, name="%snew" % rg.CUSTOMER_PREFIX[tenant])
    rg.check_eq(p + "customer inserted without tenant_id gets the session tenant", tenant_of(alias, "customers", base), tenant)
    o = orders.create(id=base, tenant_id=tenant, customer=c, amount=decimal.Decimal("12.50"))
    o = orders.select_related("customer").get(id=base)
    rg.check_eq(p + "order created and loaded with its customer",
                (o.tenant_id, o.amount, o.status, o.customer.name), (tenant, decimal.Decimal("12.50"), "new", c.name))

    # Model.save() of a loaded object: Django's UPDATE sets every field, tenant_id included
    # (to its unchanged, own value).
    o.amount = decimal.Decimal("13.50")
    rg.expect_works(p + "Model.save() of an order (UPDATE ... SET tenant_id = own tenant)",
                    lambda: o.save(using=alias), UPDATE_TENANT_REFUSAL)
    # What works today: save only the changed fields, or QuerySet.update().
    o.status = "paid"
    o.save(using=alias, update_fields=["amount", "status"])
    rg.check_eq(p + "save(update_fields=...)", orders.filter(id=base).values_list("amount", "status").get(),
                (decimal.Decimal("13.50"), "paid"))
    rg.check_eq(p + "QuerySet.update() of the other tenant's order affects 0 rows",
                orders.filter(id=rg.ORDERS[other][0]).update(status="hacked"), 0)
    c.name = c.name + "-renamed"
    c.save(using=alias)
    rg.check_eq(p + "Model.save() of a customer (no tenant field)", customers.get(id=base).name, c.name)

    # Another tenant's id in tenant_id: refused; the connection stays usable.
    rg.expect_refused(p + "order with another tenant_id refused",
                      lambda: orders.create(id=base + 1, tenant_id=other, amount=decimal.Decimal("1")),
                      psycopg2.errors.InsufficientPrivilege)
    rg.expect_refused(p + "QuerySet.update(tenant_id=other) refused",
                      lambda: orders.filter(id=base).update(tenant_id=other), psycopg2.errors.InsufficientPrivilege)
    try:
        with transaction.atomic(using=alias):
            orders.create(id=base + 2, tenant_id=tenant, amount=decimal.Decimal("1"))
            orders.create(id=base + 3, tenant_id=other, amount=decimal.Decimal("1"))
        rg.fail(p + "refusal inside atomic()", "not refused")
    except ProgrammingError as e:
        rg.check(p + "refusal inside atomic()", rg.sqlstate_of(e) == "42501", e)
    rg.check_eq(p + "atomic() rolled back", orders.filter(id__in=[base + 2, base + 3]).count(), 0)
    rg.check_eq(p + "connection usable after refusals", orders.count(), len(rg.ORDERS[tenant]) + 1)

    rg.check_eq(p + "ORM delete", orders.filter(id__gte=base).delete()[0], 1)
    customers.filter(id=base).delete()
    rg.check_eq(p + "ORM delete: gone", (orders.filter(id__gte=base).count(), customers.filter(id=base).count()), (0, 0))


rg.run("t1", lambda: tenant_crud("default", 1))
rg.run("t2", lambda: tenant_crud("t2", 2))
for conn in connections.all():
    conn.close()
for user in ("t1", "t2"):
    rg.cleanup_psycopg2("DELETE FROM orders WHERE id BETWEEN 5600 AND 5699", user)
    rg.cleanup_psycopg2("DELETE FROM customers WHERE id BETWEEN 5600 AND 5699", user)
rg.finish()
