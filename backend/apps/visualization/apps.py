from django.apps import AppConfig


class VisualizationConfig(AppConfig):
    name = "backend.apps.visualization"
    label = "visualization"
    default_auto_field = "django.db.models.BigAutoField"
