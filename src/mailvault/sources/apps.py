from django.apps import AppConfig


class SourcesConfig(AppConfig):
    name = "mailvault.sources"
    label = "sources"

    def ready(self) -> None:
        from mailvault.sources.foldersync import job as foldersync  # noqa: F401 - job type
        from mailvault.sources.profiles import job  # noqa: F401 - registers the job type
        from mailvault.sources.smtp import processlog  # noqa: F401 - registers the job type
