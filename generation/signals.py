"""New users get the default role, editor."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models.signals import post_save
from django.dispatch import receiver

EDITOR, REVIEWER = "editor", "reviewer"


@receiver(post_save, sender=get_user_model())
def give_new_users_the_editor_role(sender, instance, created, raw=False, **kwargs):
    if created and not raw:
        group, _ = Group.objects.get_or_create(name=EDITOR)
        instance.groups.add(group)
