"""The server under abuse of its accept loop and TLS handshake (issue 14).

- Out of file descriptors: with ``RLIMIT_NOFILE`` lowered so that ``accept()`` fails
  with EMFILE, the server keeps running, logs the outage once (not once per retry),
  and serves again when descriptors free up. The server runs in a subprocess, so that
  lowering the limit doesn't affect the test process.
- TLS: a client that stalls inside the TLS handshake, or sends garbage instead of a
  ClientHello, is dropped within ``open_timeout`` without a traceback, while others
  are served.

On every backend; TLS over anyws' asyncio transport's and anyio's TCP.
"""

from __future__ import annotations

import base64
import logging
import os
import select
import socket
import ssl
import subprocess
import sys
import time

import anyio
import anyio.abc
import pytest

import anyws

from .conftest import BACKENDS, MS


SERVER_SCRIPT = r"""
import logging, os, resource, sys

import anyio
import anyws

backend = sys.argv[1]
logging.basicConfig(stream=sys.stdout, level=logging.WARNING, format="%(levelname)s %(message)s")


async def echo(websocket):
    async for message in websocket:
        await websocket.send(message)


def fill_descriptors():
    # Lower the limit to the highest descriptor open now, and take those below it.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 1, hard))
    held = []
    while True:
        try:
            held.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            return soft, hard, held


async def main():
    async with anyws.serve(echo, "127.0.0.1", 0, ping_interval=None) as server:
        print("port", server.port, flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)  # "fill"
        soft, hard, held = fill_descriptors()
        print("full", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)  # "free"
        # Not a synchronisation: the length of the outage, several retries long.
        await anyio.sleep(0.5)
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        print("freed", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)  # "exit"


if backend == "asyncio+uvloop":
    import uvloop
    anyio.run(main, backend="asyncio", backend_options={"loop_factory": uvloop.new_event_loop})
else:
    anyio.run(main, backend=backend)
"""


def _read_line(process: subprocess.Popen[str], output: list[str], deadline: float) -> str:
    """The next line of the server's output, within the deadline."""
    assert process.stdout is not None
    remaining = deadline - time.monotonic()
    ready, _, _ = select.select([process.stdout], [], [], max(remaining, 0))
    if not ready:
        pytest.fail(f"the server said nothing in time; so far: {output}")
    line = process.stdout.readline()
    if not line:
        pytest.fail(f"the server exited; its output: {output}")
    output.append(line.rstrip("\n"))
    return output[-1]


def _upgrade_request(port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/fd")
@pytest.mark.parametrize("backend", list(BACKENDS))
def test_accept_survives_running_out_of_file_descriptors(backend: str) -> None:
    deadline = time.monotonic() + 30_000 * MS
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER_SCRIPT, backend],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    assert process.stdin is not None
    try:
        first = _read_line(process, output, deadline)
        assert first.startswith("port ")
        port = int(first.split()[1])
        process.stdin.write("fill\n")
        process.stdin.flush()
        assert _read_line(process, output, deadline) == "full"
        # The kernel completes the TCP handshake; the server's accept() fails.
        client = socket.create_connection(("127.0.0.1", port), timeout=30)
        with client:
            client.sendall(_upgrade_request(port))
            line = _read_line(process, output, deadline)
            assert line.startswith("ERROR accept failed, retrying every 100 ms: [Errno 24]")
            process.stdin.write("free\n")
            process.stdin.flush()
            assert _read_line(process, output, deadline) == "freed"
            # Once descriptors are back, the waiting client is served.
            response = b""
            while b"\r\n\r\n" not in response:
                chunk = client.recv(4096)
                assert chunk, response
                response += chunk
            assert response.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        # And so are new clients.
        with socket.create_connection(("127.0.0.1", port), timeout=30) as other:
            other.sendall(_upgrade_request(port))
            assert other.recv(4096).startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        process.stdin.write("exit\n")
        process.stdin.flush()
        rest, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output += rest.splitlines()
    # One line for the outage, however many accepts failed (five or so, 100 ms
    # apart), and at most one when it ended.
    errors = [line for line in output if line.startswith("ERROR")]
    assert errors == [output[2]], output
    again = [line for line in output if line.startswith("WARNING")]
    assert again in ([], ["WARNING accepting connections again"]), output
    assert process.returncode == 0, output


# TLS ---------------------------------------------------------------------------------

OPEN_TIMEOUT = 500 * MS


def _client_hello(client_ssl_context: ssl.SSLContext) -> bytes:
    """The first flight of a TLS client: a ClientHello."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_ssl_context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


async def _dropped(stream: anyio.abc.SocketStream) -> None:
    """Read until the server closes the connection."""
    while True:
        try:
            await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            return


@pytest.mark.parametrize("abuse", ["stall", "partial-hello", "garbage", "http"])
async def test_tls_handshake_abuse(
    abuse: str,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="anyws")

    async def echo(websocket: anyws.ServerConnection) -> None:
        async for message in websocket:
            await websocket.send(message)

    async with (
        anyws.serve(
            echo, "127.0.0.1", 0, ssl=server_ssl_context, open_timeout=OPEN_TIMEOUT
        ) as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as abuser,
    ):
        if abuse == "partial-hello":
            await abuser.send(_client_hello(client_ssl_context)[:20])
        elif abuse == "garbage":
            await abuser.send(os.urandom(64))
        elif abuse == "http":
            await abuser.send(_upgrade_request(server.port))
        # Meanwhile, others are served.
        async with anyws.connect(
            f"wss://localhost:{server.port}", ssl=client_ssl_context
        ) as websocket:
            await websocket.send("hello")
            assert await websocket.recv() == "hello"
        with anyio.fail_after(OPEN_TIMEOUT + 5_000 * MS):
            await _dropped(abuser)
    for record in caplog.records:
        assert record.exc_info is None, record.getMessage()
        assert record.levelno < logging.ERROR, record.getMessage()
