from django.apps import AppConfig


class SourcesConfig(AppConfig):
    name = "mailvault.sources"
    label = "sources"
