from django.apps import AppConfig

from mailvault.jobs import registry


class IngestionConfig(AppConfig):
    name = "mailvault.ingestion"
    label = "ingestion"

    def ready(self) -> None:
        registry.provided_by("mailvault.ingestion.file_import")
