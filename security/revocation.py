"""Revocation: a user deactivated, deleted or given a new password is signed out everywhere.

Detected at the model, not in a view: the admin, `manage.py changepassword`, `createsuperuser`,
shell sessions and any future service all save the user through the ORM, and none of them passes
through one service of ours. The receivers below do nothing but call `user_revoke`, the one service.
`QuerySet.update()` sends no signals: code that deactivates users in bulk must call `user_revoke`.

What revocation does:
- blacklists the user's outstanding refresh tokens (simplejwt's token_blacklist), so
  /api/token/refresh/ refuses them;
- once the change is committed, publishes one event that closes every live /ws/trading connection
  of the user, on every instance, with an error frame and close code 4002.
Access tokens issued before a password change are refused by security.credentials; those of a
deactivated or deleted user by the is_active check of simplejwt and of the WebSocket handshake.
"""

from __future__ import annotations

import logging

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models.signals import post_save, pre_delete
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from realtime import publish

logger = logging.getLogger(__name__)

MESSAGES = {
    "deactivated": "Signed out: this account was deactivated",
    "deleted": "Signed out: this account was deleted",
    "password_changed": "Signed out: the password was changed; sign in again",
}


@transaction.atomic
def user_revoke(*, user_id: int, reason: str) -> int:
    """Blacklist the user's live refresh tokens and, after commit, close their connections.

    Returns how many refresh tokens were blacklisted.
    """
    if reason not in MESSAGES:
        raise ValueError(f"unknown revocation reason {reason!r}; use one of {', '.join(MESSAGES)}")
    live = OutstandingToken.objects.filter(
        user_id=user_id, expires_at__gt=timezone.now(), blacklistedtoken__isnull=True
    )
    blacklisted = BlacklistedToken.objects.bulk_create(
        [BlacklistedToken(token=token) for token in live], ignore_conflicts=True
    )
    transaction.on_commit(lambda: _close_connections(user_id, MESSAGES[reason]))
    return len(blacklisted)


def _close_connections(user_id: int, message: str) -> None:
    try:
        publish.publish_user_revoked(user_id, message)
    except Exception:
        # The change is committed and the tokens are refused; only the push failed (Redis down).
        logger.exception("could not publish the revocation of user %s", user_id)


# --- where users change (see the module docstring for why these are receivers) ---------------------


def _user_saved(sender, instance, created: bool, raw: bool = False, **kwargs) -> None:
    if created or raw:
        return
    if not instance.is_active:
        user_revoke(user_id=instance.pk, reason="deactivated")
    elif getattr(instance, "_password", None) is not None:  # set_password() ran before this save
        user_revoke(user_id=instance.pk, reason="password_changed")


def _user_deleting(sender, instance, **kwargs) -> None:
    # Before the delete: the token rows lose their user (SET_NULL) once it is gone.
    user_revoke(user_id=instance.pk, reason="deleted")


def connect_receivers() -> None:
    user_model = get_user_model()
    post_save.connect(_user_saved, sender=user_model, dispatch_uid="security.revocation.saved")
    pre_delete.connect(_user_deleting, sender=user_model, dispatch_uid="security.revocation.deleting")
