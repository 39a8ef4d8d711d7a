"""The site's icon: linked from the studio's pages and the admin's, and served from our own static files."""

import re

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

ICON = re.compile(r'<link rel="icon" href="(/static/studio/favicon\.svg)" type="image/svg\+xml">')


def test_the_studio_and_the_admin_link_the_icon(staff):
    assert ICON.search(Client().get("/accounts/login/").content.decode())
    assert ICON.search(staff.get("/admin/").content.decode())
    assert ICON.search(staff.get("/admin/generation/prompttemplate/").content.decode())


def test_the_icon_is_served_as_svg(settings):
    settings.WHITENOISE_USE_FINDERS = True  # as `make run` serves static files; production serves collectstatic's
    response = Client().get("/static/studio/favicon.svg")
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert response.status_code == 200 and response["Content-Type"].startswith("image/svg+xml")
    assert body.startswith(b"<svg") and b"<script" not in body
