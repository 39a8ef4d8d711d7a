"""Roles as groups: editor (every new user) and reviewer (may approve). Admins are staff users."""

from django.db import migrations


def create_roles(apps, schema_editor):
    # Permissions are normally created after all migrations; the reviewer group needs its permission now.
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    job_type, _ = ContentType.objects.get_or_create(app_label="generation", model="job")
    review, _ = Permission.objects.get_or_create(
        codename="review_job", content_type=job_type,
        defaults={"name": "Can review jobs: see those in review, approve or send back"},
    )  # fmt: skip
    Group.objects.get_or_create(name="editor")
    reviewer, _ = Group.objects.get_or_create(name="reviewer")
    reviewer.permissions.add(review)


class Migration(migrations.Migration):
    dependencies = [
        ("generation", "0003_review_and_feedback"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
