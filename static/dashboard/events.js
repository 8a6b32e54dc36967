// The events explorer: the monitor's log through GET /events (filters by order, type and
// service), newest first, with live events from /ws/sagas/ that match the filters; each row links
// to its order's page.
"use strict";
(() => {
  const { esc } = Saga;
  const LIMIT = 500;
  let filters = {};
  let rows = [];
  const seen = new Set();

  function matches(e) {
    return (!filters.orderId || String(e.orderId) === filters.orderId) &&
      (!filters.type || e.eventType === filters.type) && (!filters.source || e.source === filters.source);
  }

  function render() {
    document.querySelector("#events tbody").innerHTML = rows.map((e) => `
      <tr data-event-id="${esc(e.eventId)}"><td>${new Date(e.timestamp).toISOString().slice(11, 23)}</td>
        <td>${e.orderId === null ? "" : `<a href="/sagas/${e.orderId}/">${e.orderId}</a>`}</td>
        <td>${esc(e.eventType)}</td><td>${esc(e.source)}</td><td>${esc(e.policy)}</td>
        <td>${e.partition}</td><td>${e.offset}</td><td><code>${esc(JSON.stringify(e.payload))}</code></td></tr>`).join("") ||
      `<tr><td colspan="8" class="empty">no events</td></tr>`;
  }

  async function load() {
    const params = new URLSearchParams({ ...filters, limit: LIMIT });
    const list = await Saga.get("/events?" + params.toString());
    rows = [];
    seen.clear();
    for (const e of list.reverse()) if (!seen.has(e.eventId)) { seen.add(e.eventId); rows.push(e); }
    render();
  }

  document.getElementById("event-filters").addEventListener("submit", (e) => {
    e.preventDefault();
    filters = Object.fromEntries([...new FormData(e.target)].filter(([, v]) => v.trim() !== ""));
    load().catch(console.error);
  });

  const params = new URLSearchParams(location.search);
  for (const name of ["orderId", "type", "source"]) {
    if (params.get(name)) {
      filters[name] = params.get(name);
      document.querySelector(`#event-filters [name=${name}]`).value = params.get(name);
    }
  }

  Saga.live("/ws/sagas/", (m) => {
    if (m.kind === "hello") { load().catch(console.error); return; }
    if (m.kind !== "event" || seen.has(m.event.eventId) || !matches(m.event)) return;
    seen.add(m.event.eventId);
    rows.unshift({ ...m.event, partition: m.partition, offset: m.offset });
    rows.length = Math.min(rows.length, LIMIT);
    render();
  });
})();
