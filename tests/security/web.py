"""HTTP for the attack tests: any headers, any body, status and JSON (or text) back."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from tests.support import TIMEOUT


def post(url: str, body: bytes | dict, headers: dict[str, str] | None = None, token: str | None = None):
    """POST and return (status, parsed JSON or text); 4xx and 5xx come back rather than raise."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return send(urllib.request.Request(url, data=data, method="POST"), headers, token)


def get(url: str, token: str | None = None):
    return send(urllib.request.Request(url, method="GET"), None, token)


def send(request: urllib.request.Request, headers: dict[str, str] | None, token: str | None):
    request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT * 3) as response:
            return response.status, _decoded(response.read())
    except urllib.error.HTTPError as error:
        return error.code, _decoded(error.read())


def _decoded(raw: bytes):
    try:
        return json.loads(raw or b"{}")
    except ValueError:
        return raw.decode(errors="replace")


def login(gateway, username: str, password: str, headers: dict[str, str] | None = None):
    return post(f"{gateway.http}/api/token/", {"username": username, "password": password}, headers)
