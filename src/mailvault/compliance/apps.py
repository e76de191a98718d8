from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "mailvault.compliance"
    label = "compliance"

    def ready(self) -> None:
        # Registers the sign-in receivers and the audit/integrity process types.
        # (compliance.jobs: retention and export.)
        from mailvault.compliance import integrity, jobs  # noqa: F401
        from mailvault.compliance.audit import digest, signals  # noqa: F401
