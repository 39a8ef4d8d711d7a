"""Token budgets held when a job is created: every path that spends tokens (jobs, batches, `/v1`, reruns, test
runs, evaluation jobs against their own pool) goes through job_create, which calls check() under lock(), in the
transaction that inserts the job, reserving the most the job can use (prompt and every re-sampling round)."""

from __future__ import annotations

from datetime import UTC, datetime

from ..models import Desk, JobPurpose, Organisation
from ..selectors.budgets import Standing, standings
from .limits import LimitExceeded


def lock(desk: Desk) -> None:
    """Inside the transaction that inserts a job: serialises the organisation's creations, so two requests can
    never both pass a check on the same last tokens (PostgreSQL: a row lock; SQLite takes its write lock at
    BEGIN, see settings)."""
    Organisation.objects.select_for_update().filter(pk=desk.organisation_id).exists()


def check(desk: Desk, user, most: int, purpose: str = JobPurpose.USER) -> list[Standing]:
    """Refuses a job that could take any of its budgets past its limit (naming the budget); call it after lock(),
    in the transaction that inserts the job. Returns the standings, this job's reservation included."""
    now = datetime.now(UTC)
    after = []
    for standing in standings(desk, user, purpose, now):
        if standing.used + most > standing.limit:
            raise LimitExceeded(
                f"Token budget {standing.name} reached: {standing.used} of {standing.limit} tokens used, and this "
                f"job may use up to {most}. It resets at {standing.resets:%Y-%m-%d %H:%M} UTC.",
                retry_after=(standing.resets - now).total_seconds(),
                code="budget_exceeded",
                budget=standing.name,
            )
        after.append(Standing(standing.name, standing.limit, standing.used + most, standing.resets))
    return after
