"""``PortClient``: Port's REST API over one httpx client: token, retries, rate limit, batching.

Besides entities and blueprints, the calls a resync needs: the owned-entities search (paged),
the diff search of current entities, the integration's resync request and resync state.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

import attrs
import httpx
import trio

from .._exceptions import PortApiError, PortUnreachableError
from .._retry import RetryPolicy
from ._port_rate import PortRate

_T = TypeVar("_T")

logger = logging.getLogger("ocean_trio.port")

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
BULK_MAX_ENTITIES = 20
BULK_MAX_BYTES = 1024 * 1024
BULK_DELETE_MAX = 100
OWNED_PAGE_SIZE = 1000
"""Owned entities a page. Ocean asks 5,000: ~7 MB of JSON an answer, read and decoded, grew a
100,000-entity resync's RSS by ~25 MB at reconciliation; 1,000 costs 0.8 calls per 1,000."""
SEARCH_CHUNK = 50  # identifiers per diff search, as Ocean
OWNED_FIELDS = ("blueprint", "identifier", "createdAt", "updatedAt")
"""What ``owned_entity_pages`` keeps of each entity: all that reconciliation reads."""
CLOSE_SECONDS = 5.0  # closing connections must finish even when cancelled, but not hang

Params = Mapping[str, str | list[str]]
"""Query parameters; a list repeats the name (``include=a&include=b``)."""

PORT_RETRY = RetryPolicy(max_attempts=6, initial_delay=0.3, max_delay=30.0, jitter=0.2)
"""Idempotent calls to Port: 6 sends, 0.3 s doubling (±20 %), at most 30 s (or what Port asks)."""


@attrs.frozen
class EntityError:
    """Why Port refused one entity of a bulk upsert."""

    blueprint: str
    identifier: Any
    status: int
    code: str
    message: str


@attrs.frozen
class UpsertResult:
    """What a bulk upsert did: identifiers written, entities refused."""

    upserted: tuple[Any, ...]
    errors: tuple[EntityError, ...]


@attrs.frozen
class KafkaCredentials:
    """The organization's Kafka login (``GET /v1/kafka-credentials``), for the KAFKA listener."""

    username: str
    password: str = attrs.field(repr=False)


@attrs.frozen
class Datasource:
    """How Port knows an integration's entities: their datasource (the user agent that wrote
    them, ``port-ocean/{type}/{version}/{identifier}/{agent}``) starts with ``prefix``
    (``port-ocean/{type}/``) and ends with ``suffix`` (``/{identifier}/{agent}``): any version."""

    prefix: str
    suffix: str

    @classmethod
    def from_user_agent(cls, user_agent: str) -> Datasource:
        """Split Ocean's user agent; a ``ValueError`` when it is not one."""
        parts = user_agent.split("/", 3)
        if len(parts) != 4 or parts[0] != "port-ocean" or "/" not in parts[3]:
            raise ValueError(
                f"user agent {user_agent!r} is not port-ocean/{{type}}/{{version}}/"
                "{identifier}/{agent}: the integration's entities cannot be found"
            )
        return cls(f"port-ocean/{parts[1]}/", f"/{parts[3]}")

    def rules(self) -> list[dict[str, Any]]:
        """Search rules keeping this datasource's entities (Ocean appends them to searches)."""
        return [
            {"property": "$datasource", "operator": "contains", "value": self.prefix},
            {"property": "$datasource", "operator": "contains", "value": self.suffix},
        ]


@attrs.frozen
class PortStatistics:
    requests: int
    retries: int
    token_refreshes: int
    pool_resets: int


@attrs.define(eq=False)
class _Pool:
    """One httpx client and the requests using it, so a poisoned pool can be retired."""

    client: httpx.AsyncClient
    in_flight: int = 0
    retired: bool = False


class PortClient:
    """Calls Port's API with a client-credentials token, retries and a client-side rate limit.

    - The token is fetched under a lock, refreshed a minute before it expires and after a 401.
    - Idempotent calls are retried on 408, 429, 5xx and transport errors, waiting what
      ``Retry-After`` or ``x-ratelimit-reset`` ask for, else the ``retry`` policy's backoff;
      a transport failure on the last try raises ``PortUnreachableError`` naming the URL.
    - At most ``max_concurrency`` requests run at once, at most ``requests_per_second`` start
      a second, fewer while Port's ``x-ratelimit-*`` headers say its budget is short
      (``PortRate``).
    - httpcore can leak pool slots when requests are cancelled while connecting (encode/
      httpcore#1093: every later request then fails with ``PoolTimeout``); after a cancelled
      request or a ``PoolTimeout`` the pool is replaced, and the old one closed once idle.
    """

    def __init__(
        self,
        *,
        base_url: str,
        client_id: str,
        client_secret: str,
        user_agent: str,
        retry: RetryPolicy = PORT_RETRY,
        requests_per_second: float = 100.0,
        max_concurrency: int = 20,
        timeout: float = 60.0,
        client_factory: Callable[[], httpx.AsyncClient] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self.user_agent = user_agent
        self._retry = retry
        self._factory = client_factory or (
            lambda: httpx.AsyncClient(
                timeout=timeout,
                limits=httpx.Limits(
                    max_connections=max_concurrency, max_keepalive_connections=max_concurrency
                ),
            )
        )
        self._pool = _Pool(self._factory())
        self._limiter = trio.CapacityLimiter(max_concurrency)
        self.rate = PortRate(requests_per_second, burst=max_concurrency)
        self._token: str | None = None
        self._token_expires = 0.0
        self._token_lock = trio.Lock()
        self._requests = 0
        self._retries = 0
        self._refreshes = 0
        self._resets = 0
        self.last_failure: str | None = None
        """The last failed attempt (``POST /v1/…: ConnectError: …``), for start-up messages."""
        self.failing = False
        """From a failed attempt (unreachable, or a status retried) until a request succeeds:
        ``/health/ready`` says the sink is unreachable meanwhile."""

    @classmethod
    @asynccontextmanager
    async def open(cls, **options: Any) -> AsyncIterator[PortClient]:
        """A client whose connections are closed on exit."""
        client = cls(**options)
        try:
            yield client
        finally:
            with trio.move_on_after(CLOSE_SECONDS, shield=True):
                await client._pool.client.aclose()

    def statistics(self) -> PortStatistics:
        return PortStatistics(self._requests, self._retries, self._refreshes, self._resets)

    # --- token --------------------------------------------------------------------------

    async def _access_token(self, *, stale: str | None = None) -> str:
        async with self._token_lock:
            # Another task may have refreshed it while this one waited for the lock.
            fresh = self._token is not None and self._token != stale
            if fresh and time.monotonic() < self._token_expires:
                assert self._token is not None
                return self._token
            response = await self._send(
                "POST",
                "/v1/auth/access_token",
                json_body={"clientId": self._client_id, "clientSecret": self._client_secret},
                retryable=True,
                authenticated=False,
            )
            data = response.json()
            ttl = float(data.get("expiresIn", 3600))
            self._token = str(data["accessToken"])
            # Refresh a minute early (or at 90 % of a short lifetime).
            self._token_expires = time.monotonic() + ttl - min(60.0, ttl * 0.1)
            self._refreshes += 1
            return self._token

    # --- requests -----------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Params | None = None,
        retryable: bool,
        accept: Sequence[int] = (),
    ) -> httpx.Response:
        """Send an authenticated request; raise ``PortApiError`` for an error status not in ``accept``."""
        return await self._send(
            method, path, json_body=json_body, params=params, retryable=retryable, accept=accept
        )

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Params | None = None,
        retryable: bool,
        authenticated: bool = True,
        accept: Sequence[int] = (),
    ) -> httpx.Response:
        content = None if json_body is None else json.dumps(json_body).encode()
        refreshed = False
        retries = self._retry.start()
        while True:
            headers = {"user-agent": self.user_agent, "content-type": "application/json"}
            token = None
            if authenticated:
                token = await self._access_token()
                headers["authorization"] = f"Bearer {token}"
            try:
                response = await self._once(method, path, content, params, headers)
            except httpx.TransportError as error:
                delay = retries.next_delay() if retryable else None
                if delay is None:
                    tries = retries.count + 1
                    raise PortUnreachableError(
                        f"cannot reach Port's API at {self.base_url}: {method} {path} failed"
                        f" {tries} time{'s' if tries > 1 else ''} ({_describe(error)})",
                        method=method,
                        path=path,
                    ) from error
                self.last_failure = f"{method} {path}: {_describe(error)}"
                self.failing = True
                logger.warning(
                    "%s %s failed (%s); retrying in %.2fs", method, path, _describe(error), delay
                )
                self._retries += 1
                await retries.wait(delay)
                continue
            status = response.status_code
            if status < 400 or status in accept:
                self.failing = False
                return response
            if status == 401 and authenticated and not refreshed:
                refreshed = True  # the token expired or was revoked: one fresh try
                await self._access_token(stale=token)
                self._retries += 1
                continue
            if retryable and status in RETRYABLE_STATUSES:
                delay = retries.next_delay(asked=_asked_delay(response))
                if delay is not None:
                    self.last_failure = f"{method} {path}: HTTP {status}"
                    self.failing = True
                    logger.warning("%s %s → %d; retrying in %.2fs", method, path, status, delay)
                    self._retries += 1
                    await retries.wait(delay)
                    continue
            raise _error(response, method, path)

    async def _once(
        self,
        method: str,
        path: str,
        content: bytes | None,
        params: Params | None,
        headers: dict[str, str],
    ) -> httpx.Response:
        async with self._limiter:
            await self.rate.acquire()
            pool = self._pool
            pool.in_flight += 1
            try:
                response = await pool.client.request(
                    method, self.base_url + path, content=content, params=params, headers=headers
                )
                self.rate.observe(response.headers, in_flight=self._limiter.borrowed_tokens - 1)
                return response
            except httpx.PoolTimeout:
                self._retire(pool, "a request timed out waiting for a pooled connection")
                raise
            except trio.Cancelled:
                # Cancelled mid-request (shutdown, a deadline): the pool may leak a slot.
                # Ordinary failures (refused, reset, timed out) leave the pool consistent.
                self._retire(pool, "a request was interrupted")
                raise
            finally:
                self._requests += 1
                pool.in_flight -= 1
                if pool.retired and pool.in_flight == 0:
                    with trio.move_on_after(CLOSE_SECONDS, shield=True):
                        await pool.client.aclose()

    def _retire(self, pool: _Pool, why: str) -> None:
        if pool.retired or pool is not self._pool:
            return
        logger.debug("replacing Port's connection pool: %s", why)
        pool.retired = True
        self._pool = _Pool(self._factory())
        self._resets += 1

    # --- entities -----------------------------------------------------------------------

    async def upsert_entities(
        self,
        blueprint: str,
        entities: Sequence[Mapping[str, Any]],
        *,
        merge: bool,
        create_missing_related_entities: bool,
    ) -> UpsertResult:
        """Bulk upserts (≤ 20 entities and ≤ 1 MiB each, sent concurrently); 413 → one by one."""
        params = {
            "upsert": "true",
            "merge": _flag(merge),
            "create_missing_related_entities": _flag(create_missing_related_entities),
        }
        upserted: list[Any] = []
        errors: list[EntityError] = []

        async def send(batch: list[Mapping[str, Any]]) -> None:
            result = await self._upsert_batch(blueprint, batch, params)
            upserted.extend(result.upserted)
            errors.extend(result.errors)

        batches = _batches(entities)
        await _each(send, batches)
        return UpsertResult(tuple(upserted), tuple(errors))

    async def _upsert_batch(
        self, blueprint: str, batch: list[Mapping[str, Any]], params: Mapping[str, str]
    ) -> UpsertResult:
        path = f"/v1/blueprints/{quote(blueprint, safe='')}/entities/bulk"
        response = await self.request(
            "POST",
            path,
            json_body={"entities": batch},
            params=params,
            retryable=True,
            accept=(413,),
        )
        if response.status_code == 413:
            logger.info("bulk upsert of %d entities too large: sending them one by one", len(batch))
            return await self._upsert_singly(blueprint, batch, params)
        data = response.json()
        upserted = tuple(e.get("identifier") for e in data.get("entities", []))
        errors = tuple(
            EntityError(
                blueprint,
                e.get("identifier", batch[e["index"]].get("identifier") if "index" in e else None),
                int(e.get("statusCode", 422)),
                str(e.get("error", "error")),
                str(e.get("message", "")),
            )
            for e in data.get("errors", [])
        )
        return UpsertResult(upserted, errors)

    async def _upsert_singly(
        self, blueprint: str, batch: list[Mapping[str, Any]], params: Mapping[str, str]
    ) -> UpsertResult:
        upserted: list[Any] = []
        errors: list[EntityError] = []

        async def one(entity: Mapping[str, Any]) -> None:
            try:
                await self.upsert_entity(blueprint, entity, params=params)
                upserted.append(entity.get("identifier"))
            except PortApiError as error:
                if error.transient:
                    raise
                errors.append(
                    EntityError(
                        blueprint, entity.get("identifier"), error.status, error.code, error.message
                    )
                )

        await _each(one, batch)
        return UpsertResult(tuple(upserted), tuple(errors))

    async def upsert_entity(
        self, blueprint: str, entity: Mapping[str, Any], *, params: Mapping[str, str]
    ) -> dict[str, Any]:
        """One upsert; returns Port's stored entity."""
        path = f"/v1/blueprints/{quote(blueprint, safe='')}/entities"
        response = await self.request("POST", path, json_body=entity, params=params, retryable=True)
        return dict(response.json().get("entity", {}))

    async def delete_entities(
        self, blueprint: str, identifiers: Sequence[str], *, delete_dependents: bool
    ) -> list[str]:
        """Bulk deletes (≤ 100 per request, sent concurrently); the identifiers Port deleted."""
        path = f"/v1/blueprints/{quote(blueprint, safe='')}/bulk/entities/delete"
        params = {"delete_dependents": _flag(delete_dependents)}
        deleted: list[str] = []

        async def send(chunk: list[str]) -> None:
            response = await self.request(
                "POST", path, json_body={"entities": chunk}, params=params, retryable=True
            )
            deleted.extend(response.json().get("deletedEntities", []))

        chunks = [
            list(identifiers[start : start + BULK_DELETE_MAX])
            for start in range(0, len(identifiers), BULK_DELETE_MAX)
        ]
        await _each(send, chunks)
        return deleted

    async def delete_entity(
        self, blueprint: str, identifier: str, *, delete_dependents: bool
    ) -> bool:
        """Delete one entity; False when Port did not have it."""
        path = f"/v1/blueprints/{quote(blueprint, safe='')}/entities/{quote(identifier, safe='')}"
        response = await self.request(
            "DELETE",
            path,
            params={"delete_dependents": _flag(delete_dependents)},
            retryable=True,
            accept=(404,),
        )
        return response.status_code != 404

    async def search_entities(
        self, query: Mapping[str, Any], *, params: Params | None = None
    ) -> list[dict[str, Any]]:
        """Entities matching a Port search query (``{combinator, rules}``)."""
        response = await self.request(
            "POST", "/v1/entities/search", json_body=query, params=params, retryable=True
        )
        return list(response.json().get("entities", []))

    # --- what a resync needs ----------------------------------------------------------------

    @property
    def datasource(self) -> Datasource:
        """This integration's datasource, from the user agent (a ``ValueError`` if it is not
        Ocean's ``port-ocean/{type}/{version}/{identifier}/{agent}``)."""
        return Datasource.from_user_agent(self.user_agent)

    async def current_entities(
        self, blueprint: str, identifiers: Sequence[str], *, include: Sequence[str]
    ) -> list[dict[str, Any]]:
        """The entities of ``blueprint`` among ``identifiers`` that this integration owns, with
        the fields ``include`` names (e.g. ``properties.tier``): Ocean's diff search, by
        ``$identifier in [...]``, 50 identifiers a search, the searches sent concurrently."""
        datasource = self.datasource
        params: Params = {"exclude_calculated_properties": "true", "include": list(include)}
        found: list[dict[str, Any]] = []

        async def search(chunk: Sequence[str]) -> None:
            query = {
                "combinator": "and",
                "rules": [
                    {"property": "$identifier", "operator": "in", "value": list(chunk)},
                    {"property": "$blueprint", "operator": "=", "value": blueprint},
                    *datasource.rules(),
                ],
            }
            found.extend(await self.search_entities(query, params=params))

        chunks = [
            identifiers[i : i + SEARCH_CHUNK] for i in range(0, len(identifiers), SEARCH_CHUNK)
        ]
        await _each(search, chunks)
        return found

    async def owned_entity_pages(
        self, *, before: datetime | None = None, limit: int = OWNED_PAGE_SIZE
    ) -> AsyncGenerator[list[dict[str, Any]], None]:
        """The entities this integration owns (its datasource), a page (``limit``) at a time:
        ``POST /v1/blueprints/entities/datasource-entities``, following ``next``. With ``before``
        (a timezone-aware time), only those last updated before it.

        Only the current page is held, and of each entity only ``OWNED_FIELDS``, trimmed as
        it is parsed (on a thread): whole entities would hold their properties too. The generator awaits requests and nothing else (no nursery
        or cancel scope spans its ``yield``), so it may be left unfinished; use
        ``contextlib.aclosing`` to close it promptly.
        """
        datasource = self.datasource
        body: dict[str, Any] = {
            "datasource_prefix": datasource.prefix,
            "datasource_suffix": datasource.suffix,
            "limit": limit,
        }
        if before is not None:
            if before.tzinfo is None:
                raise ValueError("before must be timezone-aware")
            body["before"] = before.isoformat()  # as Ocean sends it
        path = "/v1/blueprints/entities/datasource-entities"
        while True:
            response = await self.request("POST", path, json_body=body, retryable=True)
            data = await trio.to_thread.run_sync(_owned_page, response.content)
            del response
            yield list(data.get("entities") or [])
            following = data.get("next")
            if not following:
                return
            body["from"] = following

    async def get_resync_request(self, identifier: str) -> dict[str, Any] | None:
        """The integration's latest resync request (``{"id", "updatedAt", ...}``), or None."""
        response = await self.request(
            "GET", f"/v1/integration/{quote(identifier, safe='')}/resync-request", retryable=True
        )
        request = response.json().get("request")
        return dict(request) if isinstance(request, dict) else None

    async def patch_resync_state(
        self, identifier: str, state: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Report the integration's resync state; the stored ``resyncState`` (with Port's
        ``updatedAt``), or None when it failed.

        Never raises (Ocean's ``should_raise=False``): a failure is logged. Unlike Ocean, which
        never retries a PATCH, transient failures are retried: the body is a whole state, so
        sending it twice is harmless.
        """
        path = f"/v1/integration/{quote(identifier, safe='')}/resync-state"
        try:
            response = await self.request("PATCH", path, json_body=state, retryable=True)
            integration = response.json().get("integration")
        except (PortApiError, httpx.HTTPError, ValueError) as error:
            logger.warning(
                "reporting resync state %s to Port failed: %s", state.get("status"), error
            )
            return None
        found = integration.get("resyncState") if isinstance(integration, dict) else None
        return dict(found) if isinstance(found, dict) else None

    # --- blueprints and the integration -------------------------------------------------

    async def get_blueprint(self, identifier: str) -> dict[str, Any] | None:
        response = await self.request(
            "GET", f"/v1/blueprints/{quote(identifier, safe='')}", retryable=True, accept=(404,)
        )
        return None if response.status_code == 404 else dict(response.json()["blueprint"])

    async def create_blueprint(self, blueprint: Mapping[str, Any]) -> None:
        """Create a blueprint; one that already exists (409) is left as it is."""
        await self.request(
            "POST", "/v1/blueprints", json_body=blueprint, retryable=True, accept=(409,)
        )

    async def get_integration(self, identifier: str) -> dict[str, Any] | None:
        response = await self.request(
            "GET", f"/v1/integration/{quote(identifier, safe='')}", retryable=True, accept=(404,)
        )
        return None if response.status_code == 404 else dict(response.json()["integration"])

    async def create_integration(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create the integration; if another process just did (409), the one Port has."""
        response = await self.request(
            "POST", "/v1/integration", json_body=body, retryable=False, accept=(409,)
        )
        if response.status_code == 409:
            found = await self.get_integration(str(body["installationId"]))
            if found is not None:
                return found
            raise PortApiError(
                409,
                "identifier_taken",
                "Port said the integration exists, then that it does not",
                method="POST",
                path="/v1/integration",
            )
        return dict(response.json()["integration"])

    async def patch_integration(self, identifier: str, body: Mapping[str, Any]) -> dict[str, Any]:
        response = await self.request(
            "PATCH",
            f"/v1/integration/{quote(identifier, safe='')}",
            json_body=body,
            retryable=False,
        )
        return dict(response.json()["integration"])

    # --- the organization -----------------------------------------------------------------

    async def get_organization(self) -> dict[str, Any]:
        """``GET /v1/organization``: the organization (``id``, ``featureFlags``, …)."""
        response = await self.request("GET", "/v1/organization", retryable=True)
        return dict(response.json()["organization"])

    async def get_kafka_credentials(self) -> KafkaCredentials | None:
        """``GET /v1/kafka-credentials``: the organization's Kafka login; None when Port has none."""
        response = await self.request("GET", "/v1/kafka-credentials", retryable=True)
        credentials = response.json().get("credentials")
        if not isinstance(credentials, dict):
            return None
        return KafkaCredentials(str(credentials["username"]), str(credentials["password"]))


async def _each(fn: Callable[[_T], Awaitable[None]], parts: Sequence[_T]) -> None:
    """``fn(part)`` for every part, concurrently (in this task when there is one); a failure
    raises one error, as ``_one_error`` picks it."""
    if len(parts) == 1:
        await fn(parts[0])
        return
    with _one_error():
        async with trio.open_nursery() as nursery:
            for part in parts:
                nursery.start_soon(fn, part)


@contextmanager
def _one_error() -> Iterator[None]:
    """Concurrent requests that failed raise one of their errors (a transient one first), not a
    group: callers (the applier) decide on retries by the error's kind."""
    try:
        yield
    except BaseExceptionGroup as group:
        leaves = list(_leaves(group))
        if any(not isinstance(e, Exception) for e in leaves):
            raise  # Cancelled and friends go on as they are
        transient = [
            e
            for e in leaves
            if isinstance(e, httpx.TransportError) or (isinstance(e, PortApiError) and e.transient)
        ]
        raise (transient or leaves)[0] from group


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            yield from _leaves(error)
        else:
            yield error


def _describe(error: httpx.TransportError) -> str:
    """``ConnectError: [Errno 111] Connection refused``, or the class name when httpx gives no text."""
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _batches(entities: Sequence[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """Greedy batches of at most 20 entities and 1 MiB of JSON."""
    batches: list[list[Mapping[str, Any]]] = []
    current: list[Mapping[str, Any]] = []
    size = 0
    for entity in entities:
        entity_size = len(json.dumps(entity)) + 1
        if current and (len(current) == BULK_MAX_ENTITIES or size + entity_size > BULK_MAX_BYTES):
            batches.append(current)
            current, size = [], 0
        current.append(entity)
        size += entity_size
    if current:
        batches.append(current)
    return batches


def _asked_delay(response: httpx.Response) -> float | None:
    """Seconds the server asks to wait: ``Retry-After`` (seconds or date), ``x-ratelimit-reset``."""
    for name in ("retry-after", "x-ratelimit-reset"):
        raw = response.headers.get(name)
        if not raw:
            continue
        try:
            value = float(raw)
        except ValueError:
            try:
                parsed = email.utils.parsedate_to_datetime(raw) if name == "retry-after" else None
            except (TypeError, ValueError):
                parsed = None
            if parsed is None:
                continue
            return max(0.0, parsed.timestamp() - time.time())
        if not math.isfinite(value):
            continue
        # Large values are epoch timestamps (as Ocean reads them).
        return max(0.0, value - time.time()) if value > 10_000 else max(0.0, value)
    return None


def _error(response: httpx.Response, method: str, path: str) -> PortApiError:
    try:
        data = response.json()
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    return PortApiError(
        response.status_code,
        str(data.get("error", "http_error")),
        str(data.get("message", response.text[:200])),
        method=method,
        path=path,
    )


def _owned_page(body: bytes) -> dict[str, Any]:
    """A datasource-entities answer with each entity trimmed to ``OWNED_FIELDS`` as it is
    parsed: an object with an identifier and a blueprint is an entity (what it nests is
    dropped with it). The Python hook also lets the loop's thread take the GIL in between."""

    def trimmed(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        found = dict(pairs)
        if "identifier" in found and "blueprint" in found:
            return {key: found[key] for key in OWNED_FIELDS if key in found}
        return found

    parsed = json.loads(body, object_pairs_hook=trimmed)
    return parsed if isinstance(parsed, dict) else {}
