"""Settings loading keeps the names a user chose: webhook paths under liveEvents.webhooks."""

from __future__ import annotations

from pathlib import Path

from ocean_trio._settings import load_settings


def test_webhook_paths_are_kept_as_written_and_their_settings_normalised(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        "liveEvents:\n"
        "  webhooks:\n"
        "    /my_hook:\n"
        "      delivery_id_header: X-Request-Id\n"
        "    /Other-Hook:\n"
        "      deliveryIdHeader: X-Other-Id\n"
    )
    webhooks = load_settings(tmp_path).live_events.webhooks
    assert set(webhooks) == {"/my_hook", "/Other-Hook"}
    assert webhooks["/my_hook"].delivery_id_header == "X-Request-Id"
    assert webhooks["/Other-Hook"].delivery_id_header == "X-Other-Id"
