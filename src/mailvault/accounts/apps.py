from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "mailvault.accounts"
    label = "accounts"
