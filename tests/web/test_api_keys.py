"""The API keys page: a key is created only by a POST, shown once after the redirect, and revoked only after
a confirmation that works without script."""

import pytest

from generation import services

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(client, user):
    client.force_login(user)
    return client


def test_a_new_key_is_shown_once_after_the_redirect_and_reloading_creates_none(browser, user):
    created = browser.post("/keys/", {"name": "CMS plugin"})
    assert created.status_code == 302 and created["Location"] == "/keys/"
    key = user.api_keys.get()
    shown = browser.get("/keys/")
    raw = shown.context["new_key"]
    assert raw.startswith(f"aigc_{key.prefix}_") and raw in shown.content.decode() and key.name == "CMS plugin"
    assert services.api_key_authenticate(raw) is not None
    # Reloading the page (a GET) neither shows the key again nor creates another.
    again = browser.get("/keys/")
    assert again.context["new_key"] is None and raw not in again.content.decode()
    assert user.api_keys.count() == 1
    # Only another POST makes another key.
    browser.post("/keys/", {"name": "Wire desk"})
    assert user.api_keys.count() == 2 and browser.get("/keys/").context["new_key"] != raw


def test_a_form_error_shows_on_the_page_and_creates_nothing(browser, user):
    response = browser.post("/keys/", {"name": ""})
    assert response.status_code == 200 and response.context["form"].errors["name"]
    assert not user.api_keys.exists()


def test_the_api_keys_page_is_never_stored(browser, user):
    """It shows each key's webhook secret, and a new key once: no browser or proxy cache may keep a copy."""
    browser.post("/keys/", {"name": "CMS plugin"})
    shown = browser.get("/keys/")
    assert shown.context["new_key"] in shown.content.decode()
    key = user.api_keys.get()
    for response in (shown, browser.get("/keys/"), browser.get(f"/keys/{key.pk}/revoke/")):
        assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"]
    assert "no-store" not in browser.get("/jobs/").get("Cache-Control", "")


def test_revoke_asks_for_confirmation_and_only_a_confirmed_post_revokes(browser, user, api_key):
    key = user.api_keys.get()
    url = f"/keys/{key.pk}/revoke/"
    assert url in browser.get("/keys/").content.decode()  # the table's Revoke leads to the confirmation
    page = browser.get(url)
    html = page.content.decode()
    assert page.status_code == 200 and 'name="confirm"' in html and f"aigc_{key.prefix}_" in html
    # A POST without the confirmation (a stray or replayed form) revokes nothing: the question is asked again.
    bare = browser.post(url)
    assert bare.status_code == 200 and 'name="confirm"' in bare.content.decode()
    assert services.api_key_authenticate(api_key) is not None
    done = browser.post(url, {"confirm": "yes"}, follow=True)
    assert done.redirect_chain == [("/keys/", 302)] and "Key revoked" in done.content.decode()
    assert services.api_key_authenticate(api_key) is None
    assert browser.get(url)["Location"] == "/keys/"  # nothing left to confirm


def test_another_users_api_key_cannot_be_revoked_or_asked_about(client, user, other_user, api_key):
    client.force_login(other_user)
    url = f"/keys/{user.api_keys.get().pk}/revoke/"
    assert client.get(url).status_code == 404
    assert client.post(url, {"confirm": "yes"}).status_code == 404
    assert services.api_key_authenticate(api_key) is not None


def test_the_confirmation_speaks_chinese(browser, user, api_key):
    browser.post("/i18n/setlang/", {"language": "zh-hans", "next": "/keys/"})
    key = user.api_keys.get()
    html = browser.get(f"/keys/{key.pk}/revoke/").content.decode()
    assert "吊销 API 密钥" in html and f"吊销密钥“tests”（aigc_{key.prefix}_…）？" in html
