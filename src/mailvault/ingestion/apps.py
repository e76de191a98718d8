from django.apps import AppConfig


class IngestionConfig(AppConfig):
    name = "mailvault.ingestion"
    label = "ingestion"
