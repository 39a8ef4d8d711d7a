"""The schema's security: editorial tools send an API key as a bearer token, so that is the only scheme the
schema (and the Authorize dialog of /api/docs/) offers; the browser session the studio uses is not one to paste."""

import pytest

pytestmark = pytest.mark.django_db


def test_the_schema_offers_only_the_bearer_api_key(api):
    schema = api.get("/api/schema/?format=json").json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes == {"ApiKey": {"type": "http", "scheme": "bearer", "bearerFormat": "aigc_<prefix>_<secret>"}}
    assert not any(s.get("in") == "cookie" for s in schemes.values())
    named = {
        name
        for path in schema["paths"].values()
        for operation in path.values()
        for requirement in operation.get("security", [])
        for name in requirement
    }
    assert named == {"ApiKey"}
