"""One JSON shape for every API error, the same shape OpenAI clients already parse:

    {"error": {"message": "...", "type": "invalid_request_error", "code": "invalid", "param": "inputs.text",
               "fields": {"inputs.text": ["This field is required."]}}}

`param` names the first field at fault, `fields` all of them. `envelope()` builds every error body the API
sends (DRF views, the event stream, `/v1`), so the shape is written once.
"""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import JsonResponse
from rest_framework import exceptions, status
from rest_framework.views import exception_handler as drf_exception_handler

from ..services.errors import error_line
from ..services.limits import LimitExceeded

_TYPES = {
    status.HTTP_400_BAD_REQUEST: "invalid_request_error",
    status.HTTP_401_UNAUTHORIZED: "authentication_error",
    status.HTTP_403_FORBIDDEN: "permission_error",
    status.HTTP_404_NOT_FOUND: "not_found_error",
    status.HTTP_405_METHOD_NOT_ALLOWED: "invalid_request_error",
    status.HTTP_409_CONFLICT: "conflict_error",
    status.HTTP_413_REQUEST_ENTITY_TOO_LARGE: "invalid_request_error",
    status.HTTP_429_TOO_MANY_REQUESTS: "rate_limit_error",
}


def error_type(status_code: int) -> str:
    """The envelope's `type` for an HTTP status."""
    return _TYPES.get(status_code, "api_error")


def envelope(
    message: str,
    *,
    type: str,
    code: str | None,
    param: str | None = None,
    fields: dict[str, list[str]] | None = None,
    budget: str = "",
) -> dict:
    """`{"error": {...}}`; `fields` defaults to the message under `param` (none without a param). A refusal by a
    token budget also names it under `budget` ("desk:sport daily"), for tools to show or act on."""
    if fields is None:
        fields = {param: [message]} if param else {}
    body = {"message": message, "type": type, "code": code, "param": param, "fields": fields}
    return {"error": {**body, **({"budget": budget} if budget else {})}}


def error_json(
    message: str,
    status_code: int,
    code: str | None,
    *,
    type: str | None = None,
    param: str | None = None,
    fields: dict[str, list[str]] | None = None,
    headers: dict[str, str] | None = None,
    budget: str = "",
) -> JsonResponse:
    """An error answered by a plain Django view (the event stream, `/v1`); `type` defaults from the status."""
    body = envelope(message, type=type or error_type(status_code), code=code, param=param, fields=fields, budget=budget)
    return JsonResponse(body, status=status_code, headers=headers or {})


def flatten(detail, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail -> {"dotted.field": [messages]}."""
    if isinstance(detail, dict):
        out: dict[str, list[str]] = {}
        for key, value in detail.items():
            name = prefix if key == "non_field_errors" and prefix else (f"{prefix}.{key}" if prefix else str(key))
            for field, messages in flatten(value, name).items():
                out.setdefault(field, []).extend(messages)
        return out
    if isinstance(detail, list):
        if detail and all(not isinstance(d, (dict, list)) for d in detail):
            return {prefix or "non_field_errors": [str(d) for d in detail]}
        out = {}
        for i, item in enumerate(detail):
            for field, messages in flatten(item, f"{prefix}.{i}" if prefix else str(i)).items():
                out.setdefault(field, []).extend(messages)
        return out
    return {prefix or "non_field_errors": [str(detail)]}


class PayloadTooLarge(exceptions.APIException):
    status_code = 413
    default_code = "payload_too_large"

    def __init__(self, detail=None, code=None, param: str | None = None):
        super().__init__(detail, code)
        self.param = param


def exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 1024
        exc = PayloadTooLarge(
            f"The request body is larger than {limit} KiB; send less (or a batch file of fewer jobs)."
        )
    if isinstance(exc, (TooManyFieldsSent, TooManyFilesSent)):  # Django's form parser; else an HTML 400 page
        exc = exceptions.ValidationError({"non_field_errors": [f"Too many form fields or files ({exc})."]})
    budget = getattr(exc, "budget", "")
    if isinstance(exc, LimitExceeded):
        exc = exceptions.Throttled(wait=exc.retry_after, detail=exc.message, code=exc.code)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = flatten(exc.detail)
        message = error_line(fields)
        code = "invalid"
    else:
        detail = getattr(exc, "detail", response.data)
        message = str(detail.get("detail", detail)) if isinstance(detail, dict) else str(detail)
        param = getattr(exc, "param", None)
        fields = {param: [message]} if param else {}
        code = getattr(detail, "code", None) or getattr(exc, "default_code", "error")
    param = next(iter(fields), None)
    response.data = envelope(
        message, type=error_type(response.status_code), code=code, param=param, fields=fields, budget=budget
    )
    return response


def error_response(message: str, status_code: int, code: str, param: str | None = None):
    """An error in the same shape, for cases a view answers itself (409s)."""
    from rest_framework.response import Response

    return Response(envelope(message, type=error_type(status_code), code=code, param=param), status=status_code)
