"""How often served headline and summary candidates state something their story does not, with the grounding
re-sampling off (findings only reported) and on (the default), on our own sample articles.

    python manage.py grounding_report [--seed 7] [--n 5] [--json PATH]

Each article runs through the path a job takes (job_create, then job_run on this process's engine) twice, with
the same seed: once on a copy of the default template whose checks say {"grounding": false}, once on the
default template. All inside a transaction that is rolled back, so nothing is kept. Prints per kind the share of
served candidates with a grounding finding, the candidates re-sampled, and the job time each way.
"""

import json
import time
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from generation import selectors, services
from generation.models import Job, JobStatus

from .template_contracts import LONG_TEXT, NEWS

ARTICLES = [
    *[n for n in NEWS if n.isascii()],
    LONG_TEXT,
    "Shares in the carmaker fell 8% on Wednesday after it cut its sales forecast for the year to 1.2 million "
    "vehicles, blaming weak demand in China. The company said it would cut 2,000 jobs at its plant in Ohio by March.",
    "The city of Lyon will open its new tram line on 3 June, two months late. The line, which cost 310 million "
    "euros, links the main station to the airport in 25 minutes. Mayor Claire Dubois called it a turning point.",
    "A magnitude 6.1 earthquake struck off the coast of northern Chile early on Sunday, the national seismology "
    "centre said. No damage or injuries were reported, and the navy said there was no risk of a tsunami.",
]


class Command(BaseCommand):
    help = "Share of served headline and summary candidates with a grounding finding, re-sampling off and on."

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--n", type=int, default=5, help="Headline candidates per job.")
        parser.add_argument("--json", dest="json_path", help="Also write the figures to this file.")

    def handle(self, seed, n, json_path, **options):
        from generation.workers.engines import get_engine

        engine = get_engine()
        report = {"model": engine.model_name, "articles": len(ARTICLES), "seed": seed, "kinds": {}}
        with transaction.atomic():
            user, _ = get_user_model().objects.get_or_create(username="grounding-report")
            for kind, params in (("headline", {"n": n}), ("summary", {})):
                template = selectors.template_default_for_kind(kind)
                version = services.resolve_version(template)  # production
                content = {**version.content(), "checks": {**version.checks, "grounding": False}}
                off, _ = services.template_version_create(template=template, user=user, note="report", **content)
                rows = {}
                for label, number in (("off", off.number), ("on", None)):
                    rows[label] = self._measure(engine, user, template, number, params, seed, kind)
                report["kinds"][kind] = rows
            transaction.set_rollback(True)
        self._print(report)
        if json_path:
            Path(json_path).write_text(json.dumps(report, indent=2, ensure_ascii=False))

    def _measure(self, engine, user, template, number, params, seed, kind) -> dict:
        served = flagged = jobs = 0
        refused: dict[str, int] = {}
        seconds = 0.0
        for i, article in enumerate(ARTICLES, 1):
            self.stderr.write(f"{kind} {'off' if number else 'on'}: article {i}/{len(ARTICLES)}")
            job = services.job_create(
                user=user,
                template=template.slug,
                version=number,
                inputs={"text": article},
                params={**params, "seed": seed},
            )
            started = time.monotonic()
            services.job_run(job.pk, engine=engine)
            seconds += time.monotonic() - started
            job = Job.objects.get(pk=job.pk)
            if job.status != JobStatus.SUCCEEDED:
                self.stderr.write(f"  job {job.status}: {job.error}")
                continue
            jobs += 1
            for output in job.outputs.all():
                served += 1
                flagged += any(f["check"] == "grounding" for f in output.checks)
            for why, count in job.rejections.items():
                refused[why] = refused.get(why, 0) + count
        return {
            "jobs": jobs,
            "served": served,
            "with_grounding_finding": flagged,
            "share": round(flagged / served, 3) if served else None,
            "resampled": refused,
            "seconds_per_job": round(seconds / max(jobs, 1), 2),
        }

    def _print(self, report: dict) -> None:
        self.stdout.write(f"model: {report['model']}, {report['articles']} articles, seed {report['seed']}")
        self.stdout.write(
            f"{'kind':<10}{'grounding':<11}{'served':>7}{'flagged':>9}{'share':>7}{'s/job':>7}  re-sampled"
        )
        for kind, rows in report["kinds"].items():
            for label, row in rows.items():
                share = f"{row['share']:.0%}" if row["share"] is not None else "-"
                again = ", ".join(f"{k} {v}" for k, v in row["resampled"].items()) or "-"
                self.stdout.write(
                    f"{kind:<10}{label:<11}{row['served']:>7}{row['with_grounding_finding']:>9}{share:>7}"
                    f"{row['seconds_per_job']:>7.1f}  {again}"
                )
