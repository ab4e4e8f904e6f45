"""The demo integration: FakeTracker's signed webhooks → processors → JQ mapping → catalog.

Run it from the repository root with ``ocean-trio sail integrations/fake`` (``make run``) or
``hypercorn --worker-class trio integrations.fake.main:app``. The ``on_start`` hook runs the
simulated tracker itself (API on ``fakeApiPort``), so the demo needs nothing else.
"""

from __future__ import annotations

import httpx
import trio

from ocean_trio import App, logger, ocean

# ``ocean-trio sail`` (``load_integration``) imports this file as a top-level module with its
# folder on sys.path; hypercorn imports it as ``integrations.fake.main``. A relative import
# works only in the second case, a plain one only in the first: pick by ``__package__``.
if __package__:
    from . import fake_service
    from .processors import IssueWebhookProcessor, ProjectWebhookProcessor
else:
    import fake_service
    from processors import IssueWebhookProcessor, ProjectWebhookProcessor

# How long the sender waits for the app to report where it serves. ``sail`` and the test
# server report it at once; if nothing does, the sender goes on with ``App.base_url``.
SERVING_WAIT_SECONDS = 10.0

ocean.add_webhook_processor("/webhook", IssueWebhookProcessor)
ocean.add_webhook_processor("/webhook", ProjectWebhookProcessor)


def _webhook_target(app: App) -> fake_service.Target:
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
async def run_fake_tracker() -> None:
    """Run FakeTracker for as long as the integration runs; it is cancelled at shutdown.

    The tracker's API address (its port may be 0) is published as
    ``integration_config["fake_api_url"]``, where the processors read it, before the first
    webhook is sent.
    """
    config = ocean.integration_config
    settings = fake_service.FakeTrackerConfig.from_integration_config(config)

    def publish(url: str) -> None:
        config["fake_api_url"] = url

    async with httpx.AsyncClient(timeout=10.0) as client:
        tracker = fake_service.FakeTracker(
            settings, client, _webhook_target(ocean.app), on_api_ready=publish
        )
        await tracker.run()


app = ocean.asgi_app(__file__)
