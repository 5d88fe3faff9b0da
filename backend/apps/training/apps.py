from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "backend.apps.training"
    label = "training"
    default_auto_field = "django.db.models.BigAutoField"
