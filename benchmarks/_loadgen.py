"""Load generator (its own process): POSTs N signed ~1 KB events over C keep-alive connections
(to each of the ``--port``s: event i goes to the (i mod number of ports)-th, round robin).

Speaks HTTP/1.1 through h11 on raw trio sockets, so the generator costs far less CPU per
request than the server it measures. A 503 is retried (after its Retry-After, capped) and
counted. Prints one JSON object: timings, status counts, ack latencies.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import statistics
import sys
import time

import h11
import trio

FILLER = "x" * 820  # brings the body to ~1 KB


def make_body(index: int) -> bytes:
    payload = {
        "type": "item",
        "id": f"item-{index}",
        "title": f"Item number {index}",
        "status": "open" if index % 3 else "closed",
        "sent_at": time.time(),
        "data": FILLER,
    }
    return json.dumps(payload, separators=(",", ":")).encode()


class _Connection:
    """One keep-alive HTTP/1.1 connection to one port, opened on first use and again after
    the server closed it (hypercorn closes one after 1,000 requests)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._stream: trio.SocketStream | None = None
        self._conn = h11.Connection(h11.CLIENT)

    async def exchange(self, request: h11.Request, body: bytes) -> tuple[int, float]:
        """Send one request; its status and Retry-After (capped at 1 s, 0 when absent)."""
        if self._stream is None:
            self._stream = await trio.open_tcp_stream(self.host, self.port)
            self._conn = h11.Connection(h11.CLIENT)
        stream, conn = self._stream, self._conn
        await stream.send_all(
            conn.send(request) + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
        )
        status = 0
        retry_after = 0.0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                if not data:
                    raise RuntimeError("server closed the connection")
                conn.receive_data(data)
            elif isinstance(event, h11.Response):
                status = event.status_code
                for name, value in event.headers:
                    if name == b"retry-after":
                        retry_after = min(float(value), 1.0)
            elif isinstance(event, h11.EndOfMessage):
                break
        if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
            await self.aclose()
        else:
            conn.start_next_cycle()
        return status, retry_after

    async def aclose(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            await stream.aclose()


class Generator:
    def __init__(
        self,
        host: str,
        ports: list[int],
        path: str,
        total: int,
        secret: bytes,
        rate: float | None,
    ) -> None:
        self.host, self.ports, self.path = host, ports, path
        self.rate = rate
        self.start = 0.0
        self.total = total
        self.secret = secret
        self.next_index = 0
        self.retry: list[int] = []
        self.statuses: dict[int, int] = {}
        self.ack_latencies: list[float] = []
        self.accepted = 0

    def take(self) -> int | None:
        if self.retry:
            return self.retry.pop()
        if self.next_index < self.total:
            self.next_index += 1
            return self.next_index - 1
        return None

    async def connection(self, deadline: float) -> None:
        """One sender: takes the next event and POSTs it to ``ports[index % len(ports)]``
        (round robin over the servers, on a keep-alive connection to each)."""
        connections = [_Connection(self.host, port) for port in self.ports]
        try:
            while (index := self.take()) is not None:
                if time.monotonic() > deadline:
                    raise RuntimeError("load generation ran past its time limit")
                if self.rate:  # open loop at a fixed rate: event i leaves at start + i / rate
                    await trio.sleep_until(self.start + index / self.rate)
                connection = connections[index % len(connections)]
                body = make_body(index)
                signature = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
                request = h11.Request(
                    method="POST",
                    target=self.path,
                    headers=[
                        ("host", f"{self.host}:{connection.port}"),
                        ("content-type", "application/json"),
                        ("content-length", str(len(body))),
                        ("x-signature-256", signature),
                    ],
                )
                started = time.monotonic()
                status, retry_after = await connection.exchange(request, body)
                self.ack_latencies.append(time.monotonic() - started)
                self.statuses[status] = self.statuses.get(status, 0) + 1
                if status == 503:
                    self.retry.append(index)
                    await trio.sleep(retry_after)
                elif 200 <= status < 300:
                    self.accepted += 1
        finally:
            for connection in connections:
                with trio.CancelScope(shield=True):
                    await connection.aclose()


async def generate(args: argparse.Namespace) -> dict[str, object]:
    generator = Generator(args.host, args.port, args.path, args.n, args.secret.encode(), args.rate)
    generator.start = trio.current_time()
    first_post = time.time()
    start = time.monotonic()
    async with trio.open_nursery() as nursery:
        for _ in range(args.concurrency):
            nursery.start_soon(generator.connection, start + args.time_limit)
    elapsed = time.monotonic() - start
    latencies = sorted(generator.ack_latencies)
    return {
        "events": args.n,
        "concurrency": args.concurrency,
        "accepted": generator.accepted,
        "statuses": {str(k): v for k, v in sorted(generator.statuses.items())},
        "first_post_wall": first_post,
        "last_ack_wall": first_post + elapsed,
        "elapsed_s": elapsed,
        "accept_rate": generator.accepted / elapsed,
        "ack_p50_ms": 1000 * statistics.median(latencies),
        "ack_p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "ports": args.port,
        "cpu_s": time.process_time(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port", type=int, nargs="+", required=True, help="several: round robin over them"
    )
    parser.add_argument("--path", default="/integration/webhook")
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("-c", "--concurrency", type=int, default=32)
    parser.add_argument("--secret", default="bench-secret")
    parser.add_argument("--time-limit", type=float, default=600.0)
    parser.add_argument("--rate", type=float, help="events per second (default: as fast as acked)")
    args = parser.parse_args()
    result = trio.run(generate, args)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
