"""The verbs that change state. Views, API views, tasks and commands call these and nothing lower."""

from .api_keys import api_key_authenticate, api_key_create, api_key_revoke
from .jobs import job_create, job_run

__all__ = ["api_key_authenticate", "api_key_create", "api_key_revoke", "job_create", "job_run"]
