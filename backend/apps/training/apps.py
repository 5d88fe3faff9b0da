from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "backend.apps.training"
    label = "training"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Hear the runners' reports on training jobs (they import no app: runners.events)."""
        from backend.apps.training.services import RunnerListener
        from backend.kafkaml_backend.runners import events

        events.listen_results(RunnerListener())
