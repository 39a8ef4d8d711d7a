"""The OpenAPI schema, fuzzed: schemathesis generates requests for every operation from the schema itself
(bounded examples) and no answer may be a server error, or break the documented response shapes."""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error


@pytest.fixture
def api_schema(db):
    # Requests run in this process, on the test's database connection: keep Django from closing it after
    # each request (its test client does the same).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    # Built here, not at import: the application reads its middleware settings (plain HTTP in tests) when made.
    yield schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def test_no_operation_answers_a_server_error(api_schema, api_key, user):
    """Each operation in turn (schemathesis' pytest plugin does not run under this pytest, so its strategies
    drive hypothesis here directly)."""
    user.api_keys.update(requests_per_minute=100_000)  # the fuzzer is not a client to throttle
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 9

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True)
        def check(case):
            response = case.call(headers={"Authorization": f"Bearer {api_key}"})
            case.validate_response(response, checks=[not_a_server_error])

        check()
