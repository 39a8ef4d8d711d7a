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


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_jobs_approved_before_choices_keep_their_first_output_as_the_chosen_one():
    """Approval used to mean the first output: that one becomes chosen, so nothing approved loses its text."""
    before, after = ("generation", "0023_security_misc"), ("generation", "0024_chosen_candidates")
    executor = MigrationExecutor(connection)
    executor.migrate([before])
    old = executor.loader.project_state([before]).apps
    User, Template = old.get_model("auth", "User"), old.get_model("generation", "PromptTemplate")
    Job, JobOutput = old.get_model("generation", "Job"), old.get_model("generation", "JobOutput")
    ReviewEvent = old.get_model("generation", "ReviewEvent")
    Desk = old.get_model("generation", "Desk")
    owner = User.objects.create(username="old-owner")
    template = Template.objects.get(slug="headline")
    version = template.versions.order_by("number").first()
    desk = Desk.objects.get(is_default=True)
    jobs = {}
    for state in ("approved", "in_review"):
        job = Job.objects.create(
            owner=owner, kind="headline", template=template, template_version=version, desk=desk, review_state=state
        )
        for i in (1, 0, 2):
            JobOutput.objects.create(job=job, index=i, text=f"{state} {i}")
        jobs[state] = job
    event = ReviewEvent.objects.create(job=jobs["approved"], from_state="in_review", to_state="approved")

    executor = MigrationExecutor(connection)
    executor.migrate([after])
    new = executor.loader.project_state([after]).apps
    Job, JobOutput = new.get_model("generation", "Job"), new.get_model("generation", "JobOutput")
    chosen = set(JobOutput.objects.filter(chosen=True).values_list("job_id", "index"))
    assert chosen == {(jobs["approved"].pk, 0)}  # a job still in review waits for its reviewer's choice
    assert Job.objects.get(pk=jobs["approved"].pk).approved_at == event.created_at
    assert Job.objects.get(pk=jobs["in_review"].pk).approved_at is None
    MigrationExecutor(connection).migrate(executor.loader.graph.leaf_nodes())
