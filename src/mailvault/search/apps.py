from django.apps import AppConfig


class SearchConfig(AppConfig):
    name = "mailvault.search"
    label = "search"
