from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "mailvault.api"
    label = "api"
