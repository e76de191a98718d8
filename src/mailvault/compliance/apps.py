from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "mailvault.compliance"
    label = "compliance"
