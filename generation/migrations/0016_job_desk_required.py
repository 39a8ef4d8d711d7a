"""Every job has a desk (0015 filed the existing ones); a migration of its own, as PostgreSQL refuses to alter a
table in the transaction that just updated its rows."""

import django.db.models.deletion
from django.db import migrations, models

import generation.models


class Migration(migrations.Migration):
    dependencies = [("generation", "0015_desks_data")]
    operations = [
        migrations.AlterField(
            model_name="job",
            name="desk",
            field=models.ForeignKey(
                default=generation.models.default_desk_id,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="jobs",
                to="generation.desk",
            ),
        ),
    ]
