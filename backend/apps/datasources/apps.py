from django.apps import AppConfig


class DatasourcesConfig(AppConfig):
    name = "backend.apps.datasources"
    label = "datasources"
    default_auto_field = "django.db.models.BigAutoField"
