import pytest

from generation import services
from generation.models import ApiKey

pytestmark = pytest.mark.django_db


def test_key_is_stored_hashed_and_authenticates(user):
    _key, raw = services.api_key_create(user, name="cms")
    row = ApiKey.objects.get()
    assert raw.startswith("aigc_") and row.prefix in raw
    assert raw.split("_", 2)[2] not in row.key_hash and len(row.key_hash) == 64
    found = services.api_key_authenticate(raw)
    assert found.user == user and found.last_used_at is None  # the returned row predates the update
    assert ApiKey.objects.get().last_used_at is not None


@pytest.mark.parametrize(
    "mangle",
    [
        lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"),
        lambda k: k.replace("aigc_", ""),
        lambda k: "aigc_x",
        lambda k: "",
    ],
)
def test_wrong_keys_do_not_authenticate(user, mangle):
    _, raw = services.api_key_create(user)
    assert services.api_key_authenticate(mangle(raw)) is None


def test_revoked_key_and_inactive_user_do_not_authenticate(user):
    key, raw = services.api_key_create(user)
    services.api_key_revoke(key)
    assert services.api_key_authenticate(raw) is None
    _, raw2 = services.api_key_create(user)
    user.is_active = False
    user.save()
    assert services.api_key_authenticate(raw2) is None
