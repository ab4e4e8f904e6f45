"""The demo integration: FakeTracker's signed webhooks → processors → JQ mapping → catalog.

Run it from the repository root with ``ocean-trio sail integrations/fake`` (``make run``) or
``hypercorn --worker-class trio integrations.fake.main:app``. The ``on_start`` hook runs the
simulated tracker itself (API on ``fakeApiPort``), so the demo needs nothing else.

Best practice shown here: the webhook's HMAC is verified at ingress, before the event is
journaled (a bad signature is answered 401 and never reaches a processor), and the
sender's delivery id (``X-Fake-Delivery``, declared in ``config.yaml``) makes its retries
count once.
"""

from __future__ import annotations

import httpx
import trio

from ocean_trio import HmacSignature, RunningApp, StartupError, logger, ocean

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


def _reason(error: BaseException) -> str:
    while isinstance(error, BaseExceptionGroup):  # nested nurseries nest the group
        error = error.exceptions[0]
    return (getattr(error, "strerror", None) or str(error)).lower()


app = ocean.asgi_app(__file__)
