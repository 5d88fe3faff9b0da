from django.apps import AppConfig


class ProcessesConfig(AppConfig):
    name = "backend.apps.processes"
    label = "processes"
    default_auto_field = "django.db.models.BigAutoField"
