"""Per-inference delivery guarantee: exactly-once (default) or at-least-once."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("inferences", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="inference",
            name="delivery",
            field=models.CharField(
                choices=[("exactly-once", "Exactly Once"), ("at-least-once", "At Least Once")],
                default="exactly-once",
                max_length=20,
            ),
        ),
    ]
