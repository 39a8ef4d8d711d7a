"""Existing users and jobs move into one default desk, losing nothing: every user becomes a member (reviewers
as reviewers), every job is filed under it. Budgets start empty: nothing that ran before is refused after."""

from django.conf import settings
from django.db import migrations


def into_default_desk(apps, schema_editor):
    Organisation = apps.get_model("generation", "Organisation")
    Desk = apps.get_model("generation", "Desk")
    Membership = apps.get_model("generation", "Membership")
    Job = apps.get_model("generation", "Job")
    User = apps.get_model(settings.AUTH_USER_MODEL)
    organisation, _ = Organisation.objects.get_or_create(slug="newsroom", defaults={"name": "Newsroom"})
    desk, _ = Desk.objects.get_or_create(
        slug="newsroom", defaults={"name": "Newsroom", "organisation": organisation, "is_default": True}
    )
    for user in User.objects.all():
        reviewer = user.groups.filter(name="reviewer").exists()
        Membership.objects.get_or_create(desk=desk, user=user, defaults={"role": "reviewer" if reviewer else "editor"})
    Job.objects.filter(desk__isnull=True).update(desk=desk)


class Migration(migrations.Migration):
    dependencies = [("generation", "0014_desks"), migrations.swappable_dependency(settings.AUTH_USER_MODEL)]
    operations = [migrations.RunPython(into_default_desk, migrations.RunPython.noop)]
