from django.apps import AppConfig

from mailvault.jobs import registry


class SourcesConfig(AppConfig):
    name = "mailvault.sources"
    label = "sources"

    def ready(self) -> None:
        registry.provided_by(
            "mailvault.sources.foldersync.job",
            "mailvault.sources.profiles.job",
            "mailvault.sources.smtp.processlog",
        )
