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
    report (queue depth, live workers), handed in by the view: infra reads no selectors."""

    def __init__(self, model_health) -> None:
        self.model_health = model_health

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


def render(model_health) -> bytes:
    """The Prometheus text exposition of the studio's metrics."""
    collectors = CollectorRegistry(auto_describe=False)
    collectors.register(StudioCollector(model_health))
    return generate_latest(collectors)
