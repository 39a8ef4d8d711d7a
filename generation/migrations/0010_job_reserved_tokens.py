from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("generation", "0009_job_backend")]

    operations = [
        migrations.AddField(model_name="job", name="reserved_tokens", field=models.PositiveIntegerField(default=0)),
    ]
