// The live page of ocean-trio: the event feed (WebSocket /live/feed), counters, resync progress,
// event details, dead letters with replay, and the catalog by blueprint with a search.
//
// Everything from the server reaches the DOM through textContent (never innerHTML). The feed
// may bring 1,000 events a second: messages only update a bounded store (MAX_ROWS events by
// seq), and the table is reconciled with it at most once per animation frame.
(() => {
  "use strict";

  const MAX_ROWS = 300;
  const ENTITY_LIMIT = 100;
  const TOKEN_KEY = "ocean-trio.admin-token";
  const REFRESH_MS = 2000; // at most one catalog (or dead-letter) refresh per this, driven by the feed
  const BACKOFF_FIRST_MS = 500;
  const BACKOFF_MAX_MS = 15000;
  const EVENT_STATUSES = new Set(["pending", "done", "no_match", "rejected", "dead"]);
  const RUN_STATUSES = new Set(["succeeded", "rejected", "failed", "timed_out"]);
  const RESYNC_CLASSES = {
    running: "status-pending",
    completed: "status-done",
    failed: "status-dead",
    aborted: "status-rejected",
  };

  const $ = (id) => document.getElementById(id);
  const api = (path) => new URL(path, document.baseURI).toString();
  const list = (value) => (Array.isArray(value) ? value : []);

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function statusClass(status, known) {
    return known.has(status) ? "status-" + status : "status-other";
  }

  // Formatters made once: toLocaleString() builds one per call, too slow for 2,000 rows a second.
  const TIME = new Intl.DateTimeFormat(undefined, {
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hour12: false,
  });
  const DATE_TIME = new Intl.DateTimeFormat(undefined, { dateStyle: "short", timeStyle: "medium" });
  const NUMBER = new Intl.NumberFormat();

  function time(at) {
    if (typeof at !== "number") return "–";
    const ms = String(Math.floor((at * 1000) % 1000)).padStart(3, "0");
    return TIME.format(at * 1000) + "." + ms;
  }

  function dateTime(at) {
    return typeof at === "number" ? DATE_TIME.format(at * 1000) : "–";
  }

  function millis(ms) {
    if (typeof ms !== "number") return "–";
    if (ms < 10) return ms.toFixed(2) + " ms";
    if (ms < 1000) return ms.toFixed(0) + " ms";
    return (ms / 1000).toFixed(2) + " s";
  }

  function number(value) {
    return typeof value === "number" ? NUMBER.format(value) : "–";
  }

  function text(value) {
    if (value === null || value === undefined) return "";
    return typeof value === "string" ? value : JSON.stringify(value);
  }

  function fields(dl, pairs) {
    dl.replaceChildren();
    for (const [name, value, className] of pairs) {
      dl.append(el("dt", name), el("dd", value === null || value === undefined ? "–" : value, className));
    }
  }

  // --- the admin token (sessionStorage: this tab only, never in a URL) ------------------

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  let adminOff = false; // from the feed's hello

  function adminMessage(status, body) {
    const error = body && typeof body.error === "string" ? body.error : "HTTP " + status;
    if (status === 401) return "wrong token: the admin API refused it";
    if (status === 404 && (adminOff || error.includes("admin API is off"))) {
      return "admin API off: set admin.token";
    }
    return error;
  }

  async function admin(path, init = {}) {
    const headers = { ...(init.headers || {}), Authorization: "Bearer " + token() };
    let response;
    try {
      response = await fetch(api("../admin/" + path), { ...init, headers, cache: "no-store" });
    } catch (error) {
      return { ok: false, status: 0, body: null, message: "request failed: " + error.message };
    }
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (response.ok) return { ok: true, status: response.status, body, message: "" };
    return { ok: false, status: response.status, body, message: adminMessage(response.status, body) };
  }

  function tokenChanged() {
    $("token-state").textContent = token() ? "token set (this tab only)" : "no token";
    loadDead();
    if (selected !== null) loadRecord(selected);
  }

  $("token").value = token();
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("token").value.trim();
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
    tokenChanged();
  });
  $("token-forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    $("token").value = "";
    tokenChanged();
  });

  // --- the event store and its table ----------------------------------------------------

  const store = new Map(); // seq → the latest event seen for it
  let order = []; // the stored seqs, newest (highest) first
  const dirty = new Set(); // seqs whose row must be filled again
  const rows = new Map(); // seq → its <tr>, exactly the rows in the table
  const tbody = $("event-rows");
  let paused = false;
  let frozen = null; // while paused: the store as it was, shown and scrolled through
  let arrivedWhilePaused = 0;
  let renderScheduled = false;
  let selected = null; // the seq whose details are shown
  let selectedChanged = false;

  function insertNewestFirst(seq) {
    if (order.length === 0 || seq > order[0]) {
      order.unshift(seq);
      return;
    }
    let low = 0;
    let high = order.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (order[mid] > seq) low = mid + 1;
      else high = mid;
    }
    order.splice(low, 0, seq);
  }

  function ingest(event) {
    if (!event || typeof event.seq !== "number") return;
    const seq = event.seq;
    const known = store.get(seq);
    if (known !== undefined) {
      if (known.kind === "finished" && event.kind !== "finished") return; // a late "accepted"
    } else if (order.length >= MAX_ROWS && seq < order[order.length - 1]) {
      return; // older than every event kept
    } else {
      insertNewestFirst(seq);
    }
    store.set(seq, event);
    dirty.add(seq);
    if (order.length > MAX_ROWS) {
      const gone = order.pop();
      store.delete(gone);
      dirty.delete(gone);
    }
    if (seq === selected) selectedChanged = true;
    if (event.kind === "finished") {
      if (event.upserts || event.deletes) catalogChanged();
      if (event.status === "dead") deadChanged();
    }
  }

  function scheduleRender() {
    if (renderScheduled) return;
    renderScheduled = true;
    requestAnimationFrame(render);
  }

  function matches(event, path, status) {
    return (!path || event.path === path) && (!status || event.status === status);
  }

  function makeRow(seq) {
    const tr = document.createElement("tr");
    tr.dataset.seq = String(seq);
    const button = el("button", "#" + seq, "seq");
    button.type = "button";
    button.setAttribute("aria-label", "details of event " + seq);
    const seqCell = el("td");
    seqCell.append(button);
    tr.append(
      el("td"),
      seqCell,
      el("td"),
      el("td"),
      el("td"),
      el("td", null, "num"),
      el("td", null, "num"),
      el("td", null, "trace"),
    );
    return tr;
  }

  function fillRow(tr, event) {
    const cells = tr.cells;
    cells[0].textContent = time(event.at);
    cells[2].textContent = text(event.path);
    cells[3].textContent = text(event.status);
    cells[3].className = statusClass(event.status, EVENT_STATUSES);
    cells[4].textContent = list(event.processors).map(text).join(", ");
    cells[5].textContent = millis(event.duration_ms);
    cells[6].textContent =
      event.kind === "finished" ? "+" + number(event.upserts) + " −" + number(event.deletes) : "";
    cells[7].textContent = text(event.trace_id);
    cells[7].title = text(event.trace_id);
    tr.classList.toggle("selected", event.seq === selected);
  }

  const scroller = $("event-scroll");
  const above = $("rows-above");
  const below = $("rows-below");
  const OVERSCAN = 10; // rows drawn beyond each edge of the view
  let rowHeight = 0; // measured on the first row drawn

  function render() {
    renderScheduled = false;
    const path = $("filter-path").value;
    const status = $("filter-status").value;
    const view = frozen || { order, events: store };
    const wanted = view.order.filter((seq) => matches(view.events.get(seq), path, status));
    // Only the rows in view (and OVERSCAN more each side) are in the table; the spacers
    // stand for the others. At 1,000 events a second the browser then lays out a few dozen
    // rows per frame instead of hundreds.
    const height = rowHeight || 28;
    const first = Math.max(0, Math.floor(scroller.scrollTop / height) - OVERSCAN);
    const shown = wanted.slice(first, first + Math.ceil(scroller.clientHeight / height) + 2 * OVERSCAN);
    // The rows between the spacers are newest first, like `wanted`: walk both, inserting,
    // moving and filling only what changed; what is left after the cursor goes.
    let cursor = above.nextSibling;
    for (const seq of shown) {
      const event = view.events.get(seq);
      let tr = rows.get(seq);
      if (tr === undefined) {
        tr = makeRow(seq);
        rows.set(seq, tr);
        fillRow(tr, event);
      } else if (dirty.has(seq)) {
        fillRow(tr, event);
      }
      if (tr === cursor) cursor = cursor.nextSibling;
      else tbody.insertBefore(tr, cursor);
    }
    while (cursor !== below) {
      const next = cursor.nextSibling;
      rows.delete(Number(cursor.dataset.seq));
      cursor.remove();
      cursor = next;
    }
    dirty.clear();
    if (!rowHeight && rows.size) rowHeight = above.nextSibling.getBoundingClientRect().height;
    above.cells[0].style.height = first * (rowHeight || height) + "px";
    below.cells[0].style.height = (wanted.length - first - shown.length) * (rowHeight || height) + "px";
    const empty = $("events-empty");
    empty.hidden = wanted.length > 0;
    empty.textContent = view.events.size ? "No events match the filters." : "No events yet.";
    if (!paused && selectedChanged && selected !== null && store.has(selected)) {
      selectedChanged = false;
      showFeedDetails(store.get(selected));
      if (store.get(selected).kind === "finished") loadRecord(selected);
    }
  }

  function receiveEvents(events) {
    for (const event of list(events)) ingest(event);
    if (paused) {
      arrivedWhilePaused += list(events).length;
      $("paused-note").textContent = "paused: " + number(arrivedWhilePaused) + " events arrived";
    } else {
      scheduleRender();
    }
  }

  $("pause").addEventListener("click", () => {
    paused = !paused;
    frozen = paused ? { order: [...order], events: new Map(store) } : null;
    if (!paused) for (const seq of rows.keys()) dirty.add(seq); // changed meanwhile, maybe
    const button = $("pause");
    button.setAttribute("aria-pressed", String(paused));
    button.textContent = paused ? "Resume" : "Pause";
    arrivedWhilePaused = 0;
    $("paused-note").textContent = paused ? "paused" : "";
    scheduleRender();
  });
  // The filters apply at once, even while paused (to what the page held at the pause).
  $("filter-path").addEventListener("change", scheduleRender);
  $("filter-status").addEventListener("change", scheduleRender);
  scroller.addEventListener("scroll", scheduleRender, { passive: true });
  tbody.addEventListener("click", (event) => {
    const tr = event.target.closest("tr[data-seq]");
    if (tr) showDetails(Number(tr.dataset.seq));
  });

  let droppedTotal = 0;
  const droppedByStatus = {};

  function receiveDropped(message) {
    droppedTotal += typeof message.events === "number" ? message.events : 0;
    for (const [status, count] of Object.entries(message.by_status || {})) {
      if (typeof count === "number") droppedByStatus[status] = (droppedByStatus[status] || 0) + count;
    }
    const parts = Object.entries(droppedByStatus).map(([s, n]) => s + " " + number(n));
    const note = $("dropped");
    note.textContent =
      number(droppedTotal) + " events not shown (client too slow)" + (parts.length ? ": " + parts.join(", ") : "");
    note.hidden = false;
  }

  // --- counters and resync ----------------------------------------------------------------

  function receiveStats(message) {
    const finished = message.finished || {};
    for (const dd of document.querySelectorAll("#stats dd[data-stat]")) {
      const name = dd.dataset.stat;
      const value = name === "accepted" || name === "pending" ? message[name] : finished[name] || 0;
      dd.textContent = number(value);
    }
    showResync(message.resync);
  }

  function showResync(resync) {
    const summary = $("resync-summary");
    const table = $("resync-kinds");
    const reconciliation = $("resync-reconciliation");
    const error = $("resync-error");
    if (!resync) {
      summary.replaceChildren("no resync yet");
      table.hidden = true;
      reconciliation.hidden = true;
      error.hidden = true;
      return;
    }
    const status = el("span", resync.status, RESYNC_CLASSES[resync.status] || "status-other");
    summary.replaceChildren(
      "#" + text(resync.id) + " ",
      status,
      " · " + text(resync.reason) + " · " + (typeof resync.seconds === "number" ? resync.seconds.toFixed(1) + " s" : "–"),
    );
    const body = table.tBodies[0];
    body.replaceChildren();
    for (const kind of list(resync.kinds)) {
      const errors = list(kind.errors);
      const tr = document.createElement("tr");
      tr.append(
        el("td", text(kind.kind)),
        el("td", number(kind.items), "num"),
        el("td", number(kind.upserted), "num"),
        el("td", number(kind.skipped), "num"),
        el("td", number(kind.failed), "num"),
        el("td", typeof kind.seconds === "number" ? kind.seconds.toFixed(1) : "–", "num"),
        el("td", errors.length ? errors.length + ": " + text(errors[0]) : "", "wrap error"),
      );
      body.append(tr);
    }
    table.hidden = list(resync.kinds).length === 0;
    const r = resync.reconciliation;
    reconciliation.hidden = !r;
    if (r) {
      reconciliation.textContent =
        "reconciliation: owned " + number(r.owned) + ", stale " + number(r.stale) + ", deleted " + number(r.deleted) +
        (r.skipped_reason ? " (nothing deleted: " + text(r.skipped_reason) + ")" : "");
    }
    error.hidden = !resync.error;
    error.textContent = text(resync.error);
  }

  // --- event details ------------------------------------------------------------------------

  function showDetails(seq) {
    const event = (frozen ? frozen.events : store).get(seq);
    if (event === undefined) return;
    if (selected !== null && rows.has(selected)) rows.get(selected).classList.remove("selected");
    selected = seq;
    if (rows.has(seq)) rows.get(seq).classList.add("selected");
    $("details-empty").hidden = true;
    $("details").hidden = false;
    showFeedDetails(event);
    loadRecord(seq);
  }

  function showFeedDetails(event) {
    fields($("details-fields"), [
      ["seq", "#" + event.seq],
      ["status", text(event.status), statusClass(event.status, EVENT_STATUSES)],
      ["path", text(event.path)],
      ["time", time(event.at)],
      ["trace id", text(event.trace_id)],
      ["delivery id", event.delivery_id === null ? null : text(event.delivery_id)],
      ["processors", list(event.processors).map(text).join(", ") || null],
      ["duration", millis(event.duration_ms)],
      ["latency", millis(event.latency_ms)],
      ["entities", event.kind === "finished" ? "+" + number(event.upserts) + " −" + number(event.deletes) : null],
      ["error", event.error === null ? null : text(event.error), "error"],
    ]);
    const body = $("details-runs").tBodies[0];
    body.replaceChildren();
    for (const run of list(event.runs)) {
      const tr = document.createElement("tr");
      tr.append(
        el("td", text(run.processor)),
        el("td", run.kind === null ? "–" : text(run.kind)),
        el("td", text(run.status), statusClass(run.status, RUN_STATUSES)),
        el("td", number(run.attempts), "num"),
        el("td", run.error === null ? "" : text(run.error), "wrap error"),
      );
      body.append(tr);
    }
    if (!list(event.runs).length) {
      const tr = document.createElement("tr");
      const td = el("td", event.kind === "finished" ? "no runs" : "not run yet", "muted");
      td.colSpan = 5;
      tr.append(td);
      body.append(tr);
    }
  }

  let recordRequest = 0;

  function headerLines(headers) {
    const pairs = Array.isArray(headers) ? headers : Object.entries(headers || {});
    return pairs.map((pair) => text(pair[0]) + ": " + text(pair[1])).join("\n");
  }

  async function loadRecord(seq) {
    const note = $("details-admin");
    const record = $("details-record");
    const request = ++recordRequest;
    if (!token()) {
      note.textContent = "enter the admin token to see payloads";
      record.hidden = true;
      return;
    }
    note.textContent = "loading…";
    const answer = await admin("events/" + encodeURIComponent(String(seq)));
    if (request !== recordRequest) return; // another event was clicked meanwhile
    if (!answer.ok || !answer.body || !answer.body.event) {
      note.textContent = answer.message || "no record";
      record.hidden = true;
      return;
    }
    const event = answer.body.event;
    note.textContent = "";
    fields($("details-record-fields"), [
      ["status", text(event.status), statusClass(event.status, EVENT_STATUSES)],
      ["attempts", number(event.attempts)],
      ["group", event.group_id === null ? null : text(event.group_id)],
      ["received", dateTime(event.received_at)],
      ["updated", dateTime(event.updated_at)],
      ["error", event.error === null ? null : text(event.error), "error"],
    ]);
    $("details-payload").textContent = JSON.stringify(event.payload, null, 2);
    $("details-headers").textContent = headerLines(event.headers);
    record.hidden = false;
  }

  // --- dead letters -----------------------------------------------------------------------

  let deadRequest = 0;

  async function loadDead() {
    const state = $("dead-state");
    const body = $("dead-rows");
    const request = ++deadRequest;
    if (!token()) {
      state.textContent = adminOff ? "admin API off: set admin.token" : "enter the admin token to list dead letters";
      body.replaceChildren();
      return;
    }
    state.textContent = "loading…";
    const answer = await admin("events?status=dead&limit=100");
    if (request !== deadRequest) return;
    if (!answer.ok) {
      state.textContent = answer.message;
      body.replaceChildren();
      return;
    }
    const events = list(answer.body && answer.body.events);
    // Rows already shown are kept (a Replay button about to be clicked stays the same button).
    const shown = new Map([...body.rows].map((tr) => [tr.dataset.seq, tr]));
    const seqs = events.map((event) => String(event.seq));
    if (seqs.join(",") !== [...shown.keys()].join(",")) {
      body.replaceChildren(...events.map((event) => shown.get(String(event.seq)) || deadRow(event)));
    }
    state.textContent = events.length ? number(events.length) + " dead letters" : "no dead letters";
  }

  function deadRow(event) {
    const tr = document.createElement("tr");
    tr.dataset.seq = String(event.seq);
    const button = el("button", "Replay");
    button.type = "button";
    button.setAttribute("aria-label", "replay event " + event.seq);
    button.addEventListener("click", () => replay(event.seq, button));
    const action = el("td");
    action.append(button);
    tr.append(
      el("td", "#" + event.seq),
      el("td", text(event.path)),
      el("td", dateTime(event.received_at)),
      el("td", number(event.attempts), "num"),
      el("td", text(event.error), "wrap error"),
      action,
    );
    return tr;
  }

  async function replay(seq, button) {
    button.disabled = true;
    const answer = await admin("events/replay", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ seqs: [seq] }),
    });
    const note = $("replay-answer");
    const replayed = list(answer.body && answer.body.events)
      .map((e) => "#" + e.old_seq + " → #" + e.seq + " (" + text(e.path) + ")")
      .join(", ");
    if (answer.ok) {
      note.textContent = "replayed " + number(answer.body.replayed) + ": " + replayed;
      note.className = "";
    } else {
      note.textContent = answer.message + (replayed ? " (replayed: " + replayed + ")" : "");
      note.className = "error";
    }
    note.hidden = false;
    await loadDead();
  }

  $("dead-refresh").addEventListener("click", loadDead);

  // --- the catalog --------------------------------------------------------------------------

  let blueprint = null;
  let counts = {};
  let catalogInPort = false;
  let entitiesRequest = 0;
  const tabs = new Map(); // blueprint id → its button

  async function getJson(path) {
    const response = await fetch(api(path), { cache: "no-store" });
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    return { response, body };
  }

  async function loadBlueprints() {
    const message = $("catalog-message");
    let answer;
    try {
      answer = await getJson("../catalog/blueprints");
    } catch (error) {
      message.textContent = "the catalog is unreachable: " + error.message;
      return false;
    }
    const { response, body } = answer;
    if (response.status === 404) {
      catalogInPort = true;
      $("catalog").hidden = true;
      message.textContent =
        "The catalog is not kept here: " + (body && body.error ? text(body.error) : "entities go to Port");
      return false;
    }
    if (!response.ok || !body) {
      message.textContent = body && body.error ? text(body.error) : "HTTP " + response.status;
      return false;
    }
    counts = body.counts || {};
    const titles = new Map();
    for (const b of list(body.blueprints)) {
      if (b && b.identifier !== undefined) titles.set(text(b.identifier), text(b.title || b.identifier));
    }
    for (const id of Object.keys(counts)) if (!titles.has(id)) titles.set(id, id);
    const ids = [...titles.keys()];
    if (blueprint === null || !titles.has(blueprint)) {
      blueprint = ids.find((id) => counts[id]) || ids[0] || null;
    }
    if (ids.join("\n") !== [...tabs.keys()].join("\n")) {
      tabs.clear();
      const group = $("blueprints");
      group.replaceChildren();
      for (const id of ids) {
        const button = el("button");
        button.type = "button";
        button.dataset.blueprint = id;
        button.addEventListener("click", () => selectBlueprint(id));
        tabs.set(id, button);
        group.append(button);
      }
    }
    for (const [id, button] of tabs) {
      button.textContent = titles.get(id) + " (" + number(counts[id] || 0) + ")";
      button.setAttribute("aria-pressed", String(id === blueprint));
    }
    $("catalog").hidden = false;
    message.textContent = ids.length ? "" : "No blueprints yet.";
    return true;
  }

  function selectBlueprint(id) {
    blueprint = id;
    for (const [other, button] of tabs) button.setAttribute("aria-pressed", String(other === id));
    loadEntities();
  }

  async function loadEntities() {
    const request = ++entitiesRequest;
    const state = $("entities-state");
    const body = $("entity-rows");
    if (blueprint === null) {
      body.replaceChildren();
      state.textContent = "";
      return;
    }
    const search = $("search").value.trim();
    const params = new URLSearchParams({ blueprint, limit: String(ENTITY_LIMIT) });
    if (search) params.set("search", search);
    let answer;
    try {
      answer = await getJson("../catalog/entities?" + params);
    } catch (error) {
      if (request === entitiesRequest) state.textContent = "request failed: " + error.message;
      return;
    }
    if (request !== entitiesRequest) return; // a newer search or tab won
    const { response, body: json } = answer;
    if (!response.ok || !json) {
      state.textContent = json && json.error ? text(json.error) : "HTTP " + response.status;
      return;
    }
    const entities = list(json.entities);
    body.replaceChildren(
      ...entities.map((entity) => {
        const tr = document.createElement("tr");
        tr.append(
          el("td", text(entity.identifier)),
          el("td", text(entity.title)),
          el("td", entity.properties ? JSON.stringify(entity.properties) : "", "json"),
          el("td", entity.relations ? JSON.stringify(entity.relations) : "", "json"),
          el("td", text(entity.updatedAt)),
        );
        return tr;
      }),
    );
    const total = counts[blueprint] || 0;
    state.textContent = search
      ? number(entities.length) + (entities.length === ENTITY_LIMIT ? "+" : "") + " matching"
      : number(entities.length) + " of " + number(total);
  }

  async function refreshCatalog() {
    if (await loadBlueprints()) await loadEntities();
  }

  // Feed-driven refreshes, each at most once per REFRESH_MS whatever the event rate.
  function throttled(action) {
    let timer = null;
    let last = 0;
    return () => {
      if (timer !== null) return;
      const wait = Math.max(0, last + REFRESH_MS - Date.now());
      timer = setTimeout(async () => {
        last = Date.now();
        try {
          await action();
        } finally {
          timer = null;
        }
      }, wait);
    };
  }

  const catalogChanged = throttled(async () => {
    if (!catalogInPort) await refreshCatalog();
  });
  const deadChanged = throttled(async () => {
    if (token()) await loadDead();
  });

  let searchTimer = null;
  $("search").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(loadEntities, 200);
  });

  // --- the feed -----------------------------------------------------------------------------

  let socket = null;
  let backoff = BACKOFF_FIRST_MS;

  function connection(state, label) {
    const node = $("conn");
    node.className = "conn conn-" + state;
    node.textContent = label;
  }

  function receiveHello(message) {
    backoff = BACKOFF_FIRST_MS;
    connection("live", "live");
    adminOff = !message.admin;
    $("server").textContent =
      "ocean-trio " + text(message.version) + " · role " + text(message.role) + " · pid " + text(message.pid) +
      (message.processing ? " · processing" : " · not processing");
    const select = $("filter-path");
    const current = select.value;
    select.replaceChildren(el("option", "all"));
    select.options[0].value = "";
    for (const path of list(message.paths)) {
      const option = el("option", text(path));
      option.value = text(path);
      select.append(option);
    }
    select.value = list(message.paths).includes(current) ? current : "";
    if (adminOff && !token()) loadDead();
  }

  function receive(message) {
    switch (message && message.type) {
      case "hello":
        receiveHello(message);
        break;
      case "events":
        receiveEvents(message.events);
        break;
      case "dropped":
        receiveDropped(message);
        break;
      case "stats":
        receiveStats(message);
        break;
      default:
        break; // a newer server's message: ignored
    }
  }

  function connect() {
    const url = new URL("feed", document.baseURI);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    connection("connecting", "connecting…");
    const ws = new WebSocket(url);
    socket = ws;
    ws.addEventListener("message", (message) => {
      let parsed;
      try {
        parsed = JSON.parse(message.data);
      } catch {
        return;
      }
      receive(parsed);
    });
    ws.addEventListener("close", () => {
      if (socket !== ws) return;
      socket = null;
      const delay = backoff * (0.75 + Math.random() * 0.5);
      backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
      connection("closed", "disconnected: reconnecting in " + Math.max(1, Math.round(delay / 1000)) + " s");
      setTimeout(connect, delay);
    });
  }

  tokenChanged();
  refreshCatalog();
  connect();
})();
