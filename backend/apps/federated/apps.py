from django.apps import AppConfig


class FederatedConfig(AppConfig):
    name = "backend.apps.federated"
    label = "federated"
    default_auto_field = "django.db.models.BigAutoField"
