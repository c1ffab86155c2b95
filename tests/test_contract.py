"""The wire contract (realtime.protocol) is the one the README shows and the JavaScript client reads.

- Every JSON example of a server message in README.md's protocol section passes the schema check
  (tests/schema.py): no field the server does not send, none it always sends left out.
- Every property the browser code reads from a message object (`portfolio.x`, `position.x`, ...) is
  a field of that message's definition: the client cannot guess names the server never sends.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from realtime import protocol
from tests.schema import check_server_message

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
JS = sorted((ROOT / "static" / "js").glob("*.js"))
PLACEHOLDER_TIME = "2026-01-01T00:00:00.000Z"

# What the page's code calls each kind of message object, and the definition it must agree with.
JS_OBJECTS = {
    "portfolio": protocol.Portfolio,
    "position": protocol.PortfolioPosition,
    "performance": protocol.BotPerformance,
    "balance": protocol.AssetBalance,
    "alert": protocol.RiskAlert,
    "ticker": protocol.Ticker,
    "trade": protocol.Trade,
}


def protocol_section() -> str:
    text = README.read_text()
    start = text.index("## WebSocket protocol")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def readme_examples() -> list[dict]:
    """Every JSON object in the protocol section's ```json blocks (objects may span lines)."""
    examples = []
    for block in re.findall(r"```json\n(.*?)```", protocol_section(), flags=re.S):
        depth, current = 0, ""
        for char in block:
            if char == "{" and depth == 0:
                current = ""
            depth += char == "{"
            current += char
            depth -= char == "}"
            if char == "}" and depth == 0:
                examples.append(json.loads(current.replace('"..."', f'"{PLACEHOLDER_TIME}"')))
    return examples


def field_names(definition: type) -> set[str]:
    return {field.name for field in dataclasses.fields(definition)} | {"type"}


def test_the_readme_shows_every_kind_of_server_message_it_documents():
    shown = {example["type"] for example in readme_examples()}
    assert {"order_update", "risk_alert", "bot_status", "portfolio", "ticker", "trade", "orderbook"} <= shown


@pytest.mark.parametrize("example", readme_examples(), ids=lambda example: example.get("type", "?"))
def test_each_readme_example_is_on_the_contract(example):
    check_server_message(example)


@pytest.mark.parametrize("path", JS, ids=lambda path: path.name)
def test_the_page_reads_only_fields_the_server_sends(path):
    code = path.read_text()
    strangers = []
    for name, definition in JS_OBJECTS.items():
        used = set(re.findall(rf"\b{name}\??\.([a-z_]+)\b", code))
        strangers += [f"{name}.{field}" for field in sorted(used - field_names(definition))]
    assert not strangers, f"{path.name} reads fields the wire contract does not have: {strangers}"


def test_the_check_catches_a_guessed_field(tmp_path):
    guessed = "const cash = portfolio?.cash ?? portfolio?.cash_balance;"
    found = set(re.findall(r"\bportfolio\??\.([a-z_]+)\b", guessed)) - field_names(protocol.Portfolio)
    assert found == {"cash_balance"}
