"""Fencing: a write made on behalf of a leader carries its token, and a lower token than the
highest one seen is refused in the same transaction as the write.

The leading worker sets `current` (a context variable, so every task and ORM thread it starts
carries it) and calls `fence_claim` when its term starts; the place that writes fills calls
`fence_check` inside its transaction. Writes made outside a leader's term (REST requests, the
embedded single-process mode) carry no token and are not fenced.
"""

from __future__ import annotations

import contextvars

from django.db import transaction

from leadership.exceptions import StaleLeader
from leadership.models import Fence

WORKER = "worker"

current: contextvars.ContextVar[int | None] = contextvars.ContextVar("leadership_fence_token", default=None)


def _locked_row(name: str) -> Fence:
    row = Fence.objects.select_for_update().filter(name=name).first()
    return row if row is not None else Fence.objects.create(name=name)


@transaction.atomic
def fence_claim(*, token: int, holder: str, name: str = WORKER) -> None:
    """Start a term: from now on writes with a lower token are refused. A lower token than the
    highest seen is itself refused (StaleLeader)."""
    row = _locked_row(name)
    if token < row.token:
        raise StaleLeader(f"fencing token {token} is older than {row.token} held by {row.holder}")
    row.token, row.holder = token, holder
    row.save(update_fields=["token", "holder", "updated_at"])


def fence_high_water(*, name: str = WORKER) -> int:
    """The highest token any leader has shown (0 if none): new tokens must start above it."""
    row = Fence.objects.filter(name=name).first()
    return row.token if row is not None else 0


def fence_check(*, name: str = WORKER) -> None:
    """Inside a write's transaction: refuse it (StaleLeader) if it is made for an outdated leader."""
    token = current.get()
    if token is None:
        return
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("fence_check must run inside the transaction of the write it guards")
    row = _locked_row(name)
    if token < row.token:
        raise StaleLeader(f"write refused: fencing token {token} is older than {row.token} ({row.holder} leads)")
    if token > row.token:
        row.token = token
        row.save(update_fields=["token", "updated_at"])
