from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "mailvault.jobs"
    label = "jobs"

    def ready(self) -> None:
        from mailvault.jobs import builtin, signals  # noqa: F401 - registers
