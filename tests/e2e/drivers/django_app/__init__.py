# A minimal Django app for tests/e2e/drivers/django_test.py: unmanaged models over the
# example schema's customers and orders (examples/schema.sql).
