"""Broadcast across processes through Redis pub/sub: `RedisHub`.

Strategy: each process holds one Redis connection subscribed to the channels that
its own connections subscribed to, no more: the first local subscriber of a channel
subscribes the process, the last one to leave unsubscribes it. A message published
to a channel reaches each subscribed process once, and that process hands it to
`broadcast`, which frames it once and queues it on every local subscriber (slow
consumers are evicted there). Publishing is a plain ``PUBLISH`` from any process,
subscribed or not.

The subscribing task reconnects with exponential backoff when the Redis connection
is lost, and subscribes again to what is wanted then. Redis pub/sub keeps nothing for
absent subscribers: what is published while a process is disconnected never reaches
that process's connections.

Which channels Redis should have (``_subscribers``) changes at once, without
waiting; what Redis has (``_redis_channels``) follows under ``_lock``, in `_sync`,
so that concurrent subscriptions and the reconnection can't interleave their
``SUBSCRIBE`` and ``UNSUBSCRIBE`` commands. coredis runs on anyio, so all of this
runs on asyncio and trio alike.
"""

from __future__ import annotations

import logging
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from ._broadcast import broadcast
from ._connection import Connection, DataLike
from .sansio._protocol import LoggerLike


if TYPE_CHECKING:
    import coredis


__all__ = ["RedisHub"]

#: The longest `RedisHub` waits for Redis to acknowledge an ``UNSUBSCRIBE`` as a
#: subscription ends (shielded from cancellation, so it must be bounded).
_UNSUBSCRIBE_TIMEOUT = 5.0


def _import_coredis() -> Any:
    try:
        import coredis
    except ImportError as exc:
        raise ImportError("RedisHub requires coredis: pip install 'anyws[redis]'") from exc
    return coredis


def _describe(exc: BaseException) -> str:
    """One line for a failure that may come wrapped in exception groups."""
    inner = getattr(exc, "exceptions", None)  # an exception group, also on Python 3.10
    while isinstance(inner, tuple) and len(inner) == 1 and isinstance(inner[0], BaseException):
        exc = inner[0]
        inner = getattr(exc, "exceptions", None)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class RedisHub:
    """Broadcast to WebSocket connections in every process, through Redis pub/sub.

    ``async with RedisHub(url) as hub:`` connects to Redis; then a handler
    subscribes its connection to named channels with ``async with
    hub.subscribe(websocket, "room"):``, and any process publishes with ``await
    hub.publish("room", message)``. Each process gets each message from Redis
    once, and sends it to its own subscribers with `broadcast`: framed once,
    slow consumers closed with 1013 as `broadcast` describes (``drain_timeout``
    and ``max_buffer`` are passed on).

    When the Redis connection is lost, the hub logs a warning, reconnects with
    exponential backoff (from ``reconnect_delay`` up to ``max_reconnect_delay``,
    doubling), logs when it is back, and subscribes again. Messages published
    meanwhile don't reach this process's connections: Redis pub/sub keeps
    nothing for absent subscribers. Subscribing and unsubscribing work while
    disconnected; they take effect on reconnection.

    Needs ``anyws[redis]`` (coredis). Runs on asyncio and trio.

    Args:
        url: The Redis server, as a ``redis://`` (or ``rediss://``,
            ``unix://``) URL that coredis understands.
        text: Send messages as text frames (the default: published `str` and
            UTF-8 bytes; other bytes are dropped with a warning) or, with
            ``False``, as binary frames.
        drain_timeout, max_buffer: As for `broadcast`.
        reconnect_delay: Seconds before the first reconnection attempt.
        max_reconnect_delay: The longest wait between two attempts.
        logger: The hub's logger; ``anyws.redis`` by default.

    Raises:
        ImportError: coredis isn't installed.
    """

    def __init__(
        self,
        url: str = "redis://localhost:6379",
        *,
        text: bool = True,
        drain_timeout: float | None = 10,
        max_buffer: int | None = 2**20,
        reconnect_delay: float = 0.5,
        max_reconnect_delay: float = 30,
        logger: LoggerLike | None = None,
    ) -> None:
        self._coredis = _import_coredis()
        self.url = url
        self.text = text
        self.drain_timeout = drain_timeout
        self.max_buffer = max_buffer
        self.reconnect_delay = reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        self.logger: LoggerLike = logger or logging.getLogger("anyws.redis")
        #: Channel -> local subscribers, each with how many subscriptions it holds.
        self._subscribers: dict[bytes, dict[Connection, int]] = {}
        #: The channels the Redis connection is subscribed to.
        self._redis_channels: set[bytes] = set()
        self._pubsub: coredis.patterns.pubsub.PubSub[bytes] | None = None
        self._client: coredis.Redis[bytes] | None = None
        self._lock = anyio.Lock()
        self._exit_stack: AsyncExitStack | None = None
        self._startup_error: BaseException | None = None

    # Running -------------------------------------------------------------

    async def __aenter__(self) -> RedisHub:
        """Connect to Redis and start the subscribing task.

        Raises:
            OSError: Redis can't be reached (the coredis error as ``__cause__``).
            RuntimeError: The hub is running already.
        """
        if self._exit_stack is not None:
            raise RuntimeError("RedisHub is running already")
        async with AsyncExitStack() as stack:
            client = self._coredis.Redis.from_url(self.url, decode_responses=False)
            await stack.enter_async_context(client)
            self._client = client
            stack.callback(self._forget_client)
            task_group = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(task_group.cancel_scope.cancel)  # runs before the group exits
            self._startup_error = None
            await task_group.start(self._subscribe_forever)
            if self._startup_error is None:
                self._exit_stack = stack.pop_all()
        # Raised out here, not through the task group: no exception group.
        if self._startup_error is not None:
            error, self._startup_error = self._startup_error, None
            raise OSError(f"can't connect to Redis at {self.url}: {_describe(error)}") from error
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the subscribing task and close the Redis connections."""
        stack, self._exit_stack = self._exit_stack, None
        assert stack is not None, "RedisHub exited without being entered"
        await stack.aclose()

    def _forget_client(self) -> None:
        self._client = None
        self._pubsub = None
        self._redis_channels.clear()

    async def _subscribe_forever(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Hold the pub/sub connection, fan messages out, reconnect when it's lost."""
        coredis = self._coredis
        started = False
        delay = self.reconnect_delay
        while True:
            connected = False
            try:
                assert self._client is not None
                async with self._client.pubsub(
                    ignore_subscribe_messages=True,
                    retry_policy=coredis.retry.NoRetryPolicy(),
                ) as pubsub:
                    async with self._lock:
                        self._pubsub = pubsub
                        self._redis_channels.clear()
                        if self._subscribers:
                            await pubsub.subscribe(*self._subscribers)
                            self._redis_channels.update(self._subscribers)
                    connected = True
                    if started:
                        self.logger.info("reconnected to Redis at %s", self.url)
                    else:
                        started = True
                        task_status.started()
                    delay = self.reconnect_delay
                    while True:
                        message = await pubsub.get_message()
                        if message is not None and message["type"] == "message":
                            self._deliver(message["channel"], message["data"])
            except Exception as exc:  # a ConnectionError, maybe in an exception group
                self._pubsub = None
                self._redis_channels.clear()
                if not started:
                    self._startup_error = exc
                    task_status.started()
                    return
                self.logger.warning(
                    "%s Redis at %s (%s); reconnecting in %.1f s",
                    "lost connection to" if connected else "can't reconnect to",
                    self.url,
                    _describe(exc),
                    delay,
                )
            await anyio.sleep(delay)
            delay = min(delay * 2, self.max_reconnect_delay)

    def _deliver(self, channel: bytes | str, data: bytes | str | int) -> None:
        """Send a message from Redis to this process's subscribers of ``channel``."""
        if isinstance(channel, str):  # pragma: no cover (decode_responses is off)
            channel = channel.encode()
        subscribers = self._subscribers.get(channel)
        if not subscribers:
            return
        payload = data.encode() if isinstance(data, str) else data
        if not isinstance(payload, bytes):  # pragma: no cover (messages are bulk strings)
            return
        if self.text:
            try:
                payload.decode()
            except UnicodeDecodeError:
                self.logger.warning(
                    "dropped a message of channel %s: not UTF-8 text",
                    channel.decode(errors="backslashreplace"),
                )
                return
        broadcast(
            list(subscribers),
            payload,
            text=self.text,
            drain_timeout=self.drain_timeout,
            max_buffer=self.max_buffer,
        )

    async def _sync(self) -> None:
        """Make Redis's subscriptions those that local connections want.

        Failures are left to the reconnection, which subscribes again anyway.
        """
        async with self._lock:
            pubsub = self._pubsub
            if pubsub is None:
                return
            wanted = set(self._subscribers)
            try:
                if add := wanted - self._redis_channels:
                    await pubsub.subscribe(*add)
                    self._redis_channels |= add
                if remove := self._redis_channels - wanted:
                    await pubsub.unsubscribe(*remove)
                    self._redis_channels -= remove
            except Exception as exc:
                self.logger.debug("Redis subscriptions not updated: %s", _describe(exc))

    # Subscribing and publishing ------------------------------------------

    def subscribe(
        self, connection: Connection, *channels: str
    ) -> AbstractAsyncContextManager[None]:
        """Subscribe ``connection`` to ``channels``: ``async with hub.subscribe(ws, "a"):``.

        Entering waits until Redis has acknowledged the subscription (when the
        hub is connected), so that what is published afterwards reaches
        ``connection``. Leaving the block unsubscribes it, and unsubscribes the
        process from Redis for channels that no local connection wants any
        longer; nothing is left behind when the connection's handler ends,
        however it ends. A connection may hold several subscriptions, also to
        the same channel.

        Raises:
            RuntimeError: The hub isn't running (use ``async with``).

        Cancellation while entering leaves the connection unsubscribed; leaving
        is shielded from cancellation (and bounded).
        """
        return _Subscription(self, connection, [channel.encode() for channel in channels])

    def _add(self, connection: Connection, channels: list[bytes]) -> None:
        if self._exit_stack is None:
            raise RuntimeError("RedisHub isn't running: use async with RedisHub(...)")
        for channel in channels:
            subscribers = self._subscribers.setdefault(channel, {})
            subscribers[connection] = subscribers.get(connection, 0) + 1

    def _remove(self, connection: Connection, channels: list[bytes]) -> None:
        for channel in channels:
            subscribers = self._subscribers.get(channel)
            if subscribers is None or connection not in subscribers:  # pragma: no cover
                continue
            subscribers[connection] -= 1
            if not subscribers[connection]:
                del subscribers[connection]
                if not subscribers:
                    del self._subscribers[channel]

    async def publish(self, channel: str, message: DataLike) -> int:
        """Publish ``message`` to ``channel``, for the subscribers of every process.

        A `str` is sent as UTF-8, bytes-like objects as they are. Returns the
        number of Redis subscribers that got it: processes, not connections.

        Raises:
            TypeError: ``message`` is neither a `str` nor bytes-like.
            OSError: Redis can't be reached (the coredis error as ``__cause__``).
            RuntimeError: The hub isn't running (use ``async with``).

        Cancellation may leave the message published or not.
        """
        if isinstance(message, str):
            payload = message.encode()
        elif isinstance(message, bytes | bytearray | memoryview):
            payload = bytes(message)
        else:
            raise TypeError("data must be str or bytes")
        client = self._client
        if client is None or self._exit_stack is None:
            raise RuntimeError("RedisHub isn't running: use async with RedisHub(...)")
        errors = (self._coredis.exceptions.ConnectionError, TimeoutError, OSError)
        try:
            return int(await client.publish(channel, payload))
        except errors as exc:
            raise OSError(f"can't publish to Redis at {self.url}: {_describe(exc)}") from exc

    def subscribers(self, channel: str) -> int:
        """How many connections of this process are subscribed to ``channel``."""
        return len(self._subscribers.get(channel.encode(), ()))


class _Subscription(AbstractAsyncContextManager[None]):
    """What `RedisHub.subscribe` returns: an async context manager."""

    def __init__(self, hub: RedisHub, connection: Connection, channels: list[bytes]) -> None:
        self._hub = hub
        self._connection = connection
        self._channels = channels

    async def __aenter__(self) -> None:
        self._hub._add(self._connection, self._channels)
        try:
            await self._hub._sync()
        except BaseException:
            await self._leave()
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._leave()

    async def _leave(self) -> None:
        self._hub._remove(self._connection, self._channels)
        with anyio.CancelScope(shield=True), anyio.move_on_after(_UNSUBSCRIBE_TIMEOUT):
            await self._hub._sync()
