"""Fuzzing the webhook ingress: hostile methods, headers and bodies never give a 5xx but 503.

The ASGI handler is driven directly (hypercorn's own parsing is not ours to fuzz). Bodies
include what breaks naive JSON handling: nesting thousands of levels deep (at the top and
inside a payload), integers past Python's 4,300-digit limit, floats past a double, ``NaN``,
lone surrogates, invalid UTF-8, duplicate keys, and random bytes. Every answer is JSON with
a status in ``ALLOWED``; each status is reachable (``test_every_answer_is_reachable``); and
an event that was answered 2xx is exactly one that the journal holds.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ocean_trio.live_events._event import WebhookEvent
from ocean_trio.live_events._ingress import WebhookIngress
from ocean_trio.live_events._journal import EventStatus
from ocean_trio.live_events._json import BodyParser
from ocean_trio.live_events._memory_journal import MemoryJournal
from ocean_trio.live_events._outcome import Prepared
from ocean_trio.live_events._pipeline import LiveEventsPipeline
from ocean_trio.live_events._signatures import HmacSignature
from ocean_trio.testing import sign_hmac_sha256

SECRET = "fuzz"
ALLOWED = {200, 202, 400, 401, 405, 413, 503}
MAX_BODY = 20_000


class _Handler:
    def group_of(self, event: WebhookEvent) -> str | None:
        value = event.payload.get("id")
        return None if value is None else str(value)

    async def prepare(self, event: WebhookEvent) -> Prepared:
        await trio.sleep_forever()  # nothing finishes: the journal fills up (503)
        raise AssertionError("unreachable")


def _deep(depth: int, inner: bytes = b"1") -> bytes:
    return b"[" * depth + inner + b"]" * depth


def _deep_object(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


hostile = st.sampled_from(
    [
        _deep(5000),  # RecursionError in json.loads
        _deep_object(3000),
        b'{"payload": ' + _deep(2000) + b"}",  # deep inside a payload
        b'{"payload": ' + _deep(65) + b"}",  # just past the configured depth
        b'{"n": ' + b"9" * 5000 + b"}",  # past Python's int-string limit
        b'{"n": 1e400}',  # past a double
        b'{"n": NaN}',
        b'{"n": -Infinity}',
        b'{"s": "\\ud800"}',  # lone high surrogate
        b'{"s": "\\udc00x"}',  # lone low surrogate
        b'{"\\ud800": 1}',  # in a key
        b'{"s": "\\ud83d\\ude00"}',  # a pair: fine
        b'{"s": "\xff\xfe"}',  # invalid UTF-8
        b"\xef\xbb\xbf{}",  # a byte-order mark
        b'{"id": 1, "id": 2}',  # duplicate keys: last wins
        b"",
        b"null",
    ]
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
bodies = st.one_of(
    hostile,
    st.binary(max_size=300),
    st.dictionaries(st.sampled_from(["id", "type"]), st.text(max_size=5), max_size=2).map(
        lambda v: json.dumps(v).encode()
    ),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.text(max_size=8), json_values, max_size=5).map(
        lambda v: json.dumps(v).encode()
    ),
    st.integers(min_value=1, max_value=40).map(lambda depth: _deep(depth * 50)),
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
) -> tuple[int, dict[str, Any]]:
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
    answer = json.loads(sent[1]["body"])  # every answer is JSON
    assert isinstance(answer, dict)
    return int(sent[0]["status"]), answer


async def _ingress(
    parser: BodyParser | None = None,
) -> tuple[WebhookIngress, LiveEventsPipeline, MemoryJournal]:
    journal = MemoryJournal(max_pending=3)
    pipeline = LiveEventsPipeline(
        "/webhook", _Handler(), journal, workers=1, parse=BodyParser().parse_object_async
    )
    ingress = WebhookIngress(
        {"/integration/webhook": pipeline},
        max_body_bytes=MAX_BODY,
        accepting=lambda: True,
        verifiers={"/webhook": HmacSignature(SECRET, "x-signature", prefix="sha256=")},
        parser=parser,
    )
    return ingress, pipeline, journal


@settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    method=st.sampled_from(["POST"] * 8 + ["GET", "PUT"]),
    headers=st.lists(st.tuples(header_names, header_values), max_size=6),
    body=bodies,
    sign=st.sampled_from([True, True, True, False]),
    split=st.integers(min_value=1, max_value=4),
    big=st.booleans(),
)
def test_ingress_never_answers_5xx_except_503(
    method: str, headers: list[tuple[str, str]], body: bytes, sign: bool, split: int, big: bool
) -> None:
    raw = [(k.encode(), v.encode("latin-1")) for k, v in headers]
    if sign:
        raw.append((b"x-signature", sign_hmac_sha256(SECRET, body).encode()))
    size = max(1, len(body) // split)
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    # ``big``: every body takes the worker-thread path of big bodies.
    parser = BodyParser(off_loop_bytes=0) if big else None

    async def main() -> None:
        ingress, pipeline, journal = await _ingress(parser)
        async with trio.open_nursery() as nursery:
            await nursery.start(pipeline.run)
            acknowledged = 0
            for _ in range(4):  # repeated delivery ids, and a journal that fills up (3 pending)
                status, answer = await _request(ingress, pipeline, method, raw, chunks)
                assert status in ALLOWED, answer
                assert (status >= 400) == ("error" in answer)
                if status == 202:
                    acknowledged += 1
                event(f"status {status}")
            assert journal.statistics().appended == acknowledged
            nursery.cancel_scope.cancel()

    trio.run(main)


REACHABLE = [
    ("GET", True, b"{}", 405),
    ("POST", False, b"{}", 401),
    ("POST", True, b"x" * (MAX_BODY + 1), 413),
    ("POST", True, _deep(5000), 400),
    ("POST", True, b'{"id": "a"}', 202),
]


@pytest.mark.parametrize(("method", "sign", "body", "status"), REACHABLE)
async def test_every_answer_is_reachable(method: str, sign: bool, body: bytes, status: int) -> None:
    ingress, pipeline, _ = await _ingress()
    headers = [(b"x-signature", sign_hmac_sha256(SECRET, body).encode())] if sign else []
    assert (await _request(ingress, pipeline, method, headers, [body]))[0] == status


async def test_duplicates_and_a_full_journal_are_reachable() -> None:
    ingress, pipeline, _ = await _ingress()
    body = b'{"id": "a"}'
    headers = [
        (b"x-signature", sign_hmac_sha256(SECRET, body).encode()),
        (b"x-github-delivery", b"d-1"),
    ]
    assert (await _request(ingress, pipeline, "POST", headers, [body]))[0] == 202
    assert (await _request(ingress, pipeline, "POST", headers, [body]))[0] == 200
    unsigned = [(b"x-signature", sign_hmac_sha256(SECRET, body).encode())]
    for _ in range(2):
        assert (await _request(ingress, pipeline, "POST", unsigned, [body]))[0] == 202
    status, answer = await _request(ingress, pipeline, "POST", unsigned, [body])
    assert (status, answer["error"]) == (503, "too many events are pending; retry later")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_deep(5000), "JSON nested deeper than 64 levels"),
        (b'{"payload": ' + _deep(2000) + b"}", "JSON nested deeper than 64 levels"),
        (b'{"payload": ' + _deep(64) + b"}", "JSON nested deeper than 64 levels"),
        (b'{"payload": ' + b"[" * 64 + b"]" * 64 + b"}", "JSON nested deeper than 64 levels"),
        (b'{"n": ' + b"9" * 5000 + b"}", "a number has more than 4300 digits"),
        (b'{"n": 1e400}', "the number 1e400 is too large for a double"),
        (b'{"n": NaN}', "NaN is not valid JSON"),
        (b'{"s": "\\ud800"}', "unpaired surrogate \\ud800"),
        (b'{"\\udc00": 1}', "unpaired surrogate \\udc00"),
        (b'{"s": "\xff"}', "body is not valid UTF-8 (byte 7"),
        (b"[1]", "body must be a JSON object, got an array"),
    ],
)
@pytest.mark.parametrize("big", [False, True])
async def test_hostile_bodies_get_a_400_naming_the_problem(
    body: bytes, message: str, big: bool
) -> None:
    ingress, pipeline, journal = await _ingress(BodyParser(off_loop_bytes=0) if big else None)
    headers = [(b"x-signature", sign_hmac_sha256(SECRET, body).encode())]
    status, answer = await _request(ingress, pipeline, "POST", headers, [body])
    assert (status, message in answer["error"]) == (400, True), answer
    assert journal.statistics().appended == 0


@pytest.mark.parametrize("big", [False, True])
async def test_what_json_allows_and_python_handles_is_accepted(big: bool) -> None:
    ingress, pipeline, journal = await _ingress(BodyParser(off_loop_bytes=0) if big else None)
    cases = {
        b'{"id": "x", "id": "y"}': {"id": "y"},  # duplicate keys: the last wins
        b'{"s": "\\ud83d\\ude00"}': {"s": "\U0001f600"},  # a surrogate pair
        b'{"p": ' + _deep(63) + b"}": {"p": json.loads(_deep(63))},  # 64 levels in all
        b'{"n": ' + b"9" * 400 + b"}": {"n": int("9" * 400)},
    }
    for body, payload in cases.items():
        headers = [(b"x-signature", sign_hmac_sha256(SECRET, body).encode())]
        status, _ = await _request(ingress, pipeline, "POST", headers, [body])
        assert status == 202
        [entry] = await journal.pending_page(
            "/webhook", after=journal.last_seq - 1, limit=1, max_bytes=1 << 20
        )
        assert entry.event.payload == payload
        await journal.complete(entry, EventStatus.DONE)


@pytest.mark.parametrize("length", ["²", "¹²", "1e3", "-1", " 12"])
async def test_a_content_length_that_is_not_ascii_digits_is_not_a_crash(length: str) -> None:
    # str.isdigit() is true for "²" and "٣", which int() refuses: found by the fuzz above.
    ingress, pipeline, _ = await _ingress()
    body = b'{"id": "a"}'
    headers = [
        (b"x-signature", sign_hmac_sha256(SECRET, body).encode()),
        (b"content-length", length.encode("latin-1", errors="ignore") or length.encode()),
    ]
    assert (await _request(ingress, pipeline, "POST", headers, [body]))[0] == 202
