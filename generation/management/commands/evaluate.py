"""CI for prompts: run an experiment of a template version against a baseline over a dataset, print the table,
write JSON, and exit non-zero when the promotion gate would refuse the version.

    python manage.py evaluate <slug> --version N [--dataset D] [--baseline production] [--json PATH]
        [--model ALIAS] [--in-process] [--fresh-baseline] [--timeout S]

By default the cases go through the normal queue as evaluation jobs, run by the workers, and this command waits
for them (progress on stderr). --in-process runs them here on this process's engine instead, with no worker
needed (a CI job with only the database). Exit status: 0 the gate passes, 1 it refuses (the reasons are
printed), 2 the experiment could not run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from generation import selectors, services
from generation.models import RunStatus
from generation.services.limits import LimitExceeded


class Command(BaseCommand):
    help = "Run an experiment of a template version against a baseline; exit 1 when the gate would refuse it."

    def create_parser(self, prog_name, subcommand, **kwargs):
        # --version is the candidate's number here, as template versions are everywhere else: it replaces
        # Django's own --version (which prints Django's), rather than making CI scripts spell it otherwise.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--version", type=int, help="The candidate version's number.")
        parser.add_argument("--label", help="Or the label pointing at the candidate.")
        parser.add_argument("--dataset", help="A dataset name (its latest version); default: the gate dataset.")
        parser.add_argument("--baseline", default="production", help="A label or vN (default: production).")
        parser.add_argument("--model", dest="model_alias", help="A model alias (default: the version's).")
        parser.add_argument("--json", dest="json_path", help="Also write the experiment to this file.")
        parser.add_argument("--in-process", action="store_true", help="Run the cases here, not on the workers.")
        parser.add_argument("--fresh-baseline", action="store_true", help="Run the baseline again, not reused.")
        parser.add_argument("--timeout", type=float, default=3600, help="Seconds to wait for the workers.")
        parser.add_argument("--user", default="evaluation", help="Who runs it (created when missing).")

    def handle(self, slug, version, label, dataset, baseline, model_alias, json_path, **options):
        template = selectors.template_by_slug(slug)
        if template is None:
            raise CommandError(f"No template {slug!r}.", returncode=2)
        if version is None and not label:
            raise CommandError("Give --version N or --label NAME.", returncode=2)
        user, _ = get_user_model().objects.get_or_create(username=options["user"])
        try:
            experiment = services.experiment_start(
                template=template,
                user=user,
                version=version,
                label=label,
                dataset=dataset,
                baseline=baseline,
                model_alias=model_alias,
                reuse_baseline=not options["fresh_baseline"],
            )
        except ValidationError as exc:
            raise CommandError(services.error_line(exc), returncode=2) from None
        except LimitExceeded as exc:  # the evaluation pool is spent: nothing was started
            raise CommandError(exc.message, returncode=2) from None
        if options["in_process"]:
            self._run_here(experiment)
        else:
            self._wait(experiment, options["timeout"])
        experiment = selectors.experiment_detail(experiment.pk)
        if experiment.finished_at is None:
            raise CommandError(f"Experiment {experiment.pk} did not finish ({experiment.status}).", returncode=2)
        report = selectors.experiment_report(experiment)
        self._print(report)
        if json_path:
            Path(json_path).write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str))
        if not report["gate"]["passed"]:
            raise CommandError("The gate would refuse this version: " + "; ".join(report["gate"]["failures"]))

    def _run_here(self, experiment) -> None:
        """Each pending case's job runs on this process's engine, then its run advances, as a worker would."""
        from generation.workers.engines import get_engine

        def progress(run, job_id):
            self.stderr.write(f"{self._progress(run)}: running job {job_id}")

        services.experiment_run_here(experiment, engine_for=get_engine, progress=progress)

    def _wait(self, experiment, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            experiment = selectors.experiment_detail(experiment.pk)
            if experiment.finished_at is not None or experiment.status == RunStatus.CANCELLED:
                return
            progress = f"{self._progress(experiment.candidate)}; {self._progress(experiment.baseline)}"
            if progress != last:
                self.stderr.write(progress)
                last = progress
            if time.monotonic() > deadline:
                raise CommandError(f"Gave up waiting after {timeout:g} s: {progress}.", returncode=2)
            time.sleep(1)

    @staticmethod
    def _progress(run) -> str:
        done, total = selectors.run_progress(run)
        waits = f"; waiting: {run.waiting}" if run.waiting else ""
        return f"v{run.version.number} ({run.status}): {done}/{total} cases measured{waits}"

    def _print(self, report: dict) -> None:
        self.stdout.write(
            f"{report['template']}: v{report['candidate']['version']} against {report['baseline_label']} "
            f"(v{report['baseline']['version']}) on {report['dataset']}, model {report['model_alias']}"
        )
        self.stdout.write(f"{'metric':<38}{'baseline':>10}{'candidate':>11}{'change':>9}")
        for row in report["comparison"]["metrics"]:
            self.stdout.write(
                f"{row['label'] + (' (worse)' if row['regressed'] else ''):<38}{_fmt(row, 'baseline'):>10}"
                f"{_fmt(row, 'candidate'):>11}{_fmt(row, 'delta', sign=True):>9}"
            )
        comparison = report["comparison"]
        self.stdout.write(
            f"cases: {len(comparison['cases'])}, with a regression: {comparison['regressed_cases']}, "
            f"identical outputs: {comparison['identical_cases']}"
        )
        gate = report["gate"]
        self.stdout.write("gate: passes" if gate["passed"] else "gate: refuses\n  " + "\n  ".join(gate["failures"]))


def _fmt(row: dict, key: str, sign: bool = False) -> str:
    value = row[key]
    if value is None:
        return "-"
    if row["rate"]:
        return f"{value * 100:+.0f} pts" if sign else f"{value:.0%}"  # a change of a rate, in percentage points
    return f"{value:+.1f}" if sign else f"{value:.1f}"
