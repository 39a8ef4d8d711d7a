from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('generation', '0022_training_bounds'),
    ]

    operations = []
