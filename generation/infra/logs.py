"""Structured logs: with LOG_FORMAT=json each line is one JSON object (python-json-logger), and every line
logged while a worker thread runs a job carries that job's id, whichever module logs it (engine, streams,
database retries), so one job's story is a single filter away in any log store."""

from __future__ import annotations

import contextvars
import logging

# Set by job_run for the thread running the job. Each threads-pool worker thread has its own context.
current_job: contextvars.ContextVar[str | None] = contextvars.ContextVar("current_job", default=None)


class JobIdFilter(logging.Filter):
    """Adds `job_id` to every record (None outside a job), and `job_tag` for plain text (empty outside a job)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.job_id = current_job.get()
        record.job_tag = f" [job {record.job_id}]" if record.job_id else ""
        return True
