"""Tasks of a connection's own: `Connection.start_soon` and `Connection.start`.

Strategy: a task started on a connection runs in the connection's task group
(the one that its ``async with``, or the server's handler scope, owns), inside a
cancel scope of its own, which the connection cancels when the connection is
over for the application: when `recv` reports the close (the receive loop
ended, whichever side closed), when `close` returns, and when the ``async
with`` (the handler) ends. Not as soon as the closing handshake completes:
messages that arrived before it are still being received, maybe by a task
(a relay), which must not lose them. The task never raises into the task group,
so no `ExceptionGroup` forms:

- `ConnectionClosed` ends the task quietly: the connection's state tells the story;
- any other exception is kept (the first one; later ones are logged), closes the
  connection with 1011, and cancels the body of the ``async with``, which then
  raises it as it is (see `_Running` in _connection.py). On a server, the body
  is the handler, and the server logs the exception as a handler's.

Before ``task_status.started()``, `Connection.start` behaves like anyio's
``TaskGroup.start``: an exception goes to its caller, not to the
connection.

The state is four slots; a connection that starts no task
pays for them and for the body's cancel scope (about 0.6 KiB on asyncio).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from .exceptions import ConnectionClosed


if TYPE_CHECKING:
    from .sansio import Protocol
    from .sansio._protocol import LoggerLike


__all__ = ["TaskOwner"]


class _TaskStatus(anyio.abc.TaskStatus[Any]):
    """Records whether the task called ``started()``, for `Connection.start`."""

    __slots__ = ("_status", "started_called")

    def __init__(self, status: anyio.abc.TaskStatus[Any]) -> None:
        self._status = status
        self.started_called = False

    def started(self, value: Any = None) -> None:
        self._status.started(value)
        self.started_called = True


class TaskOwner:
    """The task-starting half of `Connection` (a mixin: no state of its own until used)."""

    __slots__ = ("_body_scope", "_task_exc", "_task_group", "_task_scopes", "_tasks_cancelled")

    _task_scopes: set[anyio.CancelScope] | None
    _task_exc: Exception | None
    _body_scope: anyio.CancelScope | None
    _tasks_cancelled: bool

    _task_group: anyio.abc.TaskGroup | None
    protocol: Protocol
    logger: LoggerLike

    if TYPE_CHECKING:

        def _closed_exc(self) -> ConnectionClosed: ...
        def _start_closing(self, code: int, reason: str) -> None: ...

    def _init_tasks(self) -> None:
        #: The connection's task group, once it runs (Connection._start sets it).
        self._task_group = None
        #: The scopes of the tasks that run; created with the first one.
        self._task_scopes = None
        #: The first exception that a task raised (other than ConnectionClosed).
        self._task_exc = None
        #: The cancel scope of the ``async with`` body; `_Running` sets it.
        self._body_scope = None
        #: Whether the tasks were cancelled for good (the connection closed).
        self._tasks_cancelled = False

    def start_soon(
        self, func: Callable[..., Awaitable[Any]], *args: object, name: object = None
    ) -> None:
        """Start a task that lives no longer than the connection.

        The task runs in the connection's task group, beside its reader. It is
        cancelled once the connection is closed, whichever side closed it, and
        the application saw it: when `recv` (or ``async for``) reports the
        close, when `close` returns, or when the ``async with`` of `connect`
        (the handler, with `serve`) ends.
        `ConnectionClosed` raised in the task ends it quietly. Any other
        exception closes the connection with 1011 and cancels the ``async with``
        body, which then raises that very exception (never an `ExceptionGroup`);
        on a server, it is logged as a handler's exception is.

        Args:
            func: The coroutine function to run as ``func(*args)``.
            name: The task's name, for debugging.

        Raises:
            RuntimeError: The connection isn't running yet (in ``process_request``).
            ConnectionClosed: The connection is closed, and `recv` reported it
                or `close` returned.
        """
        task_group = self._tasks_group()
        task_group.start_soon(self._run_task, func, args, None, name=name)

    async def start(
        self,
        func: Callable[..., Awaitable[Any]],
        *args: object,
        name: object = None,
    ) -> Any:
        """Start a task as `start_soon` does, and wait until it calls ``task_status.started()``.

        ``func`` is called as ``func(*args, task_status=task_status)``, as with
        anyio's ``TaskGroup.start``; the value given to
        ``task_status.started(value)`` is returned.

        Raises:
            RuntimeError: The connection isn't running yet, or the task returned
                without calling ``task_status.started()``.
            ConnectionClosed: The connection is closed.
            Exception: Whatever the task raised before calling
                ``task_status.started()`` (`ConnectionClosed` included).

        Cancellation cancels the task if it hasn't called ``started()`` yet.
        """
        task_group = self._tasks_group()
        return await task_group.start(self._run_task, func, args, name=name)

    def _tasks_group(self) -> anyio.abc.TaskGroup:
        task_group = self._task_group
        if task_group is None:
            raise RuntimeError("the connection isn't running: start tasks once it is open")
        if self._tasks_cancelled:
            raise self._closed_exc()
        return task_group

    async def _run_task(
        self,
        func: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        task_status: anyio.abc.TaskStatus[Any] | None,
    ) -> None:
        scope = anyio.CancelScope()
        scopes = self._task_scopes
        if scopes is None:
            scopes = self._task_scopes = set()
        scopes.add(scope)
        if self._tasks_cancelled:
            scope.cancel()
        status = None if task_status is None else _TaskStatus(task_status)
        try:
            with scope:
                if status is None:
                    await func(*args)
                else:
                    await func(*args, task_status=status)
        except ConnectionClosed:
            if status is not None and not status.started_called:
                raise  # to the caller of start()
        except Exception as exc:
            if status is not None and not status.started_called:
                raise  # to the caller of start()
            self._task_failed(exc)
        finally:
            scopes.discard(scope)

    def _task_failed(self, exc: Exception) -> None:
        """A task raised: keep the exception, close with 1011, cancel the body."""
        if self._task_exc is not None:
            self.logger.error("connection task failed", exc_info=exc)
            return
        self._task_exc = exc
        self._start_closing(1011, "")  # what close(1011) does, without waiting
        if self._body_scope is not None:
            self._body_scope.cancel()

    def _cancel_tasks(self) -> None:
        """Cancel the tasks, and those that start later: the connection is closed."""
        self._tasks_cancelled = True
        scopes = self._task_scopes
        if scopes:
            for scope in scopes:
                scope.cancel()
