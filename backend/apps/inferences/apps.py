from django.apps import AppConfig


class InferencesConfig(AppConfig):
    name = "backend.apps.inferences"
    label = "inferences"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Hear the runners' reports on inference replicas (runners.events)."""
        from backend.apps.inferences.services import RunnerListener
        from backend.kafkaml_backend.runners import events

        events.listen_inferences(RunnerListener())
