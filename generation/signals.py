"""New users get the default role, editor, and join the default desk (when one is marked), so a fresh account
can write at once; desk admins then move them to their desks."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models.signals import post_save
from django.dispatch import receiver

EDITOR, REVIEWER = "editor", "reviewer"


@receiver(post_save, sender=get_user_model())
def give_new_users_the_editor_role(sender, instance, created, raw=False, **kwargs):
    if created and not raw:
        from .models import Desk, Membership

        group, _ = Group.objects.get_or_create(name=EDITOR)
        instance.groups.add(group)
        desk = Desk.objects.filter(is_default=True).first()
        if desk is not None:
            Membership.objects.get_or_create(desk=desk, user=instance)
