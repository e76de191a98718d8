from django.apps import AppConfig


class SearchConfig(AppConfig):
    name = "mailvault.search"
    label = "search"

    def ready(self) -> None:
        # Phrase checks read body texts from the archive (see search._phrases).
        from mailvault.ingestion.body_texts import loader_for
        from mailvault.search import index

        index.default_text_loader = loader_for
