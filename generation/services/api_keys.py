import hashlib
import hmac
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from ..models import ApiKey
from .limits import lock_user

KEY_PREFIX = "aigc_"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def api_key_create(user, name: str = "") -> tuple[ApiKey, str]:
    """Create a key for `user`; returns the row and the full key, which is never retrievable again. A user has
    at most AIGC_MAX_KEYS_PER_USER live keys: each key has its own request rate, so keys must not be free."""
    cap = settings.AIGC["MAX_KEYS_PER_USER"]
    with transaction.atomic():
        lock_user(user)  # two requests cannot both take the last place
        if ApiKey.objects.filter(user=user, revoked_at__isnull=True).count() >= cap:
            raise ValidationError(
                {"name": [f"You have {cap} live API keys, the most allowed: revoke one you no longer use."]}
            )
        return _create(user, name)


def _create(user, name: str) -> tuple[ApiKey, str]:
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    key = ApiKey.objects.create(user=user, name=name[:100], prefix=prefix, key_hash=_hash(secret))
    return key, f"{KEY_PREFIX}{prefix}_{secret}"


def api_key_authenticate(raw: str) -> ApiKey | None:
    """The live key matching `raw`, or None. The secret is compared in constant time."""
    if not raw.startswith(KEY_PREFIX):
        return None
    prefix, _, secret = raw[len(KEY_PREFIX) :].partition("_")
    if not prefix or not secret:
        return None
    key = ApiKey.objects.select_related("user").filter(prefix=prefix, revoked_at__isnull=True).first()
    if key is None or not hmac.compare_digest(key.key_hash, _hash(secret)) or not key.user.is_active:
        return None
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())
    return key


def api_key_revoke(key: ApiKey) -> None:
    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
