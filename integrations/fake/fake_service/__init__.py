"""FakeTracker: the simulated third-party issue tracker of the demo.

It plays the service an integration syncs from, with the parts a real one has:

- ``TrackerState``: projects and issues, seeded deterministically from a ``random.Random(seed)``;
- ``TrackerAPI``: its REST API (an ASGI app, served by hypercorn's trio worker):

      GET    /api/projects              GET  /api/projects/{key}     PATCH /api/projects/{key}
      GET    /api/issues[?project=KEY]  GET  /api/issues/{id}        PATCH /api/issues/{id}
      POST   /api/issues                DELETE /api/issues/{id}

  unknown ids answer ``404 {"error": ...}``; every write sends the matching webhook; the two
  lists are paginated (``perPage``, at most ``MAX_PER_PAGE``; the next page is the ``Link``
  header's ``rel="next"``, a cursor: see ``_api``);
- ``WebhookSender``: posts one signed webhook per change, in order, to the integration;
- ``Simulator``: every ``interval`` seconds, changes something at random;
- ``FakeTracker``: runs the three in one nursery.

A webhook is ``POST {target}`` with the JSON body
``{"webhookEvent": "issue_updated", "timestamp": <ms>, "issue": {...}}`` (or ``"project": {...}``;
events ``issue_created``, ``issue_updated``, ``issue_deleted``, ``project_updated``), the object
being its state at the time of the change, and the headers
``X-Fake-Signature: sha256=<hex HMAC-SHA256(secret, body)>`` and ``X-Fake-Delivery: <uuid>``
(kept across retries of the same delivery).
"""

from ._api import DEFAULT_PER_PAGE, MAX_PER_PAGE, InvalidQuery, TrackerAPI, serve_api
from ._state import Change, InvalidFields, TrackerState
from ._tracker import FakeTracker, FakeTrackerConfig, Simulator
from ._webhooks import SenderStatistics, Target, WebhookSender, sign

__all__ = [
    "DEFAULT_PER_PAGE",
    "MAX_PER_PAGE",
    "Change",
    "FakeTracker",
    "FakeTrackerConfig",
    "InvalidFields",
    "InvalidQuery",
    "SenderStatistics",
    "Simulator",
    "Target",
    "TrackerAPI",
    "TrackerState",
    "WebhookSender",
    "serve_api",
    "sign",
]
