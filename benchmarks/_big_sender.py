"""Paced sender for the big-bodies benchmark (its own process): small or big signed events.

``--kind small`` POSTs ~1 KB events at ``--rate`` per second over keep-alive connections;
``--kind big-string`` / ``big-structured`` POST ~``--big-bytes`` events (the bulk one long
string, or an array of small objects) on a fresh connection each. Event ``i`` is due at
``--start-at + i / rate`` (wall clock, shared by the senders of one phase), and its latency is
counted from that due time, not from when a connection was free to send it: a server that
stalls cannot hide the stall by holding the sender back (no coordinated omission). The body's
``sent_at`` is the due time too, so ``updated_at - sent_at`` in the catalog is POST→applied.

Speaks HTTP/1.1 through h11 on raw trio sockets to 127.0.0.1. Every request must finish by
``--start-at + duration + --grace``; what has not is counted as ``unanswered``. Prints one
JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import statistics
import sys
import time
from collections.abc import Callable

import h11
import trio

SMALL_FILLER = "x" * 820  # brings a small body to ~1 KB, as benchmarks/_loadgen.py does
IDLE_RECONNECT_SECONDS = 4.0  # below hypercorn's keep-alive timeout (5 s)


def _head(event_id: str, sent_at: float, status: str) -> bytes:
    """Everything before the ``data`` value; the item the bench integration maps."""
    fields = {"type": "item", "id": event_id, "title": f"Item {event_id}", "status": status}
    return (
        json.dumps(fields, separators=(",", ":"))[:-1] + f',"sent_at":{sent_at!r},"data":'
    ).encode()


def big_data(kind: str, size: int) -> bytes:
    """The JSON of a ``data`` value taking about ``size`` bytes.

    ``big-string``: one string (cheap to parse: one token). ``big-structured``: an array of
    small objects (what a large real payload looks like, and far costlier to parse and copy).
    """
    if kind == "big-string":
        return json.dumps("x" * max(0, size - 2)).encode()
    if kind == "big-structured":
        items: list[bytes] = []
        total = 2
        while total < size:
            item = {"i": len(items), "name": f"object-{len(items)}", "tags": ["a", "b"], "ok": True}
            encoded = json.dumps(item, separators=(",", ":")).encode()
            items.append(encoded)
            total += len(encoded) + 1
        return b"[" + b",".join(items) + b"]"
    raise ValueError(f"unknown kind {kind!r}")


class Sender:
    def __init__(self, args: argparse.Namespace, start: float) -> None:
        self.args = args
        self.secret = args.secret.encode()
        self.total = max(1, round(args.rate * args.duration))
        self.start = start  # trio clock time of event 0's due time
        self.next_index = 0
        self.statuses: dict[str, int] = {}
        self.latencies: list[float] = []  # due time → response, seconds
        self.service: list[float] = []  # request written → response, seconds
        self.body_bytes = 0
        self.data = b"" if args.kind == "small" else big_data(args.kind, args.big_bytes)
        self.data_small = json.dumps(SMALL_FILLER).encode()

    def take(self) -> int | None:
        if self.next_index >= self.total:
            return None
        self.next_index += 1
        return self.next_index - 1

    def body(self, index: int) -> bytes:
        sent_at = self.args.start_at + index / self.args.rate
        event_id = f"{self.args.id_prefix}-{index}"
        if self.args.kind == "small":
            status = "open" if index % 3 else "closed"
            return _head(event_id, sent_at, status) + self.data_small + b"}"
        return _head(event_id, sent_at, "open") + self.data + b"}"

    def record(self, status: int, due: float, written: float) -> None:
        now = trio.current_time()
        self.latencies.append(now - due)
        self.service.append(now - written)
        self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1

    async def connection(self) -> None:
        """Take due events in turn; a keep-alive connection for small events, else one each."""
        stream: trio.SocketStream | None = None
        conn = h11.Connection(h11.CLIENT)
        last_used = 0.0
        try:
            while (index := self.take()) is not None:
                due = self.start + index / self.args.rate
                await trio.sleep_until(due)
                body = self.body(index)
                self.body_bytes = max(self.body_bytes, len(body))
                fresh = self.args.kind != "small" or trio.current_time() - last_used > (
                    IDLE_RECONNECT_SECONDS
                )
                if stream is None or fresh:
                    if stream is not None:
                        await _close(stream)
                    stream = await trio.open_tcp_stream("127.0.0.1", self.args.port)
                    conn = h11.Connection(h11.CLIENT)
                status, written = await self._request(stream, conn, body)
                last_used = trio.current_time()
                self.record(status, due, written)
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    await _close(stream)
                    stream = None  # hypercorn closes after 1,000 requests: reconnect
                else:
                    conn.start_next_cycle()
        finally:
            if stream is not None:
                await _close(stream)

    async def _request(
        self, stream: trio.SocketStream, conn: h11.Connection, body: bytes
    ) -> tuple[int, float]:
        signature = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        request = h11.Request(
            method="POST",
            target=self.args.path,
            headers=[
                ("host", f"127.0.0.1:{self.args.port}"),
                ("content-type", "application/json"),
                ("content-length", str(len(body))),
                ("x-signature-256", signature),
            ],
        )
        written = trio.current_time()
        await stream.send_all(conn.send(request) or b"")
        await stream.send_all(conn.send(h11.Data(data=body)) or b"")
        await stream.send_all(conn.send(h11.EndOfMessage()) or b"")
        status = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                if not data:
                    raise RuntimeError("server closed the connection before answering")
                conn.receive_data(data)
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.EndOfMessage):
                return status, written


async def _close(stream: trio.SocketStream) -> None:
    with trio.move_on_after(1, shield=True):
        await stream.aclose()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[int(fraction * (len(ordered) - 1))]


def _ms(values: list[float], stat: Callable[[list[float]], float]) -> float | None:
    """``stat`` in milliseconds; ``None`` (JSON null, not NaN) when nothing was answered."""
    return 1000 * stat(values) if values else None


async def send(args: argparse.Namespace) -> dict[str, object]:
    start = trio.current_time() + (args.start_at - time.time())
    sender = Sender(args, start)
    late = max(0.0, trio.current_time() - start)  # set-up ran past the start: a burst follows
    deadline = start + args.duration + args.grace
    with trio.move_on_at(deadline) as scope:
        async with trio.open_nursery() as nursery:
            for _ in range(min(args.concurrency, sender.total)):
                nursery.start_soon(sender.connection)
    accepted = sum(n for status, n in sender.statuses.items() if status.startswith("2"))
    return {
        "kind": args.kind,
        "id_prefix": args.id_prefix,
        "rate": args.rate,
        "duration_s": args.duration,
        "scheduled": sender.total,
        "answered": len(sender.latencies),
        "accepted": accepted,
        "unanswered": sender.total - len(sender.latencies),
        "timed_out": scope.cancelled_caught,
        "late_start_s": late,
        "statuses": dict(sorted(sender.statuses.items())),
        "body_bytes": sender.body_bytes,
        "latency_p50_ms": _ms(sender.latencies, statistics.median),
        "latency_p99_ms": _ms(sender.latencies, lambda v: percentile(v, 0.99)),
        "latency_max_ms": _ms(sender.latencies, max),
        "service_p50_ms": _ms(sender.service, statistics.median),
        "service_p99_ms": _ms(sender.service, lambda v: percentile(v, 0.99)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/integration/webhook")
    parser.add_argument("--kind", choices=["small", "big-string", "big-structured"], required=True)
    parser.add_argument("--id-prefix", required=True)
    parser.add_argument("--rate", type=float, required=True, help="events per second")
    parser.add_argument("--duration", type=float, required=True, help="seconds of sending")
    parser.add_argument("--start-at", type=float, required=True, help="wall time of event 0")
    parser.add_argument("--big-bytes", type=int, default=5 * 1024 * 1024)
    parser.add_argument("-c", "--concurrency", type=int, default=32)
    parser.add_argument("--grace", type=float, default=60.0, help="seconds allowed after the last")
    parser.add_argument("--secret", default="bench-secret")
    args = parser.parse_args()
    result = trio.run(send, args)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
