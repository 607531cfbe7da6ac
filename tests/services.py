"""Real servers for the tests: Debian's ``redis-server`` and ``nginx``, on 127.0.0.1.

Each test starts its own instance on a free port and stops it. Without the binary a
test skips, saying why; under CI (``CI`` set, as ``.ci/run`` does) it fails instead,
so that a CI machine that lost the package can't turn the tests into silent skips,
unless ``ANYWS_TESTS_NO_REDIS`` or ``ANYWS_TESTS_NO_NGINX`` gives the reason
(``.ci/run`` sets them when it can't install the package). As for microsocks in
tests/test_proxy.py.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


#: How long a server may take to listen.
START_TIMEOUT = 10.0


def require_binary(name: str, package: str) -> str:
    """The path of ``name``; else skip, or fail under CI (see the module docstring)."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is not None:
        return path
    variable = f"ANYWS_TESTS_NO_{package.split('-')[0].upper()}"
    if reason := os.environ.get(variable):
        pytest.skip(reason)
    message = f"{name} isn't installed (apt-get install {package})"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; under CI these tests must run, see .ci/run")
    pytest.skip(message)


def free_port() -> int:
    """A port free now on 127.0.0.1 (another process could take it before it's used)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[bytes], name: str) -> None:
    """Poll until something accepts on ``port``; fail if ``process`` exits first."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            if process.poll() is not None:
                pytest.fail(f"{name} exited with {process.returncode}")
            if time.monotonic() > deadline:
                pytest.fail(f"{name} didn't listen on port {port} within {START_TIMEOUT} s")
            time.sleep(0.02)
        else:
            return


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:  # pragma: no cover
            process.kill()
            process.wait()


def start_redis(port: int) -> subprocess.Popen[bytes]:
    """Start a redis-server on 127.0.0.1:``port``, without persistence; wait until it listens."""
    binary = require_binary("redis-server", "redis-server")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(port, process, "redis-server")
    except BaseException:
        stop(process)
        raise
    return process


@contextmanager
def redis_server() -> Iterator[str]:
    """Run a redis-server on a free port until the block ends; give its URL."""
    port = free_port()
    process = start_redis(port)
    try:
        yield f"redis://127.0.0.1:{port}"
    finally:
        stop(process)


NGINX_MAIN = """\
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir}; proxy_temp_path {dir}; fastcgi_temp_path {dir};
    uwsgi_temp_path {dir}; scgi_temp_path {dir};
    include {dir}/site.conf;
}}
"""


@contextmanager
def nginx(site: str, port: int, directory: Path) -> Iterator[None]:
    """Run nginx with the ``site`` configuration (listening on ``port``) until the block ends."""
    binary = require_binary("nginx", "nginx-light")
    (directory / "site.conf").write_text(site)
    (directory / "nginx.conf").write_text(NGINX_MAIN.format(dir=directory))
    command = [binary, "-c", str(directory / "nginx.conf"), "-e", str(directory / "e.log")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, process, "nginx")
        yield
    finally:
        stop(process)
