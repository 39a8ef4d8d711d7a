"""Requests per minute per API key, as a DRF throttle (limits live in services/limits.py; keys override the
site default in the admin). Browser sessions are not throttled: the studio's pages pace themselves."""

from rest_framework import exceptions
from rest_framework.throttling import BaseThrottle

from ..models import ApiKey
from ..services import limits


class ApiKeyRateThrottle(BaseThrottle):
    def allow_request(self, request, view) -> bool:
        if not isinstance(request.auth, ApiKey):
            return True
        try:
            limits.check_request_rate(request.auth)
        except limits.LimitExceeded as exc:
            # Raised here rather than returning False, so the 429 carries our message naming the limit.
            raise exceptions.Throttled(wait=exc.retry_after, detail=exc.message, code=exc.code) from None
        return True
