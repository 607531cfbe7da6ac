"""Many processes on one port: pre-fork workers (examples/scale/workers.py), and two
worker processes behind a real nginx with the configuration of docs/howto/nginx.md.

The server processes run the backend of the test, and the clients too; asyncio and
trio (not uvloop too: these tests are about processes, and processes take time).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import anyio
import pytest

from anyws import ConnectionClosedError, ConnectionClosedOK, connect
from tests.conftest import BACKENDS, MS
from tests.services import free_port, nginx
from tests.test_docs_examples import EXAMPLES, start_server


TIMEOUT = 10_000 * MS

pytestmark = [
    pytest.mark.parametrize(
        "anyio_backend",
        [pytest.param(name, id=name) for name in ("asyncio", "trio") if name in BACKENDS],
        indirect=True,
    ),
    pytest.mark.skipif(os.name != "posix", reason="signals and inherited sockets: POSIX"),
]


async def test_prefork_workers(anyio_backend_name: str) -> None:
    """Workers share the parent's socket; a dead one is restarted; SIGTERM closes with 1001."""
    with start_server("scale/workers.py", "--workers", "2", backend=anyio_backend_name) as (
        supervisor,
        uri,
    ):
        started = {int(supervisor.expect(r"worker (\d+) started").group(1)) for _ in range(2)}
        assert len(started) == 2
        with anyio.fail_after(TIMEOUT):
            async with connect(uri) as ws:
                greeting = str(await ws.recv())
                pid = int(greeting.removeprefix("worker "))
                assert pid in started
                await ws.send("hello")
                assert await ws.recv() == "hello"
                os.kill(pid, signal.SIGKILL)
                with pytest.raises(ConnectionClosedError):
                    await ws.recv()
        assert supervisor.expect(r"worker (\d+) died \((-?\d+)\); restarting").groups() == (
            str(pid),
            str(-signal.SIGKILL),
        )
        restarted = int(supervisor.expect(r"worker (\d+) started").group(1))
        alive = (started - {pid}) | {restarted}
        with anyio.fail_after(TIMEOUT):
            async with connect(uri) as first, connect(uri) as second:
                for ws in (first, second):
                    assert int(str(await ws.recv()).removeprefix("worker ")) in alive
                supervisor.popen.terminate()
                for ws in (first, second):
                    with pytest.raises(ConnectionClosedOK) as closed:
                        await ws.recv()
                    assert closed.value.rcvd is not None
                    assert closed.value.rcvd.code == 1001
        supervisor.expect("^stopped$")
        assert supervisor.wait() == 0


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="waits on process descriptors")
async def test_prefork_workers_stop_with_a_killed_parent(anyio_backend_name: str) -> None:
    """A supervisor killed with SIGKILL (no chance to stop them) leaves no worker running."""
    with start_server("scale/workers.py", "--workers", "2", backend=anyio_backend_name) as (
        supervisor,
        _,
    ):
        workers = {int(supervisor.expect(r"worker (\d+) started").group(1)) for _ in range(2)}
        descriptors = [os.pidfd_open(pid) for pid in workers]
        try:
            supervisor.popen.kill()
            with anyio.fail_after(TIMEOUT):
                for descriptor in descriptors:
                    await anyio.wait_readable(descriptor)  # readable once it exited
        finally:
            for descriptor in descriptors:
                os.close(descriptor)


async def test_two_workers_behind_nginx(anyio_backend_name: str, tmp_path: Path) -> None:
    """docs/howto/nginx.md's configuration balancing two processes of examples/nginx/app.py.

    Messages, pings and close codes go through, both ways; nginx spreads connections
    over both processes (round robin); the client's address reaches the handler in
    ``X-Forwarded-For``; a worker's shutdown reaches its clients as 1001.
    """
    backend = anyio_backend_name
    with (
        start_server("nginx/app.py", backend=backend) as (worker1, uri1),
        start_server("nginx/app.py", backend=backend) as (worker2, uri2),
    ):
        ports = [int(uri.rsplit(":", 1)[1].strip("/")) for uri in (uri1, uri2)]
        nginx_port = free_port()
        site = (EXAMPLES / "nginx" / "anyws.conf").read_text()
        site = site.replace("listen 443 ssl;", f"listen 127.0.0.1:{nginx_port};")
        site = site.replace("server 127.0.0.1:8765;", f"server 127.0.0.1:{ports[0]};")
        site = site.replace("server 127.0.0.1:8766;", f"server 127.0.0.1:{ports[1]};")
        with nginx(site, nginx_port, tmp_path), anyio.fail_after(TIMEOUT):
            proxied = f"ws://127.0.0.1:{nginx_port}/ws/"
            # A forged X-Forwarded-For: nginx appends the real address, which wins.
            forged = {"X-Forwarded-For": "198.51.100.1"}
            async with (
                connect(proxied, additional_headers=forged) as first,
                connect(proxied) as second,
            ):
                for ws in (first, second):
                    await ws.send("hi")
                    assert await ws.recv() == "127.0.0.1 said: hi"
                    await ws.send(b"\x00\xff")  # binary: the app answers text only
                    pong = await ws.ping(b"through nginx")
                    assert await pong >= 0
                # Round robin: one connection per worker. Which one, each worker's
                # shutdown tells: its client gets 1001, the other one an answer.
                worker1.popen.terminate()
                # In a thread: the clients must answer the closing handshake meanwhile.
                assert await anyio.to_thread.run_sync(worker1.wait) == 0
                closed_codes, answers = [], []
                for ws in (first, second):
                    try:
                        await ws.send("still here?")
                        answers.append(await ws.recv())
                    except ConnectionClosedOK as exc:
                        closed_codes.append(exc.rcvd.code if exc.rcvd else None)
                        survivor = second if ws is first else first
                assert closed_codes == [1001]
                assert answers == ["127.0.0.1 said: still here?"]
                # A close code and reason from the client reach the app and come back.
                await survivor.close(4000, "bye")
                assert survivor.close_code == 4000
                assert survivor.close_reason == "bye"
            assert worker2.popen.poll() is None
