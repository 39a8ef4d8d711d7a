"""Prometheus metrics for `/metrics`, through prometheus_client.

Jobs are run by worker processes and scraped from the web tier, so per-job figures cannot live in one process's
memory: each worker adds a finished job's time to first token and tokens per second to histogram counters in a
Redis hash, and the web reads them back at scrape time, with job counts from the database and queue depth and live
workers from Redis. Counters restart from zero if Redis loses them, which Prometheus' rate() handles as a reset.
"""

from __future__ import annotations

import logging

import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from . import redis_client

log = logging.getLogger("generation.metrics")

KEY = "aigc:metrics"
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
TPS_BUCKETS = (1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0)
# Editor-burden gauges (labels template, version) cover only versions with jobs created in the last BURDEN_DAYS
# days, over those jobs: the label set stays bounded as versions accumulate, and the figures are current ones.
BURDEN_DAYS = 30


def _bucket(value: float, bounds) -> str:
    return next((str(b) for b in bounds if value <= b), "+Inf")


def record_job(alias: str, first_token_s: float | None, completion_tokens: int, generation_s: float) -> None:
    """Count one succeeded job (worker side). Never raises: metrics must not fail a job."""
    try:
        pipe = redis_client.client().pipeline()
        pipe.hincrby(KEY, f"tokens|{alias}", completion_tokens)
        if first_token_s is not None:
            pipe.hincrby(KEY, f"ttft|{alias}|{_bucket(first_token_s, TTFT_BUCKETS)}", 1)
            pipe.hincrbyfloat(KEY, f"ttft_sum|{alias}", first_token_s)
        if generation_s > 0 and completion_tokens:
            tps = completion_tokens / generation_s
            pipe.hincrby(KEY, f"tps|{alias}|{_bucket(tps, TPS_BUCKETS)}", 1)
            pipe.hincrbyfloat(KEY, f"tps_sum|{alias}", tps)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("could not record metrics: %s", exc)


def _histogram(name: str, doc: str, raw: dict, kind: str, bounds, aliases) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=["alias"])
    for alias in aliases:
        running, buckets = 0, []
        for bound in [*map(str, bounds), "+Inf"]:
            running += int(raw.get(f"{kind}|{alias}|{bound}", 0))
            buckets.append((bound, running))  # cumulative, as the exposition format wants
        family.add_metric([alias], buckets, sum_value=float(raw.get(f"{kind}_sum|{alias}", 0.0)))
    return family


class StudioCollector:
    """Read at each scrape; nothing is kept in the web process. `model_health()` is the selectors' per-alias
    report (queue depth, live workers), handed in by the view: infra reads no selectors. So is
    `version_burden(since=...)`, the editor-burden rows per template version (selectors/burden.py), and
    `usage_gauges()`, the budgets with a limit and each member's tokens per desk today (selectors/budgets.py)."""

    def __init__(self, model_health, version_burden=None, usage_gauges=None) -> None:
        self.model_health = model_health
        self.version_burden = version_burden
        self.usage_gauges = usage_gauges

    def collect(self):
        from django.db.models import Count

        from ..models import Job, JobStatus
        from . import registry

        aliases = registry.aliases()
        jobs = GaugeMetricFamily("aigc_jobs", "Jobs by status and model alias", labels=["status", "alias"])
        counts = {
            (s, a): n
            for s, a, n in Job.objects.values("status", "model_alias")
            .annotate(n=Count("pk"))
            .values_list("status", "model_alias", "n")
        }
        for status in JobStatus.values:
            for alias in sorted(set(aliases) | {a for _, a in counts}):
                jobs.add_metric([status, alias], counts.get((status, alias), 0))
        yield jobs

        health = self.model_health()
        depth = GaugeMetricFamily(
            "aigc_queue_depth", "Messages waiting in each model's queue", labels=["alias", "queue"]
        )
        live = GaugeMetricFamily(
            "aigc_live_workers", "Workers seen within AIGC_STALE_AFTER_S", labels=["alias", "queue"]
        )
        for alias, row in health.items():
            if row["queue_depth"] is not None:
                depth.add_metric([alias, row["queue"]], row["queue_depth"])
            if row["live_workers"] is not None:
                live.add_metric([alias, row["queue"]], row["live_workers"])
        yield depth
        yield live
        if self.version_burden is not None:
            yield from _burden_families(self.version_burden)
        if self.usage_gauges is not None:
            yield from _usage_families(self.usage_gauges())

        try:
            raw = {k.decode(): v.decode() for k, v in redis_client.client().hgetall(KEY).items()}
        except redis.RedisError:
            return
        tokens = CounterMetricFamily("aigc_generated_tokens", "Completion tokens of succeeded jobs", labels=["alias"])
        for alias in aliases:
            tokens.add_metric([alias], int(raw.get(f"tokens|{alias}", 0)))
        yield tokens
        yield _histogram(
            "aigc_time_to_first_token_seconds",
            "From a job's start on a worker to its first token",
            raw,
            "ttft",
            TTFT_BUCKETS,
            aliases,
        )
        yield _histogram(
            "aigc_tokens_per_second",
            "Completion tokens per second of generation, per job",
            raw,
            "tps",
            TPS_BUCKETS,
            aliases,
        )


# name, help, the row's group and figure: what selectors/burden.py defines, one gauge each.
BURDEN_GAUGES = (
    ("aigc_template_edited_share", "Share of approved outputs edited before approval", "edits", "edited_share"),
    ("aigc_template_change_ratio", "Mean TER of final against model text, edited outputs", "edits", "change_ratio"),
    ("aigc_template_rejection_rate", "Share of review decisions sending back", "review", "rejection_rate"),
    ("aigc_template_rating_good_share", "Share of ratings that are good", "ratings", "good_share"),
)


def _burden_families(version_burden):
    """Gauges per template and version over the last BURDEN_DAYS days; a figure with nothing to rest on is left
    out rather than written as 0. aigc_template_burden_jobs says how many jobs each figure rests on."""
    from datetime import timedelta

    from django.utils import timezone

    rows = version_burden(since=timezone.now() - timedelta(days=BURDEN_DAYS))
    labels = ["template", "version"]
    for name, doc, group, figure in BURDEN_GAUGES:
        family = GaugeMetricFamily(name, f"{doc} (jobs of the last {BURDEN_DAYS} days)", labels=labels)
        for row in rows:
            if row[group][figure] is not None:
                family.add_metric([row["template"], str(row["version"])], row[group][figure])
        yield family
    approval = GaugeMetricFamily(
        "aigc_template_approval_seconds",
        f"From a job's end to its approval, median (0.5) and p90 (jobs of the last {BURDEN_DAYS} days)",
        labels=[*labels, "quantile"],
    )
    jobs = GaugeMetricFamily(
        "aigc_template_burden_jobs",
        f"Jobs each editor-burden figure rests on (jobs of the last {BURDEN_DAYS} days)",
        labels=[*labels, "figure"],
    )
    for row in rows:
        version = [row["template"], str(row["version"])]
        for quantile, key in (("0.5", "median_s"), ("0.9", "p90_s")):
            if row["approval"][key] is not None:
                approval.add_metric([*version, quantile], row["approval"][key])
        for group in ("edits", "approval", "review", "ratings"):
            jobs.add_metric([*version, group], row[group]["jobs"])
    yield approval
    yield jobs


def _usage_families(usage: dict):
    used = GaugeMetricFamily(
        "aigc_budget_used_tokens", 'Tokens used or held in a budget\'s period ("desk:sport daily")', labels=["budget"]
    )
    limit = GaugeMetricFamily("aigc_budget_limit_tokens", "A budget's limit in its period", labels=["budget"])
    for s in usage["budgets"]:
        used.add_metric([s.name], s.used)
        limit.add_metric([s.name], s.limit)
    members = GaugeMetricFamily(
        "aigc_desk_member_tokens_today",
        "Tokens used or held today (UTC) by each member on each desk",
        labels=["desk", "member"],
    )
    for desk, member, tokens in usage["members"]:
        members.add_metric([desk, member], tokens)
    yield used
    yield limit
    yield members


def render(model_health, version_burden=None, usage_gauges=None) -> bytes:
    """The Prometheus text exposition of the studio's metrics."""
    collectors = CollectorRegistry(auto_describe=False)
    collectors.register(StudioCollector(model_health, version_burden, usage_gauges))
    return generate_latest(collectors)
