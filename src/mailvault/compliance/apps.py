from django.apps import AppConfig

from mailvault.jobs import registry


class ComplianceConfig(AppConfig):
    name = "mailvault.compliance"
    label = "compliance"

    def ready(self) -> None:
        # The sign-in receivers; the process types of retention and export (jobs), the
        # integrity check and the audit digest.
        from mailvault.compliance.audit import signals  # noqa: F401

        registry.provided_by(
            "mailvault.compliance.integrity",
            "mailvault.compliance.jobs",
            "mailvault.compliance.audit.digest",
        )
