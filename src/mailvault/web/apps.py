from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "mailvault.web"
    label = "web"
