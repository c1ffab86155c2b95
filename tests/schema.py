"""Every frame a test receives is checked against the wire contract (realtime.protocol), as Zulip does
with its event schema: an unknown type, a missing or extra field, or a wrong type fails the test that
received it, so the integration and browser suites hold the server to its own definitions."""

from __future__ import annotations

import dataclasses
import re
import types
import typing

from realtime import protocol

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z")


class SchemaError(AssertionError):
    pass


def check_server_message(message: object) -> None:
    """Raise SchemaError unless `message` is exactly one of the server messages protocol.py defines."""
    if not isinstance(message, dict):
        raise SchemaError(f"a server message is a JSON object, not {type(message).__name__}: {message!r}")
    definition = protocol.SERVER_MESSAGES.get(message.get("type"))
    if definition is None:
        raise SchemaError(f"unknown server message type {message.get('type')!r}: {message!r}")
    if not isinstance(message.get("timestamp"), str) or not TIMESTAMP.fullmatch(message["timestamp"]):
        raise SchemaError(f"timestamp must be ISO 8601 UTC ending in Z: {message!r}")
    body = {key: value for key, value in message.items() if key not in {"type", "timestamp"}}
    _check_object(definition, body, message["type"])


def check_frame(data: object) -> None:
    """A text frame's JSON: one message, or (batched connections) an array of them."""
    for message in data if isinstance(data, list) else [data]:
        check_server_message(message)


def _check_object(definition: type, value: object, path: str) -> None:
    if not isinstance(value, dict):
        raise SchemaError(f"{path}: expected an object, got {value!r}")
    hints = typing.get_type_hints(definition)
    fields = {f.name: f for f in dataclasses.fields(definition) if f.name != "timestamp"}
    extra = sorted(set(value) - set(fields))
    if extra:
        raise SchemaError(f"{path}: fields outside the contract: {extra}")
    for name, field_ in fields.items():
        if name not in value:
            if field_.default is dataclasses.MISSING:
                raise SchemaError(f"{path}: required field {name!r} is missing")
            continue
        _check_value(hints[name], value[name], f"{path}.{name}")


def _check_value(expected: object, value: object, path: str) -> None:
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(expected):
            try:
                _check_value(option, value, path)
                return
            except SchemaError as error:
                errors.append(str(error))
        raise SchemaError(" or ".join(errors))
    if expected is type(None):
        if value is not None:
            raise SchemaError(f"{path}: expected null, got {value!r}")
    elif origin is list:
        if not isinstance(value, list):
            raise SchemaError(f"{path}: expected a list, got {value!r}")
        (item_type,) = typing.get_args(expected)
        for index, item in enumerate(value):
            _check_value(item_type, item, f"{path}[{index}]")
    elif origin is dict:
        if not isinstance(value, dict):
            raise SchemaError(f"{path}: expected an object, got {value!r}")
        _key_type, item_type = typing.get_args(expected)
        for key, item in value.items():
            _check_value(item_type, item, f"{path}.{key}")
    elif dataclasses.is_dataclass(expected):
        _check_object(expected, value, path)
    elif expected is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise SchemaError(f"{path}: expected an integer, got {value!r}")
    elif not isinstance(value, expected):
        raise SchemaError(f"{path}: expected {getattr(expected, '__name__', expected)}, got {value!r}")
