"""realtime.middleware: where the token comes from, and which tokens are good enough for /ws/trading."""

from __future__ import annotations

import time
from datetime import timedelta

import jwt
import pytest
from asgiref.compatibility import is_double_callable
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from realtime.middleware import BEARER_SUBPROTOCOL, OriginlessClientsAllowed, token_from_scope, validate_access_token

USER_ID = 42
OTHER_KEY = "other-key-that-this-server-never-had-0123456789"  # long enough that PyJWT does not warn


# --- builders -----------------------------------------------------------------------------------


def scope(query: str = "", **headers: str) -> dict:
    """A websocket scope; header names are given with underscores (sec_websocket_protocol=...)."""
    return {
        "type": "websocket",
        "query_string": query.encode("latin-1"),
        "headers": [(name.replace("_", "-").encode(), value.encode("latin-1")) for name, value in headers.items()],
    }


def access(user_id: int = USER_ID, lifetime: timedelta | None = None) -> AccessToken:
    token = AccessToken()
    token["user_id"] = user_id
    if lifetime is not None:
        token.set_exp(lifetime=lifetime)
    return token


def refresh(user_id: int = USER_ID) -> RefreshToken:
    token = RefreshToken()
    token["user_id"] = user_id
    return token


def forged(user_id: int = USER_ID) -> str:
    """Well formed and unexpired, but signed with a key the server does not have."""
    payload = {"token_type": "access", "user_id": user_id, "exp": int(time.time()) + 600, "jti": "forged"}
    return jwt.encode(payload, OTHER_KEY, algorithm="HS256")


def refused(raw: str | None) -> str:
    """Validate a token that must be refused; return the message the client would be shown."""
    user_id, expires_at, message = validate_access_token(raw)
    assert user_id is None
    assert expires_at is None
    assert message
    if raw:
        assert raw not in message
        for part in raw.split("."):
            if len(part) > 8:
                assert part not in message
    return message


# --- token_from_scope ---------------------------------------------------------------------------


def test_the_token_is_read_from_the_query_string():
    assert token_from_scope(scope("token=abc.def.ghi")) == ("abc.def.ghi", None)


def test_the_token_is_found_among_other_query_parameters():
    assert token_from_scope(scope("lang=en&token=abc.def.ghi&x=1")) == ("abc.def.ghi", None)


def test_the_token_is_read_from_an_authorization_bearer_header():
    assert token_from_scope(scope(authorization="Bearer abc.def.ghi")) == ("abc.def.ghi", None)


@pytest.mark.parametrize("value", ["bearer abc.def.ghi", "BEARER abc.def.ghi", "Bearer  abc.def.ghi "])
def test_the_bearer_scheme_is_case_insensitive_and_spaces_are_trimmed(value):
    assert token_from_scope(scope(authorization=value)) == ("abc.def.ghi", None)


def test_header_names_are_matched_whatever_their_case():
    raw_scope = {"query_string": b"", "headers": [(b"Authorization", b"Bearer abc.def.ghi")]}

    assert token_from_scope(raw_scope) == ("abc.def.ghi", None)


def test_the_token_is_read_from_the_websocket_subprotocol_and_bearer_is_echoed():
    assert token_from_scope(scope(sec_websocket_protocol="bearer, abc.def.ghi")) == ("abc.def.ghi", BEARER_SUBPROTOCOL)
    assert BEARER_SUBPROTOCOL == "bearer"


def test_the_subprotocol_pair_may_come_after_other_protocols():
    found = token_from_scope(scope(sec_websocket_protocol="json.v1, bearer,abc.def.ghi"))

    assert found == ("abc.def.ghi", "bearer")


def test_a_bearer_subprotocol_without_a_token_falls_back_to_the_query():
    assert token_from_scope(scope("token=from-query", sec_websocket_protocol="bearer")) == ("from-query", None)


def test_other_subprotocols_are_ignored():
    assert token_from_scope(scope(sec_websocket_protocol="json.v1, graphql-ws")) == (None, None)


def test_an_authorization_header_wins_over_the_query_string():
    assert token_from_scope(scope("token=from-query", authorization="Bearer from-header")) == ("from-header", None)


def test_the_subprotocol_wins_over_the_authorization_header_and_the_query():
    found = token_from_scope(
        scope("token=from-query", authorization="Bearer from-header", sec_websocket_protocol="bearer, from-protocol")
    )

    assert found == ("from-protocol", "bearer")


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Token abc", "Bearer", "Bearer   ", "abc.def.ghi"])
def test_an_authorization_header_without_a_bearer_token_falls_back_to_the_query(value):
    assert token_from_scope(scope("token=from-query", authorization=value)) == ("from-query", None)


@pytest.mark.parametrize("query", ["", "token=", "other=1", "tokens=abc"])
def test_no_token_anywhere_gives_none(query):
    assert token_from_scope(scope(query)) == (None, None)


def test_a_scope_without_headers_or_query_gives_no_token():
    assert token_from_scope({"type": "websocket"}) == (None, None)


# --- validate_access_token ----------------------------------------------------------------------


def test_a_valid_access_token_gives_the_user_id_and_its_expiry():
    token = access()

    user_id, expires_at, message = validate_access_token(str(token))

    assert user_id == USER_ID
    assert expires_at == token["exp"]
    assert expires_at > time.time()
    assert message == ""


def test_a_valid_access_token_read_from_the_scope_is_accepted():
    raw, _ = token_from_scope(scope(f"token={access()}"))

    assert validate_access_token(raw)[0] == USER_ID


def test_a_token_for_user_with_a_string_id_claim_keeps_the_claim():
    assert validate_access_token(str(access(user_id="7")))[0] == "7"


def test_refresh_token_is_refused_as_access():
    message = refused(str(refresh()))

    assert "type" in message.lower()


def test_a_refresh_tokens_access_token_is_accepted():
    assert validate_access_token(str(refresh().access_token))[0] == USER_ID


def test_an_expired_access_token_is_refused():
    message = refused(str(access(lifetime=-timedelta(seconds=1))))

    assert "expired" in message.lower()


def test_an_access_token_issued_long_ago_is_refused():
    token = access()
    token.set_exp(from_time=token.current_time - timedelta(days=1))

    assert "expired" in refused(str(token)).lower()


def test_a_token_signed_with_another_key_is_refused():
    assert "invalid" in refused(forged()).lower()


def test_a_token_with_alg_none_is_refused():
    payload = {"token_type": "access", "user_id": USER_ID, "exp": int(time.time()) + 600, "jti": "none"}

    refused(jwt.encode(payload, None, algorithm="none"))


def test_a_tampered_payload_is_refused():
    header, _payload, signature = str(access(user_id=1)).split(".")
    other_payload = str(access(user_id=2)).split(".")[1]

    refused(f"{header}.{other_payload}.{signature}")


@pytest.mark.parametrize("garbage", ["garbage", "a.b.c", "not-a-jwt-at-all-but-quite-long", "Bearer x", "{}"])
def test_a_garbage_string_is_refused(garbage):
    assert "invalid" in refused(garbage).lower()


def test_a_token_without_a_user_id_is_refused():
    token = AccessToken()

    assert "user" in refused(str(token)).lower()


@pytest.mark.parametrize("raw", [None, ""])
def test_no_token_is_refused_with_a_message_saying_one_is_required(raw):
    message = refused(raw)

    assert "token" in message.lower()
    assert "required" in message.lower()


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(lambda: str(refresh()), id="refresh"),
        pytest.param(lambda: str(access(lifetime=-timedelta(seconds=1))), id="expired"),
        pytest.param(forged, id="forged"),
        pytest.param(lambda: "garbage-token-text-123", id="garbage"),
    ],
)
def test_no_refusal_message_contains_the_token_text(raw):
    token = raw()

    _user_id, _exp, message = validate_access_token(token)

    assert token not in message
    assert all(part not in message for part in token.split(".") if len(part) > 8)


# --- Origin -------------------------------------------------------------------------------------


async def test_a_client_without_origin_skips_the_origin_check_and_a_browser_goes_through_it():
    async def validated(scope, receive, send) -> str:
        return "validated"

    async def unvalidated(scope, receive, send) -> str:
        return "unvalidated"

    app = OriginlessClientsAllowed(validated, unvalidated)

    assert await app(scope(), None, None) == "unvalidated"
    assert await app(scope(origin="http://127.0.0.1"), None, None) == "validated"
    assert not is_double_callable(app)  # servers and test communicators call it as ASGI 3
