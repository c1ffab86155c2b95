"""security.revocation and security.credentials without servers: what counts as a revocation."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from security import credentials, revocation
from security.credentials import LoginSerializer

pytestmark = pytest.mark.django_db


@pytest.fixture
def published(monkeypatch):
    """What the revocation pushed to the channel layer: (user id, message)."""
    sent: list[tuple[int, str]] = []
    monkeypatch.setattr(revocation.publish, "publish_user_revoked", lambda *args: sent.append(args))
    return sent


@pytest.fixture
def user():
    return get_user_model().objects.create_user("rita", password="first-password-1")


def test_a_password_change_blacklists_refresh_tokens_and_publishes_once(
    user, published, django_capture_on_commit_callbacks
):
    refresh = LoginSerializer.get_token(user)
    with django_capture_on_commit_callbacks(execute=True):
        user.set_password("second-password-2")
        user.save()

    assert BlacklistedToken.objects.filter(token__jti=refresh["jti"]).exists()
    assert published == [(user.pk, revocation.MESSAGES["password_changed"])]


def test_deactivation_publishes_and_deletion_too(user, published, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        user.is_active = False
        user.save()
    with django_capture_on_commit_callbacks(execute=True):
        user_id = user.pk
        user.delete()

    assert published == [(user_id, revocation.MESSAGES["deactivated"]), (user_id, revocation.MESSAGES["deleted"])]


def test_ordinary_saves_and_new_users_revoke_nothing(user, published, django_capture_on_commit_callbacks):
    refresh = LoginSerializer.get_token(user)
    with django_capture_on_commit_callbacks(execute=True):
        user.first_name = "Rita"
        user.save()
        get_user_model().objects.create_user("sam", password="sams-password-1", is_active=False)

    assert published == []
    assert not BlacklistedToken.objects.filter(token__jti=refresh["jti"]).exists()


def test_nothing_is_published_when_the_change_rolls_back(user, published, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        revocation.user_revoke(user_id=user.pk, reason="deactivated")

    assert len(callbacks) == 1 and published == []  # only on commit


def test_an_unknown_reason_is_refused(user):
    with pytest.raises(ValueError, match="unknown revocation reason"):
        revocation.user_revoke(user_id=user.pk, reason="bored")


def test_a_token_is_current_until_the_password_changes(user):
    claim = LoginSerializer.get_token(user)[credentials.CLAIM]
    assert credentials.token_current(user, claim)
    assert credentials.token_current(user, None)  # minted without the claim: judged by expiry alone

    user.set_password("second-password-2")

    assert not credentials.token_current(user, claim)


def test_old_tokens_are_refused_by_the_rest_api_after_a_password_change(user, client):
    from rest_framework.test import APIClient

    access = str(LoginSerializer.get_token(user).access_token)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    assert api.get("/api/portfolio/").status_code == 200

    user.set_password("second-password-2")
    user.save()

    response = api.get("/api/portfolio/")
    assert response.status_code == 401 and "password changed" in response.json()["detail"]
    assert OutstandingToken.objects.filter(user=user).count() == 1


def test_a_refresh_token_from_before_a_rehash_is_refused_rather_than_giving_useless_access(user):
    """A stronger hasher re-makes the hash at a login without a revocation: the claim changes."""
    from rest_framework.test import APIClient

    refresh = str(LoginSerializer.get_token(user))
    get_user_model().objects.filter(pk=user.pk).update(password="pbkdf2_sha256$1$salt$rehashed=")

    response = APIClient().post("/api/token/refresh/", {"refresh": refresh}, format="json")

    assert response.status_code == 401 and "password changed" in response.json()["detail"]


def test_a_refresh_token_of_a_deleted_user_is_refused_not_an_error(user):
    from rest_framework.test import APIClient

    refresh = str(LoginSerializer.get_token(user))
    OutstandingToken.objects.filter(user=user).delete()  # a token the blacklist never knew of
    user.delete()

    assert APIClient().post("/api/token/refresh/", {"refresh": refresh}, format="json").status_code == 401
