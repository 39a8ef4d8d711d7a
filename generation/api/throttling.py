"""Requests per minute per API key and per user, as a DRF throttle (limits live in services/limits.py; keys
override the site default in the admin). Browser sessions count against their user's minute too."""

from rest_framework import exceptions
from rest_framework.throttling import BaseThrottle

from ..models import ApiKey
from ..services import limits


class ApiKeyRateThrottle(BaseThrottle):
    def allow_request(self, request, view) -> bool:
        api_key = request.auth if isinstance(request.auth, ApiKey) else None
        user = request.user if request.user.is_authenticated else None
        if api_key is None and user is None:
            return True  # refused as unauthenticated anyway
        try:
            limits.check_request_rate(api_key, user=user)
        except limits.LimitExceeded as exc:
            # Raised here rather than returning False, so the 429 carries our message naming the limit.
            raise exceptions.Throttled(wait=exc.retry_after, detail=exc.message, code=exc.code) from None
        return True
