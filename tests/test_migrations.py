"""Data migrations on data that existed before them: the move into desks keeps every user and job."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE, AFTER = ("generation", "0013_evaluation"), ("generation", "0016_job_desk_required")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_existing_users_and_jobs_move_into_the_default_desk_losing_nothing():
    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE])
    old = executor.loader.project_state([BEFORE]).apps
    User, Group = old.get_model("auth", "User"), old.get_model("auth", "Group")
    Job, Template = old.get_model("generation", "Job"), old.get_model("generation", "PromptTemplate")
    editor = User.objects.create(username="old-editor")
    chief = User.objects.create(username="old-chief")
    chief.groups.add(Group.objects.get(name="reviewer"))
    template = Template.objects.get(slug="headline")
    version = template.versions.order_by("number").first()
    jobs = [
        Job.objects.create(owner=owner, kind="headline", template=template, template_version=version, inputs={})
        for owner in (editor, chief, editor)
    ]

    executor = MigrationExecutor(connection)
    executor.migrate([AFTER])
    new = executor.loader.project_state([AFTER]).apps
    Desk, Membership = new.get_model("generation", "Desk"), new.get_model("generation", "Membership")
    desk = Desk.objects.get(is_default=True)
    roles = {m.user.username: m.role for m in Membership.objects.filter(desk=desk)}
    assert roles.items() >= {("old-editor", "editor"), ("old-chief", "reviewer")}
    Job = new.get_model("generation", "Job")
    assert set(Job.objects.filter(desk=desk).values_list("pk", flat=True)) >= {j.pk for j in jobs}
    assert not Job.objects.filter(desk__isnull=True).exists()
    MigrationExecutor(connection).migrate(executor.loader.graph.leaf_nodes())  # later migrations, for the rest
