"""The schema check itself: it accepts what protocol.py builds and refuses what it does not define."""

from __future__ import annotations

from decimal import Decimal

import pytest

from realtime import protocol
from tests.realtime.test_protocol import every_server_frame
from tests.schema import SchemaError, check_frame, check_server_message


@pytest.mark.parametrize(("name", "message"), list(every_server_frame().items()))
def test_every_built_message_passes(name, message):
    check_server_message(message)


def test_a_batch_is_checked_message_by_message():
    check_frame([protocol.pong(), protocol.heartbeat()])
    with pytest.raises(SchemaError):
        check_frame([protocol.pong(), {"type": "pong"}])


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda m: m.update(cash_balance="1"), "fields outside the contract"),
        (lambda m: m.pop("total_value"), "required field"),
        (lambda m: m.update(total_value=1), "expected str"),
        (lambda m: m["positions"].append({"symbol": "X"}), "required field"),
        (lambda m: m.update(type="portfolio_v2"), "unknown server message type"),
        (lambda m: m.update(timestamp="2026-01-01 00:00:00"), "timestamp"),
        (lambda m: m.update(seq=True), "expected an integer"),
    ],
)
def test_a_message_off_the_contract_fails(change, why):
    message = protocol.portfolio(total_value=Decimal("1"), positions=[])
    change(message)
    with pytest.raises(SchemaError, match=why):
        check_server_message(message)
