"""The demo integration: FakeTracker's signed webhooks → processors → JQ mapping → catalog.

Run it from the repository root with ``ocean-trio sail integrations/fake`` (``make run``) or
``hypercorn --worker-class trio integrations.fake.main:app``. The ``on_start`` hook runs the
simulated tracker itself (API on ``fakeApiPort``), so the demo needs nothing else. A resync
lists the tracker's projects and issues a page (``pageSize``) at a time.

Best practice shown here: the webhook's HMAC is verified at ingress, before the event is
journaled (a bad signature is answered 401 and never reaches a processor), and the
sender's delivery id (``X-Fake-Delivery``, declared in ``config.yaml``) makes its retries
count once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import trio

from ocean_trio import HmacSignature, RunningApp, StartupError, logger, ocean

# ``ocean-trio sail`` (``load_integration``) imports this file as a top-level module with its
# folder on sys.path; hypercorn imports it as ``integrations.fake.main``. A relative import
# works only in the second case, a plain one only in the first: pick by ``__package__``.
if __package__:
    from . import fake_service
    from .processors import (
        IssueWebhookProcessor,
        ProjectWebhookProcessor,
        fetch_page,
        resync_page_size,
        tracker_client,
    )
else:
    import fake_service
    from processors import (
        IssueWebhookProcessor,
        ProjectWebhookProcessor,
        fetch_page,
        resync_page_size,
        tracker_client,
    )

# How long the sender waits for the app to report where it serves. ``sail`` and the test
# server report it before the hook starts; under hypercorn the app learns it from
# hypercorn's "Running on" line right after start-up. Otherwise (hypercorn's log level above
# INFO) the sender goes on with ``base_url`` (set ``OCEAN__BASE_URL`` then).
SERVING_WAIT_SECONDS = 5.0

ocean.add_webhook_processor("/webhook", IssueWebhookProcessor)
ocean.add_webhook_processor("/webhook", ProjectWebhookProcessor)
ocean.add_webhook_verifier(
    "/webhook",
    # Built when the app starts, from integration.config (webhookSecret).
    lambda config: HmacSignature(
        config["webhook_secret"], header="X-Fake-Signature", prefix="sha256="
    ),
)


def _webhook_target(app: RunningApp) -> fake_service.Target:
    async def target() -> str:
        with trio.move_on_after(SERVING_WAIT_SECONDS):
            await app.serving.wait()
        if not app.serving.is_set():
            logger.warning(
                "the app did not report its address within %gs; sending webhooks to %s",
                SERVING_WAIT_SECONDS,
                app.base_url,
            )
        return f"{app.base_url}/integration/webhook"

    return target


@ocean.on_start()
async def run_fake_tracker(*, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    """Run FakeTracker for as long as the integration runs; it is cancelled at shutdown.

    Start-up waits until the tracker's API is bound (``task_status``): without it the
    integration would be useless, so a busy port or bad settings stop start-up with one
    line. The API's address (its port may be 0) is published as
    ``integration_config["fake_api_url"]``, where the processors read it, before the first
    webhook is sent.
    """
    config = ocean.integration_config
    try:
        settings = fake_service.FakeTrackerConfig.from_integration_config(config)
    except ValueError as error:
        raise StartupError(f"FakeTracker: {error}") from None

    def publish(url: str) -> None:
        config["fake_api_url"] = url

    async with httpx.AsyncClient(timeout=10.0) as client:
        tracker = fake_service.FakeTracker(
            settings, client, _webhook_target(ocean.app), on_api_ready=publish
        )
        try:
            await tracker.run(task_status=task_status)
        except* OSError as error:
            raise StartupError(
                f"FakeTracker cannot listen on {settings.api_host}:{settings.api_port}:"
                f" {_reason(error)} (set integration.config.fakeApiPort"
                " or OCEAN__INTEGRATION__CONFIG__FAKE_API_PORT; 0 picks a free port)"
            ) from None


@ocean.on_resync("project")
@ocean.on_resync("issue")
async def resync_from_tracker(kind: str) -> AsyncIterator[list[dict[str, Any]]]:
    """Every project (``GET /api/projects``) or issue (``GET /api/issues``), a page per batch.

    Pages hold ``pageSize`` objects (integration.config, default 50); the tracker's ``Link``
    header leads to the next one. The objects are those the processors fetch one by one, so
    a resync maps to the entities live events give. The client is this generator's: it is
    closed when the generator ends, is closed early (``aclose()``) or fails.
    """
    url: str | None = f"/api/{kind}s?perPage={resync_page_size()}"
    async with tracker_client() as client:
        while url is not None:
            page, url = await fetch_page(client, url)
            if page:  # empty: nothing to list, or the rest was deleted meanwhile
                yield page


def _reason(error: BaseException) -> str:
    while isinstance(error, BaseExceptionGroup):  # nested nurseries nest the group
        error = error.exceptions[0]
    return (getattr(error, "strerror", None) or str(error)).lower()


app = ocean.asgi_app(__file__)
