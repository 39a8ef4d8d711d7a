"""An unknown address, with DEBUG off as in production: the studio's own page, never Django's list of URL
patterns (that list is DEBUG's, which only `make run` turns on, for development)."""

import pytest

pytestmark = pytest.mark.django_db


def test_an_unknown_address_shows_the_studios_page_not_found(client, user, settings):
    settings.DEBUG = False
    client.force_login(user)
    response = client.get("/no-such-page/")
    html = response.content.decode()
    assert response.status_code == 404 and "Page not found" in html and 'href="/"' in html
    assert "URLconf" not in html and "jobs/&lt;uuid" not in html and "api/v1/" not in html


def test_another_users_job_is_the_same_page_as_a_missing_one(client, user, other_user, settings, api):
    settings.DEBUG = False
    job = api.post("/api/v1/jobs/", {"kind": "summary", "inputs": {"text": "A council votes."}}).json()
    client.force_login(other_user)
    response = client.get(f"/jobs/{job['id']}/")
    assert response.status_code == 404 and "Page not found" in response.content.decode()
