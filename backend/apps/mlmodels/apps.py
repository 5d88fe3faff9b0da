from django.apps import AppConfig


class MlmodelsConfig(AppConfig):
    name = "backend.apps.mlmodels"
    label = "mlmodels"
    default_auto_field = "django.db.models.BigAutoField"
