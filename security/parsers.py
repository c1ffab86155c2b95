"""JSON request bodies, bounded in size and in nesting.

DRF's JSONParser lets a RecursionError from deep nesting become a 500, and DRF hands it the body
through `request.body`, whose size refusal is an HTML 400 with a logged traceback. This parser is
not a JSONParser subclass, so DRF gives it the stream: it reads at most DATA_UPLOAD_MAX_MEMORY_SIZE
bytes (a JSON 413 past it) and answers 400 for nesting deeper than MAX_DEPTH, before any serializer
or JSONField walks the structure recursively.
"""

from __future__ import annotations

import json

from django.conf import settings
from rest_framework import exceptions, renderers, status
from rest_framework.parsers import BaseParser
from rest_framework.settings import api_settings

MAX_DEPTH = 32  # bot params and orders are a few levels deep; nothing legitimate comes near


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"


class BoundedJSONParser(BaseParser):
    media_type = "application/json"
    renderer_class = renderers.JSONRenderer

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        too_large = RequestTooLarge(f"Request body too large: at most {limit} bytes")
        request = (parser_context or {}).get("request")
        declared = _content_length(request)
        if declared is not None and declared > limit:
            raise too_large
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise too_large
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            data = json.loads(body.decode(encoding), parse_constant=_refuse_constant if self.strict else None)
        except RecursionError:
            raise exceptions.ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH} levels") from None
        except ValueError as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
        if json_depth(data) > MAX_DEPTH:
            raise exceptions.ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH} levels")
        return data

    @property
    def strict(self) -> bool:
        return api_settings.STRICT_JSON


def json_depth(value) -> int:
    """How deeply lists and objects nest in a parsed JSON value (pure, iterative: no recursion limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _content_length(request) -> int | None:
    if request is None:
        return None
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")
