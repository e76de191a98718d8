from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "mailvault.tenancy"
    label = "tenancy"
