from django.apps import AppConfig


class DirectoryConfig(AppConfig):
    name = "mailvault.directory"
    label = "directory"
