from django.apps import AppConfig


class DirectoryConfig(AppConfig):
    name = "mailvault.directory"
    label = "directory"

    def ready(self) -> None:
        from mailvault.directory import sync  # noqa: F401 - registers the process type
