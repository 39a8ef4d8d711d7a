from django.db import migrations, models


def runs_without_a_desk_mixed_every_desk(apps, schema_editor):
    """Runs started before sources were per desk and that named no desk trained on every desk's work."""
    apps.get_model("generation", "TrainingRun").objects.filter(desk__isnull=True).update(all_desks=True)


class Migration(migrations.Migration):

    dependencies = [
        ('generation', '0021_evaluation_guards'),
    ]

    operations = [
        migrations.AddField(
            model_name='job',
            name='lost_tokens',
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='dataset',
            name='desk_cases',
            field=models.JSONField(blank=True, default=dict, help_text='Cases per desk, for one made of approved jobs.'),
        ),
        migrations.AddField(
            model_name='trainingrun',
            name='all_desks',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='trainingrun',
            name='desk_pairs',
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.RunPython(runs_without_a_desk_mixed_every_desk, migrations.RunPython.noop),
    ]
