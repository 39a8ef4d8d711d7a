from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from .. import services
from ..models import ApiKey

KEYWORD = "Bearer"


def bearer_token(header: str) -> str | None:
    """The token of an `Authorization` header of the Bearer scheme (in any case, with any spaces around), ""
    when the token is missing, None for another scheme or no header. Parsed here only, so that the REST API,
    the event stream and `/v1` accept exactly the same headers."""
    scheme, _, token = (header or "").strip().partition(" ")
    if scheme.lower() != KEYWORD.lower():
        return None
    return token.strip()


def key_from_header(header: str) -> ApiKey | None:
    """The live API key an `Authorization` header carries, or None (no bearer token, an unknown or revoked
    key, a disabled user). Every entry point of the API authenticates keys through this."""
    token = bearer_token(header)
    return None if token is None else services.api_key_authenticate(token)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer aigc_...` with a key created in the studio, the admin or `create_api_key`."""

    keyword = KEYWORD

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if bearer_token(header) is None:
            return None  # another scheme: the next authenticator's turn
        key = key_from_header(header)
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        return key.user, key

    def authenticate_header(self, request):
        return f'{self.keyword} realm="api"'


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Tells the OpenAPI schema how keys are sent."""

    target_class = "generation.api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "aigc_<prefix>_<secret>"}
