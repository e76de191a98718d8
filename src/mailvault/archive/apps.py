from django.apps import AppConfig


class ArchiveConfig(AppConfig):
    name = "mailvault.archive"
    label = "archive"
