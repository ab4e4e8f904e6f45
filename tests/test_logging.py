"""What the log says about events: every dead letter with its error, rejected and unmatched
events, refusals at ingress; floods of the same line are rate-limited."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from ocean_trio import EventHeaders, EventPayload, EventStatus, Integration
from ocean_trio._log import JsonFormatter, LogLimiter, MaskingFormatter
from ocean_trio.live_events._signatures import GitHubSignature
from ocean_trio.testing import make_settings, serve_integration

from .processors import ItemProcessor


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_limiter_logs_a_burst_per_key_and_summarises_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    limiter = LogLimiter(logging.getLogger("test.limiter"), period=60, burst=2, clock=clock)
    with caplog.at_level(logging.WARNING, logger="test.limiter"):
        for n in range(10):
            limiter.warning("a", "a %d", n)
        limiter.warning("b", "b %d", 0)  # another key has its own burst
        clock.now = 61.0
        limiter.warning("a", "a %d", 10)
    assert [r.getMessage() for r in caplog.records] == [
        "a 0",
        "a 1",
        "b 0",
        "(8 more like the next one in the last 61s were not logged)",
        "a 10",
    ]


def test_the_limiter_bounds_its_keys() -> None:
    limiter = LogLimiter(logging.getLogger("test.limiter"), max_keys=3)
    for n in range(100):
        limiter.warning(n, "key %d", n)
    assert len(limiter._windows) == 3


class Picky(ItemProcessor):
    """Rejects ``x-token: wrong``, fails on items with ``fail``, ignores events without items."""

    async def should_process_event(self, event: object) -> bool:
        return "item" in getattr(event, "payload", {})

    async def authenticate(self, payload: EventPayload, headers: EventHeaders) -> bool:
        return headers.get("x-token") != "wrong"

    async def validate_payload(self, payload: EventPayload) -> bool:
        if payload["item"].get("fail"):
            raise_error()
        return True


def raise_error() -> None:
    raise ValueError("the upstream said no")


async def test_dead_rejected_and_unmatched_events_are_logged_and_floods_limited(
    integration_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    integration = Integration(integration_root)
    integration.add_webhook_processor("/webhook", Picky)
    caplog.set_level(logging.WARNING, logger="ocean_trio.live_events")
    async with serve_integration(integration, make_settings(tmp_path)) as server:
        await server.post_event("/webhook", {"item": {"id": "A", "fail": True}})
        for _ in range(20):
            await server.post_event("/webhook", {"item": {"id": "R"}}, {"x-token": "wrong"})
        await server.post_event("/webhook", {"nothing": "here"})
        outcomes = [o.status for _, o in await server.next_outcomes(22)]
    assert outcomes == [EventStatus.DEAD] + [EventStatus.REJECTED] * 20 + [EventStatus.NO_MATCH]
    messages = [r.getMessage() for r in caplog.records if r.name == "ocean_trio.live_events"]
    [dead] = [m for m in messages if "dead letter" in m]
    assert "event 1 on /webhook" in dead
    assert "ValueError('the upstream said no')" in dead
    rejected = [m for m in messages if "was rejected: authentication failed" in m]
    assert len(rejected) == 5  # the first five of twenty; the rest counted, not logged
    assert [m for m in messages if m.startswith("no processor accepted event 22 on /webhook")]
    assert {r.levelname for r in caplog.records if "dead letter" in r.getMessage()} == {"ERROR"}


async def test_refusals_at_ingress_are_logged_and_rate_limited(
    integration_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    integration = Integration(integration_root)
    integration.add_webhook_processor("/webhook", ItemProcessor)
    integration.add_webhook_verifier("/webhook", GitHubSignature("s3cret"))
    caplog.set_level(logging.WARNING, logger="ocean_trio.live_events")
    async with serve_integration(integration, make_settings(tmp_path)) as server:
        for _ in range(50):
            response = await server.post_event("/webhook", {"item": {"id": "F"}})
            assert response.status_code == 401
    refusals = [
        r for r in caplog.records if "refusing an event on /webhook (401)" in r.getMessage()
    ]
    assert len(refusals) == 5
    assert "missing X-Hub-Signature-256 header" in refusals[0].getMessage()


async def test_every_outcome_is_one_line_with_its_trace_and_delivery_ids(
    integration_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    integration = Integration(integration_root)
    integration.add_webhook_processor("/webhook", Picky)
    caplog.set_level(logging.INFO, logger="ocean_trio.live_events")
    async with serve_integration(integration, make_settings(tmp_path)) as server:
        done = await server.post_event(
            "/webhook", {"item": {"id": "A"}}, {"x-github-delivery": "d-42"}
        )
        await server.next_outcomes(1)
    [line] = [r for r in caplog.records if " done in " in r.getMessage()]
    message = line.getMessage()
    assert message.startswith("event 1 on /webhook done in ")
    # not high priority: its urgentItem (the second resource) is deleted
    assert "by Picky: 1 upserted, 1 deleted" in message
    assert f"trace {done.json()['trace_id']}, delivery d-42" in message
    fields = line.event  # type: ignore[attr-defined]
    assert (fields["seq"], fields["status"], fields["delivery_id"]) == (1, "done", "d-42")


def test_json_lines_carry_the_event_fields_and_mask_secrets() -> None:
    formatter = MaskingFormatter(JsonFormatter(), ["s3cret-value", "abc"])
    record = logging.LogRecord(
        "ocean_trio.live_events", logging.ERROR, __file__, 1, "sent %s", ("s3cret-value",), None
    )
    record.event = {"seq": 7, "trace_id": "t-7", "delivery_id": None, "message": "not mine"}
    try:
        raise ValueError("token s3cret-value leaked")
    except ValueError:
        record.exc_info = sys.exc_info()
    data = json.loads(formatter.format(record))
    assert data["message"] == "sent ***"
    assert (data["level"], data["logger"]) == ("ERROR", "ocean_trio.live_events")
    assert (data["seq"], data["trace_id"], data["delivery_id"]) == (7, "t-7", None)
    assert "s3cret-value" not in data["exception"]
    assert "token ***" in data["exception"]
    # a "secret" shorter than 4 characters would mask ordinary words: it is not masked
    record.args = ("abc",)
    assert json.loads(formatter.format(record))["message"] == "sent abc"


def test_the_settings_name_every_secret_they_hold(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        port={"clientSecret": "port-secret"},
        admin={"token": "admin-token"},
        integration={"config": {"webhookSecret": "hook-secret", "apiUrl": "http://x", "n": 3}},
        live_events={
            "webhooks": {"/webhook": {"verifier": {"type": "github", "secret": "gh-secret"}}}
        },
    )
    found = set(settings.secrets())
    assert {"port-secret", "admin-token", "hook-secret", "gh-secret"} <= found
    assert "http://x" not in found


def test_a_sail_process_masks_secrets_and_logs_json(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("logFormat: json\nadmin:\n  token: very-secret-token\n")
    code = (
        "import logging, sys\n"
        "from pathlib import Path\n"
        "from ocean_trio._log import configure_logging\n"
        "from ocean_trio._settings import load_settings\n"
        f"s = load_settings(Path({str(tmp_path)!r}))\n"
        "configure_logging('INFO', as_json=s.log_format == 'json', secrets=s.secrets())\n"
        "logging.getLogger('ocean_trio').warning('the token is %s', s.admin.token)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    [line] = done.stderr.splitlines()
    assert json.loads(line)["message"] == "the token is ***"
