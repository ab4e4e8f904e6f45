"""The relay's protocol messages and settings (both sides), and its start-up errors."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from ocean_trio._cli import main
from ocean_trio._exceptions import ConfigError
from ocean_trio._log import MaskingFormatter
from ocean_trio._websocket import split_url
from ocean_trio.relay._protocol import (
    Ack,
    AckStatus,
    Hello,
    Ping,
    Pong,
    ProtocolError,
    Ready,
    RelayedEvent,
    decode_from_integration,
    decode_from_relay,
    encode,
    fallback_delivery_id,
)
from ocean_trio.relay._settings import RelaySettings, load_relay_settings
from ocean_trio.testing import make_settings

from .conftest import SECRET, TOKEN

# --- protocol -----------------------------------------------------------------------------


def test_every_message_survives_its_encoding() -> None:
    event = RelayedEvent(
        seq=7,
        path="/webhook",
        headers={"x-github-delivery": "d-1"},
        body=b'{"id": 1}\x00\xff',  # any bytes: the body travels in base64
        trace_id="t-1",
        received_at=1.5,
        delivery_id="d-1",
    )
    decoded = decode_from_relay(encode(event))
    assert isinstance(decoded, RelayedEvent)
    assert (decoded.seq, decoded.path, dict(decoded.headers), decoded.body) == (
        7,
        "/webhook",
        {"x-github-delivery": "d-1"},
        b'{"id": 1}\x00\xff',
    )
    assert (decoded.trace_id, decoded.received_at, decoded.delivery_id) == ("t-1", 1.5, "d-1")
    hello = Hello(relay_id="r", max_in_flight=3, heartbeat_seconds=0.5)
    assert decode_from_relay(encode(hello)) == hello
    assert decode_from_relay(encode(Ping())) == Ping()
    for message in (
        Ready(max_body_bytes=10),
        Ack(3, AckStatus.JOURNALED, trace_id="t"),
        Ack(4, AckStatus.REFUSED, error="401: bad signature"),
        Pong(),
    ):
        assert decode_from_integration(encode(message)) == message
    assert json.loads(encode(Ack(4, AckStatus.DUPLICATE))) == {
        "type": "ack",
        "seq": 4,
        "status": "duplicate",
    }


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("not json", "message is not JSON"),
        ("[]", "message is not a JSON object"),
        ('{"type": "nope"}', "unknown message type 'nope' from the relay"),
        ('{"type": "event", "seq": 0}', "event: seq must be an integer >= 1"),
        ('{"type": "event", "seq": true}', "event: seq must be an integer >= 1"),
        (
            '{"type": "event", "seq": 1, "path": "webhook"}',
            "event: path must start with '/', not 'webhook'",
        ),
        (
            '{"type": "event", "seq": 1, "path": "/w", "headers": {"a": 1}}',
            "event: headers must be an object of strings",
        ),
        (
            '{"type": "event", "seq": 1, "path": "/w", "headers": {}, "body": "%%%"}',
            "event: body is not valid base64",
        ),
        (
            '{"type": "hello", "protocol": 2, "relay_id": "r"}',
            "the relay speaks protocol 2; this integration speaks 1",
        ),
        (
            '{"type": "hello", "protocol": 1, "relay_id": "r", "max_in_flight": 1,'
            ' "heartbeat_seconds": 0}',
            "hello: heartbeat_seconds must be a positive number",
        ),
    ],
)
def test_a_malformed_message_from_the_relay_is_named(text: str, problem: str) -> None:
    with pytest.raises(ProtocolError, match="^" + problem.replace("(", r"\(")):
        decode_from_relay(text)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (b"{}", "binary frame: the protocol sends JSON text frames only"),
        ('{"type": "ack", "seq": 1, "status": "ok"}', "ack: unknown status 'ok'"),
        ('{"type": "ack", "seq": 1, "status": "refused", "error": 3}', "ack: error must be"),
        ('{"type": "ready", "max_body_bytes": -1}', "ready: max_body_bytes must be an integer"),
        ('{"type": "event"}', "unknown message type 'event' from the integration"),
    ],
)
def test_a_malformed_message_from_the_integration_is_named(text: str | bytes, problem: str) -> None:
    with pytest.raises(ProtocolError, match="^" + problem):
        decode_from_integration(text)


def test_the_fallback_delivery_id_names_the_relay_and_the_event() -> None:
    assert fallback_delivery_id("abc", 12) == "relay:abc:12"


# --- the relay's settings -------------------------------------------------------------------


def test_relay_yaml_and_the_environment(tmp_path: Path) -> None:
    (tmp_path / "relay.yaml").write_text(
        "token: '{{ from env THE_TOKEN }}'\n"
        "http: {host: 0.0.0.0}\n"
        "max_in_flight: 8\n"  # snake_case accepted
        "webhooks:\n"
        "  /my_hook/:\n"  # kept as written (no camelCase), trailing slash ignored
        "    verifier: {type: github, secret: '{{ from env GH_SECRET }}'}\n"
        "    delivery_id_header: X-Request-Id\n"
        "  /plain:\n"
    )
    environ = {
        "THE_TOKEN": TOKEN,
        "GH_SECRET": SECRET,
        "OCEAN_RELAY__HTTP__PORT": "9100",
        "OCEAN_RELAY__HEARTBEAT_SECONDS": "2.5",
    }
    settings = load_relay_settings(tmp_path, environ=environ, overrides={"http": {"port": 9200}})
    assert settings.token == TOKEN
    assert (settings.http.host, settings.http.port) == ("0.0.0.0", 9200)  # flags win
    assert settings.max_in_flight == 8
    assert settings.heartbeat_seconds == 2.5
    paths = settings.paths()
    assert sorted(paths) == ["/my_hook", "/plain"]
    assert paths["/my_hook"].verifier == {"type": "github", "secret": SECRET}
    assert paths["/my_hook"].delivery_id_header == "X-Request-Id"
    assert sorted(settings.secrets()) == sorted([TOKEN, SECRET])
    assert TOKEN not in repr(settings)
    assert SECRET not in repr(settings)
    settings.check()


def test_webhooks_from_one_environment_variable(tmp_path: Path) -> None:
    environ = {"OCEAN_RELAY__WEBHOOKS": '{"/webhook": {"deliveryIdHeader": "X-Id"}}'}
    settings = load_relay_settings(tmp_path, environ=environ)
    assert settings.paths()["/webhook"].delivery_id_header == "X-Id"
    with pytest.raises(ConfigError, match="OCEAN_RELAY__WEBHOOKS must hold a JSON object"):
        load_relay_settings(tmp_path, environ={"OCEAN_RELAY__WEBHOOKS": "[1]"})


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        (RelaySettings(webhooks={"/w": None}), "the relay needs a token: set token in relay.yaml"),
        (RelaySettings(token="short", webhooks={"/w": None}), "the relay's token is too short"),
        (RelaySettings(token=TOKEN), "relay.yaml lists no webhook paths"),
        (RelaySettings(token=TOKEN, webhooks={"w": None}), "a path must start with '/'"),
    ],
)
def test_what_the_relay_refuses_to_start_with(settings: RelaySettings, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        settings.check()


def test_a_bad_limit_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load_relay_settings(tmp_path, environ={"OCEAN_RELAY__MAX_IN_FLIGHT": "0"})
    assert "maxInFlight must be a positive number, not 0" in str(error.value)


def test_the_relay_command_refuses_to_start_without_a_token_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OCEAN_RELAY__TOKEN", raising=False)
    (tmp_path / "relay.yaml").write_text("webhooks: {/webhook: {}}\n")
    assert main(["relay", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "ocean-trio: the relay needs a token: set token in relay.yaml (or OCEAN_RELAY__TOKEN);"
        " the integration presents it (liveEvents.relay.token) to consume events"
    ]
    assert main(["relay", str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_a_bad_verifier_is_named_with_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OCEAN_RELAY__TOKEN", TOKEN)
    (tmp_path / "relay.yaml").write_text("webhooks: {/webhook: {verifier: {type: githib}}}\n")
    assert main(["relay", str(tmp_path), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(
        "ocean-trio: relay.yaml: webhooks /webhook: signature config: unknown type 'githib'"
    )


# --- the integration's side ----------------------------------------------------------------


def test_the_integration_reads_live_events_relay(tmp_path: Path) -> None:
    environ = {
        "OCEAN__LIVE_EVENTS__RELAY__URL": "wss://relay.example.com/relay/connect",
        "OCEAN__LIVE_EVENTS__RELAY__TOKEN": TOKEN,
    }
    settings = make_settings(tmp_path, environ=environ)
    relay = settings.live_events.relay
    assert relay is not None
    assert (relay.url, relay.token) == ("wss://relay.example.com/relay/connect", TOKEN)
    assert TOKEN not in repr(settings)
    assert TOKEN in settings.secrets()
    # Masked in every log line.
    formatter = MaskingFormatter(logging.Formatter("%(message)s"), settings.secrets())
    record = logging.LogRecord("x", logging.INFO, "", 0, "token %s", (TOKEN,), None)
    assert formatter.format(record) == "token ***"
    assert make_settings(tmp_path).live_events.relay is None


@pytest.mark.parametrize(
    ("relay", "problem"),
    [
        ({"url": "ws://127.0.0.1:9000/relay/connect"}, "required field missing @ $.liveEvents.relay.token"),
        ({"token": TOKEN}, "required field missing @ $.liveEvents.relay.url"),
        ({"url": "http://127.0.0.1:9000", "token": TOKEN}, "url must be ws://HOST:PORT/relay/connect"),
        ({"url": "ws://127.0.0.1:x/relay", "token": TOKEN}, "is not a valid URL"),
        ({"url": "ws:///relay", "token": TOKEN}, "url must be ws://HOST:PORT/relay/connect"),
        ({"url": "ws://h/relay/connect", "token": ""}, "token must not be empty"),
    ],
)  # fmt: skip
def test_bad_relay_settings_stop_the_integration_naming_the_field(
    tmp_path: Path, relay: dict[str, str], problem: str
) -> None:
    with pytest.raises(ConfigError) as error:
        make_settings(tmp_path, liveEvents={"relay": relay})
    assert problem in str(error.value)
    assert "liveEvents.relay" in str(error.value)


def test_urls_split_as_trio_websocket_would() -> None:
    assert split_url("ws://127.0.0.1:9000/relay/connect") == (
        "127.0.0.1",
        9000,
        "/relay/connect",
        False,
    )
    assert split_url("wss://relay.example.com/relay/connect?x=1") == (
        "relay.example.com",
        443,
        "/relay/connect?x=1",
        True,
    )
    with pytest.raises(ConfigError, match="must start with ws:// or wss://"):
        split_url("http://x/")
