"""A redis-server of the benchmark's own, on a free loopback port, and a minimal client for
the few commands the benchmark sends it (``INFO stats``, ``MGET``): RESP over a trio socket,
so reading a counter costs one command and no extra process.

Started as the tests start theirs: no persistence (``--save '' --appendonly no``), never
port 6379 (a Redis installed as a service may be there).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from ._common import free_port

_TRIES = 5  # free ports to try: another process may take one between the probe and the bind
_START_SECONDS = 10.0


class RespError(Exception):
    """Redis answered a command with an error reply."""


class RedisConnection:
    """One connection; ``command`` sends a command and returns its decoded reply."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def command(self, *args: str) -> Any:
        request = [f"*{len(args)}\r\n".encode()]
        for arg in args:
            data = arg.encode()
            request.append(b"$%d\r\n%s\r\n" % (len(data), data))
        await self._stream.send_all(b"".join(request))
        return await self._reply()

    async def _line(self) -> bytes:
        while (end := self._buffer.find(b"\r\n")) < 0:
            await self._more()
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        return line

    async def _more(self) -> None:
        data = await self._stream.receive_some(65536)
        if not data:
            raise ConnectionError("redis-server closed the connection")
        self._buffer += data

    async def _reply(self) -> Any:
        line = await self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            while len(self._buffer) < size + 2:
                await self._more()
            data = bytes(self._buffer[:size])
            del self._buffer[: size + 2]
            return data.decode()
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else [await self._reply() for _ in range(count)]
        raise RespError(f"unexpected reply {line[:40]!r}")


@asynccontextmanager
async def connect(port: int) -> AsyncIterator[RedisConnection]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        yield RedisConnection(stream)


async def info_counters(redis: RedisConnection) -> dict[str, int]:
    """The integer counters of ``INFO stats`` (``total_commands_processed``, …) and the calls
    of each command so far (``INFO commandstats``) as ``calls:<command>``, in one command."""
    text: str = await redis.command("INFO", "stats", "commandstats")
    counters: dict[str, int] = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if value.strip().isdigit():
            counters[name] = int(value)
        elif name.startswith("cmdstat_"):
            # cmdstat_get:calls=2,usec=2,usec_per_call=1.00,rejected_calls=0,failed_calls=0
            fields = dict(part.split("=", 1) for part in value.split(","))
            counters[f"calls:{name.removeprefix('cmdstat_')}"] = int(fields["calls"])
    return counters


@asynccontextmanager
async def open_redis_server() -> AsyncIterator[tuple[trio.Process, int]]:
    """A fresh redis-server (process, port) for the block; killed at the end."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (make test installs it with apt-get)")
    for _ in range(_TRIES):
        port = free_port()
        if port == 6379:
            continue
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"]
        process = await trio.lowlevel.open_process(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )
        try:
            if await _answers(port, process):
                yield process, port
                return
        finally:
            if process.returncode is None:
                process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()
    raise RuntimeError(f"redis-server did not start on any of {_TRIES} free ports")


async def _answers(port: int, process: trio.Process) -> bool:
    """True once redis-server answers PING on ``port``; False if it exited (port taken)."""
    with trio.fail_after(_START_SECONDS):
        while process.returncode is None:
            try:
                async with connect(port) as redis:
                    return bool(await redis.command("PING") == "PONG")
            except OSError:
                await trio.sleep(0.02)  # not listening yet; nothing to wait on but time
    return False
