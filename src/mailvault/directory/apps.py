from django.apps import AppConfig

from mailvault.jobs import registry


class DirectoryConfig(AppConfig):
    name = "mailvault.directory"
    label = "directory"

    def ready(self) -> None:
        registry.provided_by("mailvault.directory.sync")
