from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("generation", "0019_training"),
    ]

    operations = [
        migrations.AddField(
            model_name="desk",
            name="cap_tokens_per_day",
            field=models.PositiveIntegerField(
                blank=True,
                help_text="Staff's cap on the desk per day, over what its admins set. Empty: none.",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="desk",
            name="cap_tokens_per_month",
            field=models.PositiveIntegerField(
                blank=True,
                help_text="Staff's cap on the desk per month, over what its admins set. Empty: none.",
                null=True,
            ),
        ),
    ]
