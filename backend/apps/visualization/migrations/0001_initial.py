import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [("inferences", "0001_initial")]

    operations = [
        migrations.CreateModel(
            name="Visualization",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "type",
                    models.CharField(
                        choices=[
                            ("classification", "Classification"),
                            ("regression", "Regression"),
                        ],
                        default="classification",
                        max_length=20,
                    ),
                ),
                ("labels", models.JSONField(default=list)),
                ("average_updated", models.BooleanField(default=False)),
                ("average_window", models.PositiveIntegerField(default=10000)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "inference",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="visualization",
                        to="inferences.inference",
                    ),
                ),
            ],
        ),
    ]
