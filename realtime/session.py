"""One WebSocket connection's whole state, without I/O (in the manner of python-websockets' ServerProtocol).

A `Session` takes what happens to a connection (a client frame, an event from the channel layers,
the clock) and answers with `Action`s for its adapter (`realtime.consumers`) to carry out in order:
send a text frame, join or leave a subscription's group, fetch a snapshot, close. It owns the
subscriptions, the flood guard, the bounded outbox and the heartbeat and token deadlines, and it
never awaits, so every branch is unit-tested without a server (tests/realtime/test_session.py).

Times are passed in: `now` is the adapter's monotonic clock, `wall` seconds since the epoch (tokens
expire in wall time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from realtime import flow, metrics, protocol
from realtime.outbox import Kind, Outbox, SlowConsumer
from realtime.protocol import ChannelRequest, Code, Endpoint, Ping, ProtocolError, Refresh, Stream, SymbolRequest
from realtime.ratelimit import FloodGuard, Verdict, flood_guard

# --- what a connection can subscribe to ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MarketSub:
    """A public market stream of one symbol (a group shared by every subscriber)."""

    stream: Stream
    symbol: str


@dataclass(frozen=True, slots=True)
class UserSub:
    """One of the signed-in user's trading channels (a group of that user's connections only)."""

    channel: str


@dataclass(frozen=True, slots=True)
class Revocations:
    """Every trading connection of the user hears when the user is revoked, whatever it subscribed."""


Sub = MarketSub | UserSub | Revocations


# --- what the adapter is asked to do, in order ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    text: str
    label: str  # the message type, for metrics
    messages: int = 1  # more than one: a batched array frame
    parts: tuple[str, ...] = field(
        default=(), compare=False
    )  # a batched frame's messages, for a MessagePack connection (realtime.wire)


@dataclass(frozen=True, slots=True)
class Join:
    sub: Sub


@dataclass(frozen=True, slots=True)
class Leave:
    sub: Sub


@dataclass(frozen=True, slots=True)
class FetchSnapshots:
    """Load the current state of these subscriptions and hand it to `Session.snapshot`."""

    subs: tuple[Sub, ...]


@dataclass(frozen=True, slots=True)
class LoadPositions:
    """Read where each subscription's history stands (and what followed the client's `since`), then
    answer with `Session.positions_loaded`: the ack carries the positions."""

    subs: tuple[Sub, ...]
    request: ChannelRequest | SymbolRequest
    then_snapshot: tuple[Sub, ...]  # new state subscriptions without a history


@dataclass(frozen=True, slots=True)
class FillGap:
    """Events after `after` up to `up_to` (inclusive) did not arrive in order: read them from the
    history and hand them to `Session.gap_filled` before anything else of that subscription."""

    sub: Sub
    epoch: str
    after: int
    up_to: int


@dataclass(frozen=True, slots=True)
class CheckToken:
    """Validate a refreshed access token; answer with `Session.token_checked`."""

    token: str


@dataclass(frozen=True, slots=True)
class Loaded:
    """Where one subscription's history stands; `missed` are the events after the client's `since`
    (None when the client gave none, or when the history cannot serve it)."""

    sub: Sub
    epoch: str
    seq: int
    missed: list[str] | None = None


@dataclass(frozen=True, slots=True)
class SubscriptionsChanged:
    count: int  # for the registry behind /ws/status


@dataclass(frozen=True, slots=True)
class Drain:
    """Messages are queued: write them as the socket's buffer empties (`Session.drain`)."""


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str


Action = (
    Send | Join | Leave | FetchSnapshots | LoadPositions | FillGap | CheckToken | SubscriptionsChanged | Drain | Close
)


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-connection limits, from settings (tradingsite.config)."""

    rate_per_second: float
    burst: int
    max_message_bytes: int
    max_items_per_request: int
    max_subscriptions: int
    queue_size: int
    heartbeat_interval: float

    @classmethod
    def from_config(cls, app) -> Limits:
        return cls(
            rate_per_second=app.ws_rate_limit_per_second,
            burst=app.ws_rate_limit_burst,
            max_message_bytes=app.ws_max_message_bytes,
            max_items_per_request=app.ws_max_items_per_request,
            max_subscriptions=app.ws_max_subscriptions_per_connection,
            queue_size=app.ws_message_queue_size,
            heartbeat_interval=app.ws_heartbeat_interval,
        )


@dataclass(slots=True)  # one per connection: no __dict__
class Session:
    endpoint: Endpoint
    limits: Limits
    now: float  # when the connection opened (monotonic)
    user_id: int | None = None
    expires_at: float | None = None  # the access token's expiry (wall clock), None: never
    subscriptions: frozenset[Sub] = frozenset()  # replaced on each change: the empty one costs nothing
    closed: bool = False
    outbox: Outbox = field(init=False)
    flood: FloodGuard = field(init=False)
    batch: bool = False  # ?batch=1: queued messages may go out as one JSON array frame
    binary: bool = False  # ?format=msgpack: the adapter writes each frame as MessagePack (realtime.wire)
    delivered: dict[Sub, tuple[str, int]] = field(default_factory=dict)  # (epoch, last seq sent) per history
    last_sent: float = field(init=False)
    draining: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.outbox = Outbox(self.limits.queue_size)
        self.flood = flood_guard(self.limits.rate_per_second, self.limits.burst)
        self.last_sent = self.now

    # --- client frames ----------------------------------------------------------------------------

    def receive(self, text: str | None, now: float, enabled_symbols: frozenset[str]) -> list[Action]:
        """One client frame: flood check, size check, parse, then the request's actions."""
        if self.closed:
            return []
        verdict = self.flood.check(now)
        if verdict is not Verdict.ALLOW:
            return self._flooded(verdict)
        limit = self.limits.max_message_bytes
        if text is not None and (len(text) > limit or len(text.encode()) > limit):
            return self.error(ProtocolError(f"Message too large: at most {limit} bytes"))
        try:
            request = protocol.parse(text, self.endpoint, self.limits.max_items_per_request)
            metrics.MESSAGES_IN.labels(type=request.type).inc()
            return self._handlers[type(request)](self, request, enabled_symbols)
        except ProtocolError as exc:
            metrics.MESSAGES_IN.labels(type="invalid").inc()
            return self.error(exc)

    def flooded(self) -> list[Action]:
        """More frames arrived than wait in front of the flood guard: close as a flood (4029)."""
        return self._flooded(Verdict.CLOSE)

    def _flooded(self, verdict: Verdict) -> list[Action]:
        text = f"Rate limit exceeded: at most {self.limits.rate_per_second:g} messages a second"
        if verdict is Verdict.CLOSE:
            return self.close(Code.RATE_LIMITED, text + "; closing")
        return self.error(ProtocolError(text + "; this message was ignored", code=Code.RATE_LIMITED))

    def _ping(self, request: Ping, enabled_symbols: frozenset[str]) -> list[Action]:
        return self.reply(protocol.pong())

    def _channels(self, request: ChannelRequest, enabled_symbols: frozenset[str]) -> list[Action]:
        if self.endpoint is not Endpoint.TRADING or self.user_id is None:
            raise ProtocolError(f"Unknown message type {request.type!r} on this endpoint")
        return self._change(request, [UserSub(channel) for channel in request.channels])

    def _symbols(self, request: SymbolRequest, enabled_symbols: frozenset[str]) -> list[Action]:
        unknown = [symbol for symbol in request.symbols if symbol not in enabled_symbols]
        if unknown:
            raise protocol.unknown_symbols_error(unknown)
        return self._change(request, [MarketSub(request.stream, symbol) for symbol in request.symbols])

    def _refresh(self, request: Refresh, enabled_symbols: frozenset[str]) -> list[Action]:
        if self.user_id is None:
            raise ProtocolError(f"Unknown message type {request.type!r} on this endpoint")
        return [CheckToken(request.token)]

    def _change(self, request: ChannelRequest | SymbolRequest, wanted: list[Sub]) -> list[Action]:
        """Join (or leave) the groups, then ack with each history's position, then replay what the
        client missed or send the current state: subscribe, then snapshot, so nothing falls between."""
        subscribe = request.subscribe
        if subscribe:
            new = [sub for sub in wanted if sub not in self.subscriptions]
            cap = self.limits.max_subscriptions
            if len(self.subscriptions) + len(new) > cap:
                raise ProtocolError(f"Too many subscriptions: at most {cap} per connection; unsubscribe some first")
            changes: list[Action] = [Join(sub) for sub in new]
            self.subscriptions = self.subscriptions.union(new)
            _count_subscriptions(new, +1)
        else:
            gone = [sub for sub in wanted if sub in self.subscriptions]
            changes = [Leave(sub) for sub in gone]
            self.subscriptions = self.subscriptions.difference(gone)
            _count_subscriptions(gone, -1)
            for sub in gone:
                self.delivered.pop(sub, None)
        counted = SubscriptionsChanged(len(self.subscriptions))
        if not subscribe:
            return [*changes, *self.reply(_ack(request)), counted]
        # Each subscription is acked with its position; one the connection already holds sends no
        # state again (its position is the last seq it was sent).
        unknown = tuple(sub for sub in wanted if _has_position(sub) and sub not in self.delivered)
        if unknown:
            return [*changes, LoadPositions(unknown, request, ()), counted]
        return [*changes, *self.reply(_ack(request, self._positions_of(wanted) or None)), counted]

    def _positions_of(self, subs: list[Sub]) -> dict[str, protocol.Position]:
        return {
            _name(sub): protocol.Position(epoch=self.delivered[sub][0], seq=self.delivered[sub][1])
            for sub in subs
            if sub in self.delivered
        }

    def positions_loaded(self, action: LoadPositions, loaded: list[Loaded], backlog: int = 0) -> list[Action]:
        """The ack with every position, then the missed events of recovered subscriptions (in order,
        once), then a snapshot for those that could not be recovered."""
        positions: dict[str, protocol.Position] = {}
        recovered: dict[str, bool] = {}
        missed: list[str] = []
        snapshot = list(action.then_snapshot)
        for item in loaded:
            name = _name(item.sub)
            self.delivered[item.sub] = (item.epoch, item.seq)
            positions[name] = protocol.Position(epoch=item.epoch, seq=item.seq)
            if name in action.request.since:
                recovered[name] = item.missed is not None
                missed += item.missed or []
            if item.missed is None and _has_snapshot(item.sub):
                snapshot.append(item.sub)
        positions = {**self._positions_of(_subs_of(action.request)), **positions}
        actions = self.reply(_ack(action.request, positions, recovered or None), backlog)
        for text in missed:
            actions += self.deliver(text, Kind.RELIABLE, None, "recovered", backlog)
        return [*actions, FetchSnapshots(tuple(snapshot))] if snapshot else actions

    def token_checked(self, user_id: object, expires_at: float | None, why: str) -> list[Action]:
        """A refreshed token replaces the connection's only if it is a valid access token of this user."""
        if user_id is None:
            return self.error(ProtocolError(f"Refresh refused: {why}; the current token stays", Code.AUTH_FAILED))
        if str(user_id) != str(self.user_id):
            text = "Refresh refused: the token belongs to another user; the current token stays"
            return self.error(ProtocolError(text, Code.AUTH_FAILED))
        self.expires_at = expires_at
        return self.reply(protocol.refreshed(expires_at))

    def gap_filled(self, action: FillGap, texts: list[str], backlog: int = 0) -> list[Action]:
        """The events of a gap, read back from the history; a history that lost them sends the state."""
        if action.sub not in self.subscriptions:
            return []
        known = self.delivered.get(action.sub)
        if known is None or (known[0] == action.epoch and known[1] < action.up_to):
            self.delivered[action.sub] = (action.epoch, action.up_to)  # never back, never to a lost epoch
        actions = [a for text in texts for a in self.deliver(text, Kind.RELIABLE, None, "gap", backlog)]
        if len(texts) < action.up_to - action.after and _has_snapshot(action.sub):
            actions.append(FetchSnapshots((action.sub,)))
        return actions

    _handlers: ClassVar[dict[type, Callable]] = {
        Ping: _ping,
        ChannelRequest: _channels,
        SymbolRequest: _symbols,
        Refresh: _refresh,
    }

    def admitted(self, user_id: int | None, expires_at: float | None) -> list[Action]:
        """The connection holds its place; a signed-in one listens for its user's revocation."""
        self.user_id, self.expires_at = user_id, expires_at
        return [] if user_id is None else [Join(Revocations())]

    def revoked(self, message: str) -> list[Action]:
        """The user was deactivated, deleted or changed password (on any instance): close with 4002."""
        return self.close(Code.USER_INACTIVE, message)

    def restart(self) -> list[Action]:
        """This instance is draining (realtime.drain): 1012, so the client reconnects to another one
        and resumes with `since`; whatever is still queued here is replayed from the history there."""
        return self.close(Code.SERVICE_RESTART, RESTART_MESSAGE)

    def internal_error(self) -> list[Action]:
        """The request failed on our side (a database or Redis blip): the client may retry."""
        return self.error(ProtocolError("Internal error: the request did not complete; retry", Code.INTERNAL))

    # --- what goes out ----------------------------------------------------------------------------

    def events(self, events: list[dict], backlog: int) -> list[Action]:
        """Several layer events that were already waiting: with ?batch=1, what can be written at once
        goes out as one array frame (never delayed: only what had already arrived is combined)."""
        actions = [action for event in events for action in self.event(event, backlog)]
        return batched(actions) if self.batch else actions

    def event(self, event: dict, backlog: int) -> list[Action]:
        """A channel-layer event: a market update (conflated by key, or a droppable trade) or a trading event."""
        if event["type"] == protocol.REVOKED_EVENT:
            return self.revoked(event.get("message") or "User deactivated or credentials changed")
        if event["type"] == protocol.RESTART_EVENT:
            return self.restart()
        if event["type"] == protocol.USER_EVENT:
            sub, epoch, seq = UserSub(event.get("channel", "")), event.get("epoch"), event.get("seq")
            known = self.delivered.get(sub)
            if known is not None and seq is not None and known[0] == epoch:
                if seq <= known[1]:
                    return []  # already sent: replayed, or covered by the snapshot's position
                if seq > known[1] + 1:
                    self.delivered[sub] = (epoch, seq)  # the fill brings everything up to this one
                    return [FillGap(sub, epoch, known[1], seq)]  # an earlier one is late or was lost
            if known is not None and seq is not None:
                self.delivered[sub] = (epoch, seq)  # a new epoch: the history was lost and starts again
            return self.deliver(event["text"], Kind.RELIABLE, None, event.get("kind", "user"), backlog)
        sub = market_sub_of(event)
        if event.get("symbol") is not None and sub not in self.subscriptions:
            return []  # left meanwhile (an update that was already on its way)
        return self.market(event, sub, backlog)

    def market(self, event: dict, sub: MarketSub, backlog: int) -> list[Action]:
        """A market update for a subscription this connection holds (the fan-out knows it does)."""
        label, key = event.get("kind", "market"), event.get("key")
        known, seq = self.delivered.get(sub), event.get("seq")
        if known is not None and seq is not None:
            if known[0] == event.get("epoch") and seq <= known[1]:
                return []  # already sent with the trades a resume replayed
            self.delivered[sub] = (event.get("epoch"), seq)
        return self.deliver(event["text"], Kind.STATE if key else Kind.DROPPABLE, key, label, backlog)

    def snapshot(self, sub: Sub, texts: list[str], backlog: int = 0) -> list[Action]:
        """The state fetched for a subscription, sent unless the client left it meanwhile."""
        if sub not in self.subscriptions:
            return []
        if isinstance(sub, UserSub):
            return [action for text in texts for action in self.deliver(text, Kind.RELIABLE, None, "snapshot", backlog)]
        key = protocol.conflation_key(protocol.MESSAGE_TYPE_OF_STREAM[sub.stream], sub.symbol)
        known = self.delivered.get(sub)
        for text in texts:  # the state sent may be newer than the position the ack gave
            seq = protocol.seq_of(text)
            if known is not None and seq is not None and seq > known[1]:
                self.delivered[sub] = known = (known[0], seq)
        return [action for text in texts for action in self.deliver(text, Kind.STATE, key, "snapshot", backlog)]

    def reply(self, message: dict, backlog: int = 0) -> list[Action]:
        """An answer to the client (acks, pongs, errors, heartbeats): never dropped."""
        return self.deliver(protocol.encode(message), Kind.RELIABLE, None, message["type"], backlog)

    def error(self, exc: ProtocolError) -> list[Action]:
        metrics.ERRORS.labels(code=str(exc.code)).inc()
        return self.reply(protocol.error_from(exc))

    def deliver(self, text: str, kind: Kind, key: str | None, label: str, backlog: int) -> list[Action]:
        """Write now while the client keeps up; otherwise queue in the bounded outbox and drain later."""
        if self.closed:
            return []
        if not self.outbox and backlog < flow.HIGH_WATER:
            return [Send(text, label)]
        dropped, conflated = self.outbox.dropped, self.outbox.conflated
        try:
            self.outbox.put(text, kind, key)
        except SlowConsumer:
            metrics.SLOW_CONSUMER_CLOSES.inc()
            self.outbox = Outbox(1)  # release what was queued: the client will reload state
            return self._close_now(Code.SLOW_CONSUMER, "Client too slow: trading events would be lost; reconnect")
        if self.outbox.dropped > dropped:
            metrics.OUTBOX_DROPS.labels(type=label).inc(self.outbox.dropped - dropped)
        if self.outbox.conflated > conflated:
            metrics.OUTBOX_CONFLATIONS.labels(type=label).inc(self.outbox.conflated - conflated)
        if self.draining:
            return []
        self.draining = True
        return [Drain()]

    def drain(self, backlog: int) -> Send | float | None:
        """The next queued frame to write, seconds to wait for the socket, or None when all is written."""
        if self.closed or not self.outbox:
            self.draining = False
            return None
        if backlog > flow.LOW_WATER:
            return DRAIN_POLL_SECONDS
        if not self.batch:
            return Send(self.outbox.pop(), "queued")
        texts, size = [], 0
        while self.outbox and size < BATCH_MAX_BYTES:  # a frame a client can take in one read or so
            texts.append(self.outbox.pop())
            size += len(texts[-1])
        return _one_frame(texts)

    def sent(self, now: float) -> None:
        """The adapter wrote a frame (for the heartbeat's silence timer)."""
        self.last_sent = now

    # --- closing ----------------------------------------------------------------------------------

    def close(self, code: int, message: str) -> list[Action]:
        """An error frame with the code, then a close with the same code (browsers read both)."""
        if self.closed:
            return []
        metrics.ERRORS.labels(code=str(code)).inc()
        return [Send(protocol.encode(protocol.error(code, message)), "error"), *self._close_now(code, message)]

    def _close_now(self, code: int, reason: str) -> list[Action]:
        self.closed = True
        return [Close(code, reason[:120])]

    def end(self) -> list[Action]:
        """The socket is gone: leave every group (the adapter then forgets the connection)."""
        self.closed = True
        gone, self.subscriptions = list(self.subscriptions), frozenset()
        _count_subscriptions(gone, -1)
        revocations = [Leave(Revocations())] if self.user_id is not None else []
        return [*(Leave(sub) for sub in gone), *revocations]

    # --- the clock --------------------------------------------------------------------------------

    def next_deadline(self, now: float, wall: float) -> float:
        """Seconds until `tick` has something to do (a heartbeat or the token's expiry)."""
        heartbeat = self.last_sent + self.limits.heartbeat_interval - now
        expiry = float("inf") if self.expires_at is None else self.expires_at - wall
        return max(0.0, min(heartbeat, expiry))

    def tick(self, now: float, wall: float) -> list[Action]:
        """Close when the token has expired; send a heartbeat after a silence of the interval."""
        if self.closed:
            return []
        if self.expires_at is not None and wall >= self.expires_at:
            return self.close(Code.AUTH_FAILED, "Token expired: reconnect with a fresh access token")
        if self.outbox:
            self.last_sent = now  # frames are waiting to be written: not silent, and no heartbeat piles up
            return []
        if now >= self.last_sent + self.limits.heartbeat_interval:
            return self.reply(protocol.heartbeat())
        return []


def _one_frame(texts: list[str]) -> Send:
    """Already-encoded messages as one JSON array frame, without decoding or re-encoding them."""
    if len(texts) == 1:
        return Send(texts[0], "queued")
    return Send("[" + ",".join(texts) + "]", "batch", len(texts), tuple(texts))


def batched(actions: list[Action]) -> list[Action]:
    """Consecutive sends merged into one array frame (for a ?batch=1 connection); every other action
    keeps its place."""
    merged: list[Action] = []
    run: list[Send] = []
    size = 0
    for action in [*actions, None]:
        if isinstance(action, Send) and size < BATCH_MAX_BYTES:
            run.append(action)
            size += len(action.text)
            continue
        if len(run) == 1:
            merged.append(run[0])
        elif run:
            merged.append(_one_frame([send.text for send in run]))
        run, size = ([action], len(action.text)) if isinstance(action, Send) else ([], 0)
        if action is not None and not isinstance(action, Send):
            merged.append(action)
    return merged


DRAIN_POLL_SECONDS = 0.05
RESTART_MESSAGE = "Server restarting: reconnect (another instance serves you) and resume with since"
BATCH_MAX_BYTES = 64 * 1024  # Twisted gives no async signal for "buffer drained"


def market_sub_of(event: dict) -> MarketSub:
    """The subscription a market layer event belongs to."""
    return MarketSub(protocol.STREAM_OF_MESSAGE_TYPE.get(event.get("kind"), Stream.TICKER), event.get("symbol", ""))


def _name(sub: Sub) -> str:
    return sub.symbol if isinstance(sub, MarketSub) else sub.channel


def _ack(
    request: ChannelRequest | SymbolRequest,
    positions: dict[str, protocol.Position] | None = None,
    recovered: dict[str, bool] | None = None,
) -> dict:
    if isinstance(request, ChannelRequest):
        return protocol.channels_ack(request.subscribe, request.channels, positions, recovered)
    return protocol.symbols_ack(request, positions, recovered)


def _subs_of(request: ChannelRequest | SymbolRequest) -> list[Sub]:
    if isinstance(request, ChannelRequest):
        return [UserSub(channel) for channel in request.channels]
    return [MarketSub(request.stream, symbol) for symbol in request.symbols]


def _has_position(sub: Sub) -> bool:
    """Trading channels and every market stream are numbered: their ack carries a position."""
    return isinstance(sub, UserSub | MarketSub)


def _count_subscriptions(subs: list[Sub], delta: int) -> None:
    for sub in subs:
        if isinstance(sub, MarketSub):
            metrics.SUBSCRIPTIONS.labels(channel=str(sub.stream), symbol=sub.symbol).inc(delta)
        elif isinstance(sub, UserSub):
            metrics.SUBSCRIPTIONS.labels(channel=sub.channel, symbol="").inc(delta)


def _has_snapshot(sub: Sub) -> bool:
    """Market state streams and trading channels have a current state; trades and risk alerts do not."""
    if isinstance(sub, MarketSub):
        return sub.stream in protocol.STATE_STREAMS
    return sub.channel in protocol.SNAPSHOT_CHANNELS
