from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "mailvault.jobs"
    label = "jobs"
