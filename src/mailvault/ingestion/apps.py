from django.apps import AppConfig


class IngestionConfig(AppConfig):
    name = "mailvault.ingestion"
    label = "ingestion"

    def ready(self) -> None:
        from mailvault.ingestion import file_import  # noqa: F401 - registers the job type
