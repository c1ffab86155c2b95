"""Small things a newcomer notices first, without servers: admin headings, the favicon, the
unknown-path frame and the busy-port message. tests/integration/test_first_run.py runs them against
real processes, with the clean start (no warning in the log), which only a real process can show."""

from __future__ import annotations

import json
import socket

import pytest
from django.core.management.base import CommandError

from tradingsite.management.commands.serve import check_can_listen
from tradingsite.unknown_path import NOT_FOUND_CODE, not_found_frame


@pytest.mark.django_db
def test_the_admin_names_its_apps_alike(admin_client):
    page = admin_client.get("/admin/").content.decode()

    assert "Market data" in page and "Trading accounts" in page
    assert ">Marketdata<" not in page


def test_favicon_ico_leads_to_the_pages_icon(client):
    response = client.get("/favicon.ico")

    assert response.status_code == 301
    assert response["Location"].endswith("/static/favicon.svg")


def test_the_unknown_path_frame_names_the_path_and_the_endpoints():
    frame = json.loads(not_found_frame("/ws/nope"))

    assert frame["type"] == "error" and frame["code"] == NOT_FOUND_CODE == 4404
    assert "/ws/nope" in frame["message"] and "/ws/market" in frame["message"] and "/ws/trading" in frame["message"]
    assert frame["timestamp"].endswith("Z")


def test_a_busy_port_is_a_command_error_that_says_how_to_choose_another():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(CommandError, match=f"cannot listen on 127.0.0.1:{port}.*make run PORT="):
            check_can_listen("127.0.0.1", port)
    check_can_listen("127.0.0.1", port)  # free again: no error
