"""Fuzzing the webhook ingress: random methods, headers and bodies never give a 5xx or a crash.

The ASGI handler is driven directly (hypercorn's own parsing is not ours to fuzz); a
verifier and a small journal make every branch reachable: 401, 400, 413, 503, 200, 202.
"""

from __future__ import annotations

import json
from typing import Any

import trio
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ocean_trio.live_events._event import WebhookEvent
from ocean_trio.live_events._ingress import WebhookIngress
from ocean_trio.live_events._journal import EventStatus, MemoryJournal
from ocean_trio.live_events._outcome import EventOutcome
from ocean_trio.live_events._pipeline import LiveEventsPipeline
from ocean_trio.live_events._signatures import HmacSignature
from ocean_trio.testing import sign_hmac_sha256

SECRET = "fuzz"
ALLOWED = {200, 202, 400, 401, 405, 413, 503}


class _Handler:
    def group_of(self, event: WebhookEvent) -> str | None:
        value = event.payload.get("id")
        return None if value is None else str(value)

    async def handle(self, event: WebhookEvent) -> EventOutcome:
        await trio.lowlevel.checkpoint()
        return EventOutcome(EventStatus.DONE)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
bodies = st.one_of(
    st.binary(max_size=300),
    st.dictionaries(st.sampled_from(["id", "type"]), st.text(max_size=5), max_size=2).map(
        lambda v: json.dumps(v).encode()
    ),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.text(max_size=8), json_values, max_size=5).map(
        lambda v: json.dumps(v).encode()
    ),
)
header_names = st.sampled_from(
    ["x-signature", "content-length", "x-github-delivery", "webhook-id", "content-type", "x-any"]
)
header_values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=40)


async def _request(
    ingress: WebhookIngress,
    pipeline: LiveEventsPipeline,
    method: str,
    headers: list[tuple[bytes, bytes]],
    chunks: list[bytes],
) -> int:
    sent: list[dict[str, Any]] = []
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ] or [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, Any]:
        await trio.lowlevel.checkpoint()
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        await trio.lowlevel.checkpoint()
        sent.append(message)

    scope = {"type": "http", "method": method, "path": "/integration/webhook", "headers": headers}
    await ingress(pipeline, scope, receive, send)
    assert sent[0]["type"] == "http.response.start"
    assert sent[1]["type"] == "http.response.body"
    json.loads(sent[1]["body"])  # every answer is JSON
    return int(sent[0]["status"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["POST"] * 8 + ["GET", "PUT"]),
    headers=st.lists(st.tuples(header_names, header_values), max_size=6),
    body=bodies,
    sign=st.sampled_from([True, True, True, False]),
    split=st.integers(min_value=1, max_value=4),
)
def test_ingress_never_answers_5xx_except_503(
    method: str, headers: list[tuple[str, str]], body: bytes, sign: bool, split: int
) -> None:
    raw = [(k.encode(), v.encode("latin-1")) for k, v in headers]
    if sign:
        raw.append((b"x-signature", sign_hmac_sha256(SECRET, body).encode()))
    size = max(1, len(body) // split)
    chunks = [body[i : i + size] for i in range(0, len(body), size)]

    async def main() -> None:
        journal = MemoryJournal(max_pending=3)
        pipeline = LiveEventsPipeline("/webhook", _Handler(), journal, workers=1, capacity=3)
        ingress = WebhookIngress(
            {"/integration/webhook": pipeline},
            max_body_bytes=200,
            accepting=lambda: True,
            verifiers={"/webhook": HmacSignature(SECRET, "x-signature", prefix="sha256=")},
        )
        for _ in range(4):  # repeated delivery ids, and a journal that fills up (3 pending)
            status = await _request(ingress, pipeline, method, raw, chunks)
            assert status in ALLOWED
            event(f"status {status}")

    trio.run(main)
