import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('generation', '0020_desk_limits'),
    ]

    operations = [
        migrations.AddField(
            model_name='evaluationrun',
            name='judge_version',
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name='+',
                to='generation.templateversion',
            ),
        ),
        migrations.AddField(
            model_name='evaluationrun',
            name='waiting',
            field=models.CharField(blank=True, help_text='Why its next case waits (a spent pool).', max_length=500),
        ),
        migrations.CreateModel(
            name='GateChange',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('from_dataset', models.CharField(blank=True, max_length=64)),
                ('from_gate', models.JSONField(blank=True, default=dict)),
                ('to_dataset', models.CharField(blank=True, max_length=64)),
                ('to_gate', models.JSONField(blank=True, default=dict)),
                ('changed_at', models.DateTimeField(auto_now_add=True)),
                (
                    'via',
                    models.CharField(blank=True, help_text='Where it was changed: admin, import.', max_length=16),
                ),
                (
                    'changed_by',
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name='+',
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    'template',
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name='gate_changes',
                        to='generation.prompttemplate',
                    ),
                ),
            ],
            options={
                'ordering': ['-changed_at', '-pk'],
            },
        ),
    ]
