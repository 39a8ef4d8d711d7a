"""Token budgets of the organisation, its desks and each member within a desk, per UTC day and month, and the
organisation's pool for evaluation jobs: which budgets a job is held against (BUDGETS, the one table of them)
and how each stands. services/budgets.py checks them when a job is created; a job holds the most it can use until
it ends, then what it used (CHARGED)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Case, Count, F, Q, Sum, When
from django.db.models.functions import Coalesce, TruncDate

from ..models import FINAL_STATUSES, Desk, Job, JobPurpose, Membership
from .desks import desks_of

# What a job counts against a limit or budget: what it used once settled (prompt plus completion tokens, also
# for a cancelled or failed job), and until then what it holds: the most a queued or running job may use, and
# the same for a job that ended without its usage known (its worker died). A job cancelled in the queue: 0.
# Beside it, always, what earlier attempts used before their worker died (lost_tokens): a retry is not free.
CHARGED = Case(
    When(prompt_tokens__isnull=False, then=F("prompt_tokens") + Coalesce(F("completion_tokens"), 0)),
    When(~Q(status__in=FINAL_STATUSES), then=F("reserved_tokens")),
    When(started_at__isnull=False, then=F("reserved_tokens")),
    default=0,
) + F("lost_tokens")

NOTICE_SHARE = 0.8  # from this share of a budget used, the studio and the API say so
# The largest budget a field holds (PositiveIntegerField: a PostgreSQL integer); forms and services refuse more.
MAX_BUDGET = 2_147_483_647


def _day(now: datetime) -> tuple[datetime, datetime]:
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + timedelta(days=1)


def _month(now: datetime) -> tuple[datetime, datetime]:
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


PERIODS: dict[str, Callable[[datetime], tuple[datetime, datetime]]] = {"daily": _day, "monthly": _month}


@dataclass(frozen=True)
class Rule:
    """One kind of budget: whose (its name in refusals), for which jobs, and where its limit is set."""

    scope: str  # organisation | desk | member | evaluation
    period: str  # daily | monthly
    purpose: str  # the jobs it holds: users' work, or evaluation jobs
    limit: Callable[[Desk, Membership | None], int | None]
    jobs: Callable[[Desk, object], Q]
    name: Callable[[Desk, object], str]


def _member_limit(period: str):
    """A member's share: the membership's own, else the desk's member share; never above staff's cap on the desk
    (a share set before staff lowered the cap is held to it)."""

    def limit(desk: Desk, membership: Membership | None) -> int | None:
        own = getattr(membership, f"tokens_per_{period}", None) if membership else None
        share = own if own is not None else getattr(desk, f"member_tokens_per_{period}")
        cap = getattr(desk, f"cap_tokens_per_{period}")
        return share if share is None or cap is None else min(share, cap)

    return limit


def _org(desk: Desk, user) -> Q:
    return Q(desk__organisation_id=desk.organisation_id)


def _desk(desk: Desk, user) -> Q:
    return Q(desk=desk)


def _member(desk: Desk, user) -> Q:
    return Q(desk=desk, owner=user)


def _evaluation_pool(desk: Desk) -> int | None:
    """The organisation's own evaluation pool, else the deployment's default (AIGC_EVALUATION_TOKENS_PER_DAY; 0:
    none): experiments are bounded even where nobody set a pool."""
    own = desk.organisation.evaluation_tokens_per_day
    return own if own is not None else settings.AIGC["EVALUATION_TOKENS_PER_DAY"] or None


def _desk_rules(fields: str, bucket: str) -> tuple[Rule, ...]:
    """The desk's daily and monthly rules read from `<fields>_day` and `<fields>_month`, counted as `<bucket>:<desk>`."""
    return tuple(
        Rule(
            "desk",
            period,
            JobPurpose.USER,
            lambda desk, m, field=f"{fields}_{key}": getattr(desk, field),
            _desk,
            lambda desk, user: f"{bucket}:{desk.slug}",
        )
        for period, key in (("daily", "day"), ("monthly", "month"))
    )


BUDGETS: tuple[Rule, ...] = (
    *(
        Rule(
            "organisation",
            period,
            JobPurpose.USER,
            lambda desk, m, field=field: getattr(desk.organisation, field),
            _org,
            lambda desk, user: f"organisation:{desk.organisation.slug}",
        )
        for period, field in (("daily", "tokens_per_day"), ("monthly", "tokens_per_month"))
    ),
    *_desk_rules("tokens_per", "desk"),
    # Staff's cap on the desk: held apart from the desk's own budgets, which its admins set (within it).
    *_desk_rules("cap_tokens_per", "desk-cap"),
    *(
        Rule(
            "member",
            period,
            JobPurpose.USER,
            _member_limit(key),
            _member,
            lambda desk, user: f"member:{user.get_username()}@{desk.slug}",
        )
        for period, key in (("daily", "day"), ("monthly", "month"))
    ),
    Rule(
        "evaluation",
        "daily",
        JobPurpose.EVALUATION,
        lambda desk, m: _evaluation_pool(desk),
        _org,
        lambda desk, user: f"evaluation:{desk.organisation.slug}",
    ),
)


@dataclass(frozen=True)
class Standing:
    """A budget as it stands: its name as refusals give it ("desk:sport daily"), its limit, what is used (settled
    jobs) or held (jobs in flight), and when it resets."""

    name: str
    limit: int
    used: int
    resets: datetime

    @property
    def share(self) -> float:
        return self.used / self.limit if self.limit else 1.0

    def as_json(self) -> dict:
        """As the API gives it (BudgetSerializer)."""
        return {
            "name": self.name,
            "limit": self.limit,
            "used": self.used,
            "share": round(self.share, 4),
            "resets": self.resets,
        }


def standings(desk: Desk, user, purpose: str = JobPurpose.USER, now: datetime | None = None) -> list[Standing]:
    """Every budget a job of `user` on `desk` is held against, with what it has used in its period (without a
    user: the organisation's and the desk's)."""
    now = now or datetime.now(UTC)
    membership = Membership.objects.filter(desk=desk, user=user).first() if user is not None else None
    out = []
    for rule in BUDGETS:
        if rule.purpose != purpose or (user is None and rule.scope == "member"):
            continue
        limit = rule.limit(desk, membership)
        if limit is None:
            continue
        since, resets = PERIODS[rule.period](now)
        jobs = Job.objects.filter(rule.jobs(desk, user), purpose=purpose, created_at__gte=since)
        used = jobs.aggregate(n=Sum(CHARGED, default=0))["n"]
        out.append(Standing(f"{rule.name(desk, user)} {rule.period}", limit, used, resets))
    return out


def budgets_of(user) -> list[dict]:
    """Every budget that holds the user's jobs, over all their desks (each organisation and desk budget once)."""
    seen: dict[str, dict] = {}
    for desk in desks_of(user):
        for s in standings(desk, user):
            seen.setdefault(s.name, s.as_json())
    return list(seen.values())


def desk_usage(desk: Desk, days: int = 30, now: datetime | None = None) -> list[dict]:
    """A desk's tokens by UTC day, member and template over the last `days` days, newest first: jobs in flight
    count what they hold, as budgets count them."""
    now = now or datetime.now(UTC)
    since = _day(now)[0] - timedelta(days=days - 1)
    rows = (
        Job.objects.filter(desk=desk, purpose=JobPurpose.USER, created_at__gte=since)
        .annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("day", "owner__username", "template__slug")
        .annotate(jobs=Count("id"), tokens=Sum(CHARGED, default=0))
        .order_by("-day", "owner__username", "template__slug")
    )
    return [
        {
            "day": r["day"],
            "member": r["owner__username"],
            "template": r["template__slug"],
            "jobs": r["jobs"],
            "tokens": r["tokens"],
        }
        for r in rows
    ]


def usage_gauges(now: datetime | None = None) -> dict:
    """For Prometheus: each desk's and organisation's budgets with a limit (used and limit), and each member's
    tokens on each desk today."""
    now = now or datetime.now(UTC)
    found: dict[str, Standing] = {}
    for desk in Desk.objects.select_related("organisation"):
        for s in standings(desk, None, now=now):
            found.setdefault(s.name, s)
    members = (
        Job.objects.filter(purpose=JobPurpose.USER, created_at__gte=_day(now)[0])
        .values_list("desk__slug", "owner__username")
        .annotate(tokens=Sum(CHARGED, default=0))
        .order_by("desk__slug", "owner__username")
    )
    return {"budgets": list(found.values()), "members": list(members)}


def budget_notices(found: list[Standing]) -> list[str]:
    """What to tell the user of budgets at NOTICE_SHARE or more."""
    return [
        f"Token budget {s.name} is {min(s.share, 1.0):.0%} used ({s.used} of {s.limit}); it resets at "
        f"{s.resets:%Y-%m-%d %H:%M} UTC."
        for s in found
        if s.share >= NOTICE_SHARE
    ]
