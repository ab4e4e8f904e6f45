"""The running service: ``Simulator`` (random changes) and ``FakeTracker`` (API + sender + simulator)."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import httpx
import trio

from ._api import TrackerAPI, serve_api
from ._state import Change, TrackerState
from ._webhooks import Target, WebhookSender

logger = logging.getLogger("fake_tracker")


class Simulator:
    """Every ``interval`` seconds, makes one random change and hands it to ``notify``.

    ``interval <= 0`` turns it off (changes then come only through the API).
    """

    def __init__(
        self,
        state: TrackerState,
        notify: Callable[[Change], None],
        *,
        interval: float,
        rng: random.Random,
    ) -> None:
        self._state = state
        self._notify = notify
        self._interval = interval
        self._rng = rng

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        if self._interval <= 0:
            await trio.sleep_forever()
        while True:
            await trio.sleep(self._interval)
            change = self._state.random_change(self._rng)
            logger.info("%s %s", change.event, change.obj.get("key"))
            self._notify(change)


@attrs.frozen(kw_only=True)
class FakeTrackerConfig:
    """The tracker's settings, read from the integration's config (snake_case keys)."""

    webhook_secret: str
    api_host: str = "127.0.0.1"
    api_port: int = 8001
    interval: float = 2.0
    seed: int = 7
    initial_fill: bool = False
    """Announce every object by webhook at start: what filled the catalog before resyncs."""

    @classmethod
    def from_integration_config(cls, config: Mapping[str, Any]) -> FakeTrackerConfig:
        """From ``fake_api_port``, ``sender_interval``, ``webhook_secret``, ``seed`` and
        ``initial_fill`` (strings from env are fine)."""
        secret = config.get("webhook_secret")
        if not isinstance(secret, str) or not secret:
            raise ValueError("integration.config.webhookSecret is required")
        try:
            return cls(
                webhook_secret=secret,
                api_port=int(config.get("fake_api_port", 8001)),
                interval=float(config.get("sender_interval", 2.0)),
                seed=int(config.get("seed", 7)),
                initial_fill=_flag(config.get("initial_fill", False)),
            )
        except (TypeError, ValueError) as error:
            raise ValueError(f"invalid fake tracker settings: {error}") from None


class FakeTracker:
    """The simulated service: its API, its webhook sender and its simulator, in one nursery."""

    def __init__(
        self,
        config: FakeTrackerConfig,
        client: httpx.AsyncClient,
        target: Target,
        *,
        on_api_ready: Callable[[str], None] | None = None,
    ) -> None:
        """``target`` gives the webhook URL (it may wait for the receiver to be up);
        ``on_api_ready`` is told the API's URL before the first webhook goes out."""
        self.config = config
        self.state = TrackerState(seed=config.seed)
        self.sender = WebhookSender(client, target, config.webhook_secret)
        self.api = TrackerAPI(self.state, self.sender.send_nowait)
        self._simulator = Simulator(
            self.state,
            self.sender.send_nowait,
            interval=config.interval,
            rng=random.Random(config.seed + 1),
        )
        self._on_api_ready = on_api_ready

    async def run(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled; ``started()`` delivers the API's URL once it is bound.

        Order: the API is bound (announced to ``on_api_ready``, then ``started()``), the
        initial fill is queued (when asked for), the sender gets its target (it may wait for the receiver to
        be up, which under hypercorn is only after start-up) and starts delivering, the
        simulator starts.
        """
        async with trio.open_nursery() as nursery:
            api_url = await nursery.start(
                serve_api, self.api, self.config.api_host, self.config.api_port
            )
            self.state.api_url = api_url
            if self._on_api_ready is not None:
                self._on_api_ready(api_url)
            task_status.started(api_url)
            if self.config.initial_fill:
                for change in self.state.snapshot_changes():
                    self.sender.send_nowait(change)
            target = await nursery.start(self.sender.run)
            logger.info("FakeTracker API on %s, sending webhooks to %s", api_url, target)
            await nursery.start(self._simulator.run)


def _flag(value: Any) -> bool:
    """A boolean setting from YAML (a bool) or the environment (``true``/``false``, 1/0)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no", ""):
        return False
    raise ValueError(f"initialFill must be true or false, got {value!r}")
