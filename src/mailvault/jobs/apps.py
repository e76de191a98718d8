from django.apps import AppConfig

from mailvault.jobs import registry


class JobsConfig(AppConfig):
    name = "mailvault.jobs"
    label = "jobs"

    def ready(self) -> None:
        from mailvault.jobs import signals  # noqa: F401 - registers the receivers

        registry.provided_by("mailvault.jobs.builtin")
