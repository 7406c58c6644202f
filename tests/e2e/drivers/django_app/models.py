from django.db import models


class Customer(models.Model):
    # tenant_id is deliberately not a field: Django then leaves it out of its INSERTs and
    # rowguard fills in the session's tenant.
    id = models.IntegerField(primary_key=True)
    name = models.TextField()

    class Meta:
        managed = False
        db_table = "customers"
        app_label = "django_app"


class Order(models.Model):
    # Django always sends every concrete field in an INSERT, so the app sets tenant_id itself;
    # rowguard accepts the session's tenant and refuses any other.
    id = models.IntegerField(primary_key=True)
    tenant_id = models.IntegerField()
    customer = models.ForeignKey(Customer, on_delete=models.DO_NOTHING, db_constraint=False, null=True)
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    status = models.TextField(default="new")

    class Meta:
        managed = False
        db_table = "orders"
        app_label = "django_app"
