from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0003_result_onnx_artifact"),
    ]

    operations = [
        migrations.AddField(
            model_name="deployment",
            name="target",
            field=models.CharField(
                choices=[("label", "Label"), ("input", "Input")], default="label", max_length=10
            ),
        ),
    ]
