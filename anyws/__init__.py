"""anyws: WebSocket client and server for structured concurrency, on anyio.

One code base serves trio and asyncio (uvloop included)::

    async def hello(uri: str) -> None:
        async with anyws.connect(uri) as websocket:
            await websocket.send("hello")
            print(await websocket.recv())
"""

from __future__ import annotations

from ._auth import basic_auth as basic_auth
from ._broadcast import broadcast as broadcast
from ._client import ClientConnection as ClientConnection, connect as connect
from ._connection import Connection as Connection, Data as Data, DataLike as DataLike
from ._objectstream import WebSocketAttribute as WebSocketAttribute
from ._reconnect import ConnectionAttempt as ConnectionAttempt, reconnect as reconnect
from ._redis import RedisHub as RedisHub
from ._routing import route as route
from ._server import Server as Server, ServerConnection as ServerConnection, serve as serve
from ._stats import ServerStats as ServerStats
from ._unix import unix_connect as unix_connect, unix_serve as unix_serve
from ._version import __version__ as __version__
from .exceptions import (
    ConcurrencyError as ConcurrencyError,
    ConnectionClosed as ConnectionClosed,
    ConnectionClosedError as ConnectionClosedError,
    ConnectionClosedOK as ConnectionClosedOK,
    DuplicateParameter as DuplicateParameter,
    InvalidHandshake as InvalidHandshake,
    InvalidHeader as InvalidHeader,
    InvalidHeaderFormat as InvalidHeaderFormat,
    InvalidHeaderValue as InvalidHeaderValue,
    InvalidMessage as InvalidMessage,
    InvalidOrigin as InvalidOrigin,
    InvalidParameterName as InvalidParameterName,
    InvalidParameterValue as InvalidParameterValue,
    InvalidProxy as InvalidProxy,
    InvalidProxyMessage as InvalidProxyMessage,
    InvalidProxyStatus as InvalidProxyStatus,
    InvalidState as InvalidState,
    InvalidStatus as InvalidStatus,
    InvalidUpgrade as InvalidUpgrade,
    InvalidURI as InvalidURI,
    NegotiationError as NegotiationError,
    PayloadTooBig as PayloadTooBig,
    ProtocolError as ProtocolError,
    ProxyError as ProxyError,
    SecurityError as SecurityError,
    WebSocketException as WebSocketException,
)
from .sansio import (
    Close as Close,
    CloseCode as CloseCode,
    Headers as Headers,
    Request as Request,
    Response as Response,
    State as State,
)


__all__ = [
    "ClientConnection",
    "Close",
    "CloseCode",
    "ConcurrencyError",
    "Connection",
    "ConnectionAttempt",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "Data",
    "DataLike",
    "DuplicateParameter",
    "Headers",
    "InvalidHandshake",
    "InvalidHeader",
    "InvalidHeaderFormat",
    "InvalidHeaderValue",
    "InvalidMessage",
    "InvalidOrigin",
    "InvalidParameterName",
    "InvalidParameterValue",
    "InvalidProxy",
    "InvalidProxyMessage",
    "InvalidProxyStatus",
    "InvalidState",
    "InvalidStatus",
    "InvalidURI",
    "InvalidUpgrade",
    "NegotiationError",
    "PayloadTooBig",
    "ProtocolError",
    "ProxyError",
    "RedisHub",
    "Request",
    "Response",
    "SecurityError",
    "Server",
    "ServerConnection",
    "ServerStats",
    "State",
    "WebSocketAttribute",
    "WebSocketException",
    "basic_auth",
    "broadcast",
    "connect",
    "reconnect",
    "route",
    "serve",
    "unix_connect",
    "unix_serve",
]
