from django.apps import AppConfig


class InferencesConfig(AppConfig):
    name = "backend.apps.inferences"
    label = "inferences"
    default_auto_field = "django.db.models.BigAutoField"
