"""The live page in a real browser: Debian's chromium (headless, driven by Selenium) on the real
app served by hypercorn on 127.0.0.1.

Selenium's calls block, so each runs on a thread (``trio.to_thread.run_sync``) while the trio
loop goes on serving the page, its feed and its APIs. Every wait is a ``WebDriverWait`` on the
DOM, bounded; nothing sleeps.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest
import trio
from selenium import webdriver
from selenium.webdriver import Chrome
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

from ocean_trio import EventPayload, Integration, ResourceConfig, WebhookEventRawResults
from ocean_trio.testing import TestServer, make_settings, serve_integration

from .processors import ItemProcessor

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
TOKEN = "page-admin-token"
WAIT_SECONDS = 20  # for one condition; the page's own refreshes take about 2 s
BLUEPRINTS = [
    {"identifier": "item", "title": "Item"},
    {"identifier": "urgentItem", "title": "Urgent <item>"},
]

_T = TypeVar("_T")

# The table's rows in one round trip: [seq, status, entities, trace id] each.
ROWS_JS = """return [...document.querySelectorAll('#event-rows tr[data-seq]')].map(
    tr => [Number(tr.dataset.seq), tr.cells[3].textContent, tr.cells[6].textContent,
           tr.cells[7].textContent])"""
ENTITIES_JS = """return [...document.querySelectorAll('#entity-rows tr')].map(
    tr => tr.cells[0].textContent)"""
DEAD_JS = (
    """return [...document.querySelectorAll('#dead-rows tr')].map(tr => Number(tr.dataset.seq))"""
)
STATS_JS = """return Object.fromEntries([...document.querySelectorAll('#stats dd')].map(
    dd => [dd.dataset.stat, dd.textContent]))"""
TABS_JS = """return [...document.querySelectorAll('#blueprints button')].map(b => b.textContent)"""


class FailingProcessor(ItemProcessor):
    """Fails (not retryably) items marked ``fail`` while ``broken``: they are dead-lettered."""

    broken: ClassVar[bool] = True

    async def handle_event(
        self, payload: EventPayload, resource_config: ResourceConfig
    ) -> WebhookEventRawResults:
        if FailingProcessor.broken and payload["item"].get("fail"):
            raise ValueError(f"item {payload['item']['id']} refused")
        return await super().handle_event(payload, resource_config)


@pytest.fixture(autouse=True)
def _broken() -> None:
    FailingProcessor.broken = True


def browser_or_skip() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if not missing:
        return
    if os.environ.get("CI"):
        pytest.fail(
            f"{', '.join(missing)} missing; `make test` installs chromium and chromium-driver"
        )
    pytest.skip(f"{', '.join(missing)} missing (apt-get install chromium chromium-driver)")


def start_chromium(profile: Path) -> Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    # The machine's network is closed: these keep Chromium from its background connections.
    for argument in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1400,1000",
    ]:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def wait(driver: Chrome, condition: Callable[[Chrome], _T | None], what: str) -> _T:
    """``condition``'s first truthy value, or a timeout naming ``what`` was awaited."""
    found = WebDriverWait(driver, WAIT_SECONDS).until(condition, f"waiting for {what}")
    assert found is not None
    return found


def text_of(driver: Chrome, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def rows(driver: Chrome) -> list[list[Any]]:
    found: list[list[Any]] = driver.execute_script(ROWS_JS)
    return found


def row_of(driver: Chrome, seq: int) -> list[Any] | None:
    return next((r for r in rows(driver) if r[0] == seq), None)


def wait_for_row(driver: Chrome, seq: int, status: str) -> list[Any]:
    def found(driver: Chrome) -> list[Any] | None:
        row = row_of(driver, seq)
        return row if row is not None and row[1] == status else None

    return wait(driver, found, f"event {seq} shown {status}")


def stats(driver: Chrome) -> dict[str, str]:
    found: dict[str, str] = driver.execute_script(STATS_JS)
    return {name: found[name] for name in ("accepted", "done", "dead", "pending")}


def entities(driver: Chrome) -> list[str]:
    found: list[str] = driver.execute_script(ENTITIES_JS)
    return found


async def run(function: Callable[..., _T], *args: Any) -> _T:
    return await trio.to_thread.run_sync(partial(function, *args))


def integration(root: Path) -> Integration:
    (root / ".port" / "resources" / "blueprints.json").write_text(json.dumps(BLUEPRINTS))
    result = Integration(root)
    result.add_webhook_processor("/webhook", FailingProcessor)
    return result


def item(identifier: str, title: str, **fields: object) -> dict[str, Any]:
    return {"item": {"id": identifier, "title": title, "status": "open", **fields}}


async def post(server: TestServer, payload: dict[str, Any]) -> int:
    """POST ``payload`` to the webhook path; its journal number, from ``/admin/events``."""
    posted = await server.post_event("/webhook", payload)
    assert posted.status_code == 202
    trace_id = posted.json()["trace_id"]
    [(entry, _)] = await server.next_outcomes(1)
    assert entry.event.trace_id == trace_id
    return entry.seq


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_the_live_page_in_a_real_browser(integration_root: Path, tmp_path: Path) -> None:
    browser_or_skip()
    settings = make_settings(tmp_path, admin={"token": TOKEN})
    async with serve_integration(integration(integration_root), settings) as server:
        driver = await run(start_chromium, tmp_path / "chromium-profile")
        try:
            await scenario(server, driver)
        finally:
            # chromedriver and chromium are always stopped, even when the test is cancelled
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(driver.quit)


async def scenario(server: TestServer, driver: Chrome) -> None:
    await run(driver.get, server.base_url + "/live/")
    await run(wait, driver, lambda d: text_of(d, "conn") == "live", "the feed's hello")
    # the catalog's blueprints, with their titles (escaped: a tag in a title is text)
    tabs = await run(wait, driver, lambda d: d.execute_script(TABS_JS), "blueprint tabs")
    assert tabs == ["Item (0)", "Urgent <item> (0)"]
    assert await run(text_of, driver, "dead-state") == "enter the admin token to list dead letters"

    # a webhook: its row appears live, done, with the entity it wrote
    done = await post(server, item("A-1", "Alpha one"))
    row = await run(wait_for_row, driver, done, "done")
    # an item, and no urgentItem (its selector deletes it)
    assert row[2] == "+1 \N{MINUS SIGN}1"

    # one that dead-letters; the token, typed into the page, lists it
    dead = await post(server, item("B-2", "Beta two", fail=True))
    await run(wait_for_row, driver, dead, "dead")
    await run(lambda: driver.find_element(By.ID, "token").send_keys(TOKEN))
    await run(lambda: driver.find_element(By.ID, "token-save").click())
    listed = await run(wait, driver, lambda d: d.execute_script(DEAD_JS), "the dead letters")
    assert listed == [dead]
    assert "token" not in str(await run(lambda: driver.current_url))

    # replay it (fixed now): the answer, the replayed event live, the dead letters emptied
    FailingProcessor.broken = False
    button = f'#dead-rows tr[data-seq="{dead}"] button'
    assert await run(lambda: driver.find_element(By.CSS_SELECTOR, button).text) == "Replay"
    await run(lambda: driver.find_element(By.CSS_SELECTOR, button).click())
    answer = await run(wait, driver, lambda d: text_of(d, "replay-answer"), "the replay's answer")
    replayed = re.fullmatch(r"replayed 1: #(\d+) → #(\d+) \(/webhook\)", answer)
    assert replayed is not None, answer
    assert int(replayed[1]) == dead
    new = int(replayed[2])
    assert new > dead
    [(entry, outcome)] = await server.next_outcomes(1)
    assert (entry.seq, outcome.status.value) == (new, "done")
    await run(wait_for_row, driver, new, "done")
    await run(wait, driver, lambda d: d.execute_script(DEAD_JS) == [], "an empty dead-letter list")
    assert await run(text_of, driver, "dead-state") == "no dead letters"

    # the replayed event's details: its run, and its payload from the admin API
    details = f'#event-rows tr[data-seq="{new}"] button'
    await run(lambda: driver.find_element(By.CSS_SELECTOR, details).click())
    payload = await run(
        wait, driver, lambda d: text_of(d, "details-payload"), "the replayed event's payload"
    )
    assert json.loads(payload) == item("B-2", "Beta two", fail=True)
    assert payload.startswith('{\n  "item": {\n    "')  # pretty-printed
    runs = await run(text_of, driver, "details-runs")
    assert "FailingProcessor item succeeded 1" in runs

    # the status filter, client side
    await run(lambda: Select(driver.find_element(By.ID, "filter-status")).select_by_value("dead"))
    await run(wait, driver, lambda d: [r[0] for r in rows(d)] == [dead], "only the dead row")
    await run(lambda: Select(driver.find_element(By.ID, "filter-status")).select_by_value(""))
    await run(wait, driver, lambda d: [r[0] for r in rows(d)] == [new, dead, done], "every row")

    # the catalog, refreshed by the feed; a search narrows it
    await run(wait, driver, lambda d: entities(d) == ["A-1", "B-2"], "both entities listed")
    expected_tabs = ["Item (2)", "Urgent <item> (0)"]
    await run(wait, driver, lambda d: d.execute_script(TABS_JS) == expected_tabs, "the counts")
    search = await run(driver.find_element, By.ID, "search")
    await run(search.send_keys, "BETA")
    await run(wait, driver, lambda d: entities(d) == ["B-2"], "the search's one match")
    await run(search.clear)
    await run(search.send_keys, "a-")
    await run(wait, driver, lambda d: entities(d) == ["A-1"], "a search by identifier")

    # the counters and the start-up resync, from the feed's stats
    # (a replay is not a webhook accepted; its outcome is counted)
    counters = {"accepted": "2", "done": "2", "dead": "1", "pending": "0"}
    await run(wait, driver, lambda d: stats(d) == counters, "the counters")
    summary = await run(text_of, driver, "resync-summary")
    assert re.fullmatch(
        r"#\d+ (running|completed|failed|aborted) · start \(resyncOnStart\) · .*", summary
    )

    # nothing went wrong in the page (script errors, CSP refusals, failed requests)
    logs = await run(driver.get_log, "browser")
    assert [entry for entry in logs if entry["level"] == "SEVERE"] == []
