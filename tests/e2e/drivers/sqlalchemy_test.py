"""SQLAlchemy ORM (psycopg2 dialect) through rowguard: declarative models over customers and
orders, CRUD through ORM sessions of two tenants (t1, t2), each seeing only its rows. The
models map tenant_id as a server-generated column (FetchedValue), so the ORM leaves it out of
its INSERTs and rowguard fills it in; Order also uses eager_defaults (INSERT ... RETURNING).
An object whose tenant_id is set to another tenant is refused at flush."""
import decimal
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rgdriver as rg  # noqa: E402

import psycopg2.errors  # noqa: E402
import sqlalchemy  # noqa: E402
from sqlalchemy import Column, FetchedValue, ForeignKey, Integer, Numeric, Text, create_engine, select  # noqa: E402
from sqlalchemy.orm import Session, declarative_base, relationship  # noqa: E402

Base = declarative_base()


class Customer(Base):
    __tablename__ = "customers"
    id = Column(Integer, primary_key=True, autoincrement=False)
    tenant_id = Column(Integer, server_default=FetchedValue(), nullable=True)  # filled by rowguard
    name = Column(Text, nullable=False)


class Order(Base):
    __tablename__ = "orders"
    __mapper_args__ = {"eager_defaults": True}  # fetch tenant_id/status with INSERT ... RETURNING
    id = Column(Integer, primary_key=True, autoincrement=False)
    tenant_id = Column(Integer, server_default=FetchedValue(), nullable=True)  # filled by rowguard
    customer_id = Column(Integer, ForeignKey("customers.id"))  # no FK in the database; ORM-only
    amount = Column(Numeric(10, 2), nullable=False)
    status = Column(Text, server_default=FetchedValue())
    customer = relationship(Customer)


def engine_for(user):
    url = sqlalchemy.engine.URL.create("postgresql+psycopg2", username=user, password=rg.PASSWORDS[user],
                                       host=rg.HOST, port=rg.PORT, database=rg.DB,
                                       query={"sslmode": "disable", "connect_timeout": "10"})
    return create_engine(url, future=True)


def tenant_crud(tenant):
    user = "t%d" % tenant
    engine = engine_for(user)
    base = 5500 + 10 * tenant  # t1: 5510.., t2: 5520..
    p = user + ": "
    try:
        with Session(engine) as s:
            ids = s.scalars(select(Order.id).order_by(Order.id)).all()
            rg.check_eq(p + "ORM query sees exactly its orders", ids, rg.ORDERS[tenant])
            names = s.scalars(select(Customer.name)).all()
            rg.check(p + "ORM query sees only its customers",
                     names and all(n.startswith(rg.CUSTOMER_PREFIX[tenant]) for n in names), names)
            other = 2 if tenant == 1 else 1
            rg.check_eq(p + "other tenant's order not loadable", s.get(Order, rg.ORDERS[other][0]), None)

            c = Customer(id=base, name="%snew" % rg.CUSTOMER_PREFIX[tenant])
            o = Order(id=base, customer=c, amount=decimal.Decimal("12.50"))
            s.add_all([c, o])
            s.commit()
            rg.ok(p + "ORM insert without tenant_id committed")

        with Session(engine) as s:
            o = s.get(Order, base)
            rg.check(p + "inserted order loads", o is not None)
            rg.check_eq(p + "order got tenant_id from rowguard", o.tenant_id, tenant)
            rg.check_eq(p + "order got the default status", o.status, "new")
            rg.check_eq(p + "relationship: its customer", (o.customer.id, o.customer.tenant_id), (base, tenant))
            o.amount = decimal.Decimal("13.50")
            o.status = "paid"
            s.commit()
            s.expire_all()
            rg.check_eq(p + "ORM update", (o.amount, o.status), (decimal.Decimal("13.50"), "paid"))
            n = s.query(Order).filter(Order.id == rg.ORDERS[other][0]).update({"status": "hacked"},
                                                                             synchronize_session=False)
            rg.check_eq(p + "bulk update of other tenant's order affects 0 rows", n, 0)
            s.commit()

            # Setting the tenant column to another tenant: refused at flush, session usable after rollback.
            s.add(Order(id=base + 1, tenant_id=other, amount=decimal.Decimal("1")))
            rg.expect_refused(p + "order with another tenant_id refused at flush", s.flush,
                              psycopg2.errors.InsufficientPrivilege)
            s.rollback()
            s.add(Order(id=base + 2, tenant_id=tenant, amount=decimal.Decimal("1")))
            s.commit()
            rg.ok(p + "order with its own tenant_id set explicitly accepted")
            rg.check_eq(p + "session usable after the refusal", s.scalar(select(sqlalchemy.func.count(Order.id))),
                        len(rg.ORDERS[tenant]) + 2)
            o.tenant_id = other
            rg.expect_refused(p + "moving an order to another tenant refused", s.flush,
                              psycopg2.errors.InsufficientPrivilege)
            s.rollback()

            for obj in s.scalars(select(Order).where(Order.id.in_([base, base + 1, base + 2]))).all():
                s.delete(obj)
            s.delete(s.get(Customer, base))
            s.commit()
            rg.check_eq(p + "ORM delete", s.scalars(select(Order.id).where(Order.id >= base)).all(), [])
    finally:
        engine.dispose()


def both_sessions_at_once():
    """Two tenants' sessions interleaved: each sees its own new row only."""
    e1, e2 = engine_for("t1"), engine_for("t2")
    try:
        with Session(e1) as s1, Session(e2) as s2:
            s1.add(Order(id=5530, amount=decimal.Decimal("1")))
            s2.add(Order(id=5531, amount=decimal.Decimal("2")))
            s1.commit()
            s2.commit()
            rg.check_eq("t1 sees its new row, not t2's", s1.scalars(select(Order.id).where(Order.id >= 5530)).all(), [5530])
            rg.check_eq("t2 sees its new row, not t1's", s2.scalars(select(Order.id).where(Order.id >= 5530)).all(), [5531])
            rg.check_eq("tenant ids", (s1.get(Order, 5530).tenant_id, s2.get(Order, 5531).tenant_id), (1, 2))
            rg.check_eq("t1 cannot delete t2's row", s1.query(Order).filter(Order.id == 5531).delete(), 0)
            s1.commit()
            s1.delete(s1.get(Order, 5530))
            s2.delete(s2.get(Order, 5531))
            s1.commit()
            s2.commit()
    finally:
        e1.dispose()
        e2.dispose()


rg.run("t1", lambda: tenant_crud(1))
rg.run("t2", lambda: tenant_crud(2))
rg.run("interleaved", both_sessions_at_once)
for user in ("t1", "t2"):
    rg.cleanup_psycopg2("DELETE FROM orders WHERE id BETWEEN 5500 AND 5599", user)
    rg.cleanup_psycopg2("DELETE FROM customers WHERE id BETWEEN 5500 AND 5599", user)
rg.finish()
