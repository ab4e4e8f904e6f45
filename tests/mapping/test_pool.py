"""The mapping pool: big inputs mapped in worker processes give exactly the in-process result,
really go through a worker, and no worker outlives its app; a worker that dies fails its call
(its event becomes a dead letter) instead of hanging it."""

from __future__ import annotations

import datetime
import functools
import logging
import marshal
import math
import multiprocessing
import os
import pickle
import resource
import signal
from pathlib import Path
from typing import Any, NoReturn

import attrs
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocean_trio import EventStatus, Integration, WebhookProcessingError
from ocean_trio.mapping import (
    CompiledPortAppConfig,
    live_event_changes,
    parse_port_app_config,
    register_raw_changes,
    unregister_raw_changes,
)
from ocean_trio.mapping._models import (
    EntityMapping,
    MappingsConfig,
    PortAppConfig,
    PortResourceConfig,
    ResourceConfig,
    Selector,
)
from ocean_trio.mapping._pool import (
    MappingPoolStatistics,
    _base_config,
    _map_in_worker,
    open_mapping_pool,
)
from ocean_trio.testing import make_settings, serve_integration

from ..processors import ItemProcessor

pytestmark = pytest.mark.slow  # each test starts worker processes (~1.5 s for the first job)

# Every rule the mapping has, so a difference between the two ways shows somewhere: selector
# false (a delete with parse_all), a selector that is not boolean, a field failing at run time
# (a warning, logged), itemsToParse with and without an array, a search identifier (never
# deleted, skipped by unregister), a bad icon, environment access.
CONFIG = {
    "enableMergeEntity": False,
    "resources": [
        {
            "kind": "item",
            "selector": {"query": '.status != "archived"', "jql": "project = X"},
            "port": {
                "entity": {
                    "mappings": {
                        "identifier": ".id",
                        "title": ".title",
                        "blueprint": '"item"',
                        "icon": ".icon",
                        "properties": {
                            "status": ".status",
                            "n": ".n | tonumber",
                            "size": ".data | length",
                            "path": "env.PATH | type",
                        },
                    }
                }
            },
        },
        {
            "kind": "item",
            "selector": {"query": ".flag"},
            "port": {"entity": {"mappings": {"identifier": ".id", "blueprint": '"flagged"'}}},
        },
        {
            "kind": "item",
            "selector": {"query": "true"},
            "port": {
                "itemsToParse": ".tags",
                "entity": {
                    "mappings": {
                        "identifier": ".item | tostring",
                        "blueprint": '"tag"',
                        "relations": {"owner": ".id"},
                    }
                },
            },
        },
        {
            "kind": "item",
            "selector": {"query": ".email != null"},
            "port": {
                "entity": {
                    "mappings": {
                        "identifier": {
                            "combinator": '"and"',
                            "rules": [
                                {"property": '"email"', "operator": '"="', "value": ".email"}
                            ],
                        },
                        "blueprint": '"person"',
                        "team": ".team",
                    }
                }
            },
        },
    ],
}

ITEMS: list[Any] = [
    {"id": "a", "title": "A", "status": "open", "flag": True, "n": "5", "tags": ["x", 2]},
    {"id": "b", "status": "archived", "flag": False, "n": "x", "email": "b@x.io", "team": 7},
    {"id": "c", "status": "open", "flag": "yes", "tags": "not an array"},
    {"id": "d", "status": "open", "flag": True, "icon": {"not": "a string"}, "tags": [{"k": 1}]},
    {"id": 5, "title": None, "flag": True, "data": {1: "int key", "k": [1.5, -0.0, 2**70]}},
    {"id": "é\u2028", "flag": True, "data": [{"k": i, "v": "ünï"} for i in range(6000)]},
    "not an object",
    {"id": "e", "labels": {"a set"}, "raw": b"bytes"},  # marshal takes them; JSON does not
]


def _config(resource_classes: dict[str, type[ResourceConfig]] | None = None) -> PortAppConfig:
    return parse_port_app_config(CONFIG, resource_classes=resource_classes)


def _custom_classes() -> dict[str, type[ResourceConfig]]:
    # Defined in a function, as an integration's classes loaded from a file path are: a
    # worker process cannot import (or unpickle) them.
    @attrs.frozen(kw_only=True)
    class JqlSelector(Selector):
        jql: str = ""

    @attrs.frozen(kw_only=True)
    class JqlResource(ResourceConfig):
        selector: JqlSelector

    attrs.resolve_types(JqlResource, globals(), {"JqlSelector": JqlSelector})
    return {"item": JqlResource}


def _calls(items: list[Any]) -> list[tuple[Any, tuple[Any, ...]]]:
    half = len(items) // 2
    return [
        (live_event_changes, ([(i, items[:half], items[half:]) for i in range(4)],)),
        (register_raw_changes, ("item", items)),
        (unregister_raw_changes, ("item", items)),
        (register_raw_changes, ("other kind", items)),
    ]


def _logged(caplog: pytest.LogCaptureFixture) -> list[tuple[str, int, str]]:
    records = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    caplog.clear()
    return records


async def test_big_inputs_map_in_a_worker_exactly_as_in_process(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="ocean_trio")
    compiled = CompiledPortAppConfig.compile(_config(_custom_classes()))
    logged = []
    async with open_mapping_pool(allow_env=True) as pool:
        for fn, args in _calls(ITEMS):
            expected = fn(compiled, *args)
            expected_logs = _logged(caplog)
            assert await pool.map(fn, compiled, *args) == expected
            assert _logged(caplog) == expected_logs
            logged.extend(expected_logs)
        # what the table compares is not empty: entities both ways, issues, warnings
        changes, issues = live_event_changes(compiled, *_calls(ITEMS)[0][1])
        assert changes.upserts
        assert changes.deletes
        assert {i.field for i in issues} == {"selector", "icon", "item"}
        assert any(".n | tonumber" in message for *_, message in logged)
        assert any("itemsToParse" in message for *_, message in logged)
        assert pool.statistics() == MappingPoolStatistics(
            jobs=4, thread_fallbacks=0, worker_deaths=0, idle_workers=1, running_workers=0
        )

        # marshal refuses a datetime: mapped on a thread, made JSON-compatible as in Ocean
        dated = [
            {"id": "t", "status": "open", "flag": True, "n": datetime.datetime(2026, 12, 1, 9)}
        ]
        expected = register_raw_changes(compiled, "item", dated)
        _logged(caplog)
        assert await pool.map(register_raw_changes, compiled, "item", dated) == expected
        assert pool.statistics().thread_fallbacks == 1


def test_the_worker_gets_the_config_with_base_classes_only() -> None:
    config = _config(_custom_classes())
    base = _base_config(config)
    assert [type(r) for r in base.resources] == [ResourceConfig] * 4
    assert {type(r.selector) for r in base.resources} == {Selector}
    assert type(base.resources[0].port) is PortResourceConfig
    assert type(base.resources[0].port.entity) is MappingsConfig
    assert type(base.resources[0].port.entity.mappings) is EntityMapping
    assert pickle.loads(pickle.dumps(base)) == base
    assert [r.port for r in base.resources] == [r.port for r in config.resources]
    assert [r.selector.query for r in base.resources] == [
        r.selector.query for r in config.resources
    ]
    assert attrs.evolve(base, resources=()) == attrs.evolve(config, resources=())


_leaf = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
_json = st.recursive(
    _leaf,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=4) | st.integers(0, 3), children, max_size=4)
    ),
    max_leaves=12,
)
_items = st.lists(
    st.fixed_dictionaries(
        {"id": st.text(min_size=1, max_size=4) | st.integers()},
        optional={
            key: _json
            for key in ("status", "title", "flag", "n", "tags", "icon", "email", "team", "data")
        }
        | {"status": st.sampled_from(["open", "archived"]), "flag": st.booleans()},
    )
    | _json,
    max_size=6,
)


@functools.cache
def _both_ways(allow_env: bool) -> tuple[CompiledPortAppConfig, PortAppConfig]:
    """The compiled config, and the base config as a worker receives it."""
    config = _config(_custom_classes())
    compiled = CompiledPortAppConfig.compile(config, allow_env=allow_env)
    return compiled, pickle.loads(pickle.dumps(_base_config(config)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=_items, allow_env=st.booleans())
def test_the_worker_side_equals_the_in_process_mapping(items: list[Any], allow_env: bool) -> None:
    # What crosses to a worker, without the process: marshal for the items, pickle for the
    # base config and the result; the compiled config is rebuilt from the base classes.
    compiled, sent = _both_ways(allow_env)
    for fn, args in _calls(items):
        expected = fn(compiled, *args)
        result = _map_in_worker(fn, f"hypothesis-{allow_env}", sent, allow_env, marshal.dumps(args))
        assert pickle.loads(pickle.dumps(result[:2])) == expected


def _die(compiled: CompiledPortAppConfig, *args: Any) -> NoReturn:
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


async def test_a_worker_killed_mid_job_fails_that_call_only() -> None:
    compiled = CompiledPortAppConfig.compile(_config())
    args: tuple[Any, ...] = ([(0, ITEMS, [])],)
    async with open_mapping_pool(allow_env=True) as pool:
        with trio.fail_after(30):
            with pytest.raises(WebhookProcessingError, match=r"exit code -9\) while mapping"):
                await pool.map(_die, compiled, *args)
            assert await pool.map(live_event_changes, compiled, *args) == live_event_changes(
                compiled, *args
            )
        assert pool.statistics() == MappingPoolStatistics(
            jobs=1, thread_fallbacks=0, worker_deaths=1, idle_workers=1, running_workers=0
        )


SLOW = "if .slow then (reduce range(0; 1e12) as $i (0; . + 1)) > 0 else true end"


async def test_a_cancelled_mapping_kills_its_worker() -> None:
    config = parse_port_app_config(
        {
            "resources": [
                {
                    "kind": "item",
                    "selector": {"query": SLOW},
                    "port": {"entity": {"mappings": {"identifier": ".id", "blueprint": '"b"'}}},
                }
            ]
        }
    )
    compiled = CompiledPortAppConfig.compile(config)
    before = set(multiprocessing.active_children())
    async with open_mapping_pool(allow_env=True) as pool:
        await pool.map(register_raw_changes, compiled, "item", [{"id": "warm"}])
        [worker] = set(multiprocessing.active_children()) - before
        with trio.move_on_after(0.5) as scope:
            await pool.map(register_raw_changes, compiled, "item", [{"id": "x", "slow": True}])
        assert scope.cancelled_caught
        assert worker.exitcode == -signal.SIGKILL
        assert pool.statistics().idle_workers == 0


def _big_item(identifier: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": identifier,
        "status": "open",
        "priority": "high",
        "data": list(range(6000)),
        **fields,
    }


async def test_only_big_inputs_start_a_worker_and_it_stops_with_the_app(
    integration_root: Path, tmp_path: Path
) -> None:
    integration = Integration(integration_root)
    integration.add_webhook_processor("/webhook", ItemProcessor)
    before = set(multiprocessing.active_children())
    async with serve_integration(integration, make_settings(tmp_path)) as server:
        pool, catalog = server.app.mapping_pool, server.app.catalog
        assert pool is not None
        assert catalog is not None
        await server.post_event("/webhook", {"item": {"id": "S-1", "status": "open"}})
        [(_, small)] = await server.next_outcomes(1)
        assert small.status is EventStatus.DONE
        assert pool.statistics() == MappingPoolStatistics(0, 0, 0, 0, 0)
        assert set(multiprocessing.active_children()) == before

        await server.post_event("/webhook", {"item": _big_item("BIG-1")})
        [(_, big)] = await server.next_outcomes(1)
        assert (big.status, big.upserts, big.deletes) == (EventStatus.DONE, 2, 0)
        assert pool.statistics().jobs == 1
        [worker] = set(multiprocessing.active_children()) - before
        assert worker.pid != os.getpid()
        assert await catalog.get_entity("urgentItem", "BIG-1") is not None

        # register_raw of a big input goes through the same worker
        await server.app.register_raw("item", [_big_item("BIG-2", priority="low")])
        assert pool.statistics().jobs == 2
        assert set(multiprocessing.active_children()) - before == {worker}
        assert await catalog.get_entity("item", "BIG-2") is not None
        assert await catalog.get_entity("urgentItem", "BIG-2") is None
    assert worker.exitcode == 0  # asked to stop, and stopped, when the app exited
    assert set(multiprocessing.active_children()) == before


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
async def test_a_worker_dying_mid_mapping_dead_letters_the_event(
    integration_root: Path, tmp_path: Path
) -> None:
    # itemsToParse-free mapping whose selector spins on items marked "slow"; the kernel kills
    # the worker (SIGXCPU) once it has used one more second of CPU than it had.
    (integration_root / ".port" / "resources" / "port-app-config.yml").write_text(
        f"""
resources:
  - kind: item
    selector: {{query: '{SLOW}'}}
    port: {{entity: {{mappings: {{identifier: .id, blueprint: '"item"'}}}}}}
"""
    )
    integration = Integration(integration_root)
    integration.add_webhook_processor("/webhook", ItemProcessor)
    before = set(multiprocessing.active_children())
    async with serve_integration(integration, make_settings(tmp_path)) as server:
        await server.post_event("/webhook", {"item": _big_item("OK-1")})
        [(_, first)] = await server.next_outcomes(1)
        assert first.status is EventStatus.DONE
        [worker] = set(multiprocessing.active_children()) - before
        assert worker.pid is not None
        limit = math.ceil(_cpu_seconds(worker.pid)) + 1
        resource.prlimit(worker.pid, resource.RLIMIT_CORE, (0, 0))
        resource.prlimit(
            worker.pid,
            resource.RLIMIT_CPU,
            (limit, resource.prlimit(worker.pid, resource.RLIMIT_CPU)[1]),
        )

        await server.post_event("/webhook", {"item": _big_item("SLOW-1", slow=True)})
        with trio.fail_after(30):
            [(entry, dead)] = await server.next_outcomes(1)
        assert dead.status is EventStatus.DEAD
        assert dead.error is not None
        assert f"mapping worker process died (pid {worker.pid}, exit code -24)" in dead.error
        [record] = await server.app.journal.records(EventStatus.DEAD)
        assert record.seq == entry.seq

        # the next big event gets a new worker
        await server.post_event("/webhook", {"item": _big_item("OK-2")})
        [(_, after)] = await server.next_outcomes(1)
        assert after.status is EventStatus.DONE
        assert server.app.mapping_pool is not None
        stats = server.app.mapping_pool.statistics()
        assert (stats.jobs, stats.worker_deaths, stats.idle_workers) == (2, 1, 1)
    assert set(multiprocessing.active_children()) == before
