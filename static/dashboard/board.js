// The order board: one page of orders from /dashboard/board.json (filters and pagination are
// done by the server), refreshed row by row when their events arrive over /ws/sagas/; the
// service panel and the anomalies are pushed over the same socket.
"use strict";
(() => {
  const { esc, statusClass } = Saga;
  const canOperate = JSON.parse(document.getElementById("can-operate").textContent);
  const state = { page: 1, pages: 1, filters: {}, rows: new Map(), anomalies: new Map(), dirty: new Set(), live: new Map() };
  const tbody = document.querySelector("#orders tbody");

  // --- orders -------------------------------------------------------------------------------
  function query(extra) {
    const params = new URLSearchParams({ page: state.page, ...state.filters, ...extra });
    return "/dashboard/board.json?" + params.toString();
  }

  async function loadPage() {
    const data = await Saga.get(query({}));
    state.page = data.page;
    state.pages = data.pages;
    const select = document.querySelector("#filters select[name=status]");
    if (select.options.length === 2) {
      data.statuses.forEach((s) => select.add(new Option(s, s)));
      select.value = state.filters.status || "";
    }
    document.getElementById("page-info").textContent = `page ${data.page} of ${data.pages} (${data.count} orders)`;
    state.rows = new Map(data.orders.map((o) => [o.id, o]));
    for (const id of state.live.keys()) if (!state.rows.has(id)) state.live.delete(id);
    data.orders.forEach(noteAnomalies);
    render();
  }

  async function refreshRows() {
    const ids = [...state.dirty];
    state.dirty.clear();
    if (!ids.length) return;
    const data = await Saga.get(query({ ids: ids.join(","), page: 1 }));
    data.orders.forEach((o) => { state.rows.set(o.id, o); noteAnomalies(o); });
    render();
    // an event can reach the socket before the monitor records it: read those rows again soon
    for (const o of data.orders) {
      const seen = state.live.get(o.id);
      if (seen && (o.stepAt === null || o.stepAt < seen.timestamp) && seen.retries++ < 20) {
        state.dirty.add(o.id);
        setTimeout(refreshDirty, 250);
      }
    }
  }

  function step(o) {
    const seen = state.live.get(o.id);
    return seen && (o.stepAt === null || o.stepAt < seen.timestamp) ? seen.eventType : o.step || "";
  }

  function noteAnomalies(order) {
    if (order.anomalies.length) state.anomalies.set(order.id, order.anomalies);
    else state.anomalies.delete(order.id);
  }

  const refreshPage = Saga.debounce(() => loadPage().catch(console.error), 200);
  const refreshDirty = Saga.debounce(() => refreshRows().catch(console.error), 100);

  function timing(o, now) {
    if (o.status === "PENDING") {
      const left = o.deadline - now;
      return left > 0 ? `${(left / 1000).toFixed(1)} s left` : `${(-left / 1000).toFixed(1)} s overdue`;
    }
    return `age ${formatAge(now - o.createdAtMs)}`;
  }

  function formatAge(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    return s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
  }

  function badges(o) {
    const list = o.badges.map((b) => `<span class="badge ${b}">${b}</span>`);
    const anomalies = state.anomalies.get(o.id);
    if (anomalies) {
      const why = anomalies.map((a) => `${a.rule}: ${a.evidence}`).join("\n");
      list.push(`<span class="badge anomaly" title="${esc(why)}">anomaly</span>`);
    }
    return list.join(" ");
  }

  function render() {
    const now = Date.now();
    const rows = [...state.rows.values()].sort((a, b) => b.id - a.id);
    tbody.innerHTML = rows.map((o) => `
      <tr data-order="${o.id}" data-status="${esc(o.status)}" data-policy="${esc(o.policy)}">
        <td><a href="/sagas/${o.id}/">${o.id}</a></td><td>${esc(o.holderId)}</td><td>${o.amount}</td>
        <td>${esc(o.currencyId)}</td><td>${esc(o.policy)}</td>
        <td><span class="status ${statusClass(o.status)}" title="${esc(o.reason)}">${esc(o.status)}</span></td>
        <td class="timing">${timing(o, now)}</td><td class="step">${esc(step(o))}</td>
        <td class="badges">${badges(o)}</td>
      </tr>`).join("") || `<tr><td colspan="9" class="empty">no orders</td></tr>`;
  }

  setInterval(() => {  // the clock only: countdowns and ages, nothing fetched
    const now = Date.now();
    tbody.querySelectorAll("tr[data-order]").forEach((tr) => {
      const o = state.rows.get(Number(tr.dataset.order));
      if (o) tr.querySelector(".timing").textContent = timing(o, now);
    });
  }, 500);

  // --- service panel --------------------------------------------------------------------------
  function renderServices(services) {
    document.querySelector("#services tbody").innerHTML = services.map((s) => {
      const last = s.lastEvent ? `${esc(s.lastEvent.eventType)}${s.lastEvent.orderId !== null ? " #" + s.lastEvent.orderId : ""}` +
        ` <small>${formatAge(Date.now() - s.lastEvent.at)} ago</small>` : "—";
      const buttons = s.state === "unsupervised" ? "" :
        `<button type="button" data-action="stop" data-name="${s.name}" ${!canOperate || s.state === "stopped" ? "disabled" : ""}>stop</button>
         <button type="button" data-action="start" data-name="${s.name}" ${!canOperate || s.state === "running" ? "disabled" : ""}>start</button>`;
      return `<tr data-service="${s.name}" data-state="${esc(s.state)}">
        <td>${s.name}</td><td><span class="state ${esc(s.state)}">${esc(s.state)}</span></td>
        <td class="lag" title="${esc(s.lagSource)}">${s.lag}</td><td>${last}</td>
        <td>${s.armed === undefined ? "" : s.armed}</td><td>${buttons}</td></tr>`;
    }).join("");
  }

  document.getElementById("services").addEventListener("click", async (e) => {
    const button = e.target.closest("button[data-action]");
    if (!button) return;
    button.disabled = true;
    button.textContent = button.dataset.action === "stop" ? "stopping…" : "starting…";
    try {
      const data = await Saga.post(`/dashboard/services/${button.dataset.name}/${button.dataset.action}`);
      renderServices(data.services);
    } catch (error) {
      document.getElementById("scenario-result").textContent = error.message;
    }
  });

  // --- forms and scenarios -------------------------------------------------------------------
  function formData(form) {
    const data = Object.fromEntries(new FormData(form));
    if ("amount" in data) data.amount = Number(data.amount);  // points stay the decimal string typed: exact
    return data;
  }

  // A form's POST carries an Idempotency-Key that lives until an answer comes: a double click, or
  // a second try of the same values after a lost answer, is the same request (one order); after an
  // answer (a 5xx aside: the server stored nothing), or with other values, it is a new one.
  const pending = new WeakMap();  // form → {key, body} of its submission awaiting an answer

  async function submit(form, url) {
    const body = formData(form), text = JSON.stringify(body);
    let attempt = pending.get(form);
    if (!attempt || attempt.body !== text) pending.set(form, attempt = { key: Saga.newKey(), body: text });
    try {
      const data = await Saga.post(url, body, attempt.key);
      pending.delete(form);
      return data;
    } catch (error) {
      if (error.status && error.status < 500) pending.delete(form);
      throw error;
    }
  }

  document.getElementById("grant-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const out = document.getElementById("form-result");
    try {
      const account = await submit(e.target, "/points");
      out.textContent = `${account.userId} now has ${account.point} points`;
      out.className = "result ok";
    } catch (error) { out.textContent = error.message; out.className = "result error"; }
  });

  document.getElementById("order-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const out = document.getElementById("form-result");
    try {
      const order = await submit(e.target, "/orders");
      out.innerHTML = `order <a href="/sagas/${order.id}/">${order.id}</a> placed: ${esc(order.status)}`;
      out.className = "result ok";
      state.rows.set(order.id, { ...order, createdAtMs: Date.parse(order.createdAt), step: "OrderCreated", stepAt: null, badges: [], anomalies: [] });
      if (state.page === 1) refreshPage(); else render();
    } catch (error) { out.textContent = error.message; out.className = "result error"; }
  });

  // A scenario's button launches it; "… and compare them" launches the currencyId 200 pair and
  // opens the compare view of its safe and naive orders (/sagas/<safe>/compare/<naive>/).
  document.querySelector(".scenarios").addEventListener("click", async (e) => {
    const button = e.target.closest("button[data-scenario], button[data-scenario-compare]");
    if (!button) return;
    const out = document.getElementById("scenario-result");
    const name = button.dataset.scenario || button.dataset.scenarioCompare;
    button.disabled = true;
    out.textContent = `${button.textContent}: launching…`;
    try {
      const data = await Saga.post(`/dashboard/scenarios/${name}`);
      const compare = data.orders.length === 2 ? `/sagas/${data.orders[0].id}/compare/${data.orders[1].id}/` : null;
      if (compare && button.dataset.scenarioCompare) { location.assign(compare); return; }
      out.innerHTML = `${esc(button.textContent)}: ` + data.orders.map((o) =>
        `order <a href="/sagas/${o.id}/">${o.id}</a> (${esc(o.policy)}, currency ${esc(o.currencyId)})`).join(", ") +
        (compare ? ` — <a class="compare-link" href="${compare}">compare them</a>` : "");
      out.className = "result ok";
      refreshPage();
    } catch (error) { out.textContent = error.message; out.className = "result error"; }
    finally { button.disabled = false; }
  });

  // --- filters and pages -----------------------------------------------------------------------
  document.getElementById("filters").addEventListener("submit", (e) => {
    e.preventDefault();
    state.filters = Object.fromEntries([...new FormData(e.target)].filter(([, v]) => v.trim() !== ""));
    state.page = 1;
    // a filter the server refuses (a holder id with a space, say) says why where the count stands
    loadPage().catch((error) => { document.getElementById("page-info").textContent = error.message; });
  });
  document.getElementById("prev").addEventListener("click", () => { if (state.page > 1) { state.page--; loadPage(); } });
  document.getElementById("next").addEventListener("click", () => { if (state.page < state.pages) { state.page++; loadPage(); } });

  // --- live ------------------------------------------------------------------------------------
  Saga.live("/ws/sagas/", (m) => {
    if (m.kind === "hello") {
      loadPage().catch(console.error);  // (re)connected: read what happened meanwhile
      Saga.get("/dashboard/services.json").then((d) => renderServices(d.services)).catch(console.error);
    } else if (m.kind === "event") {
      const orderId = m.event.orderId;
      if (typeof orderId !== "number") return;
      const row = state.rows.get(orderId);
      if (row) {
        const seen = state.live.get(orderId);
        if (!seen || seen.timestamp <= m.event.timestamp) state.live.set(orderId, { eventType: m.event.eventType, timestamp: m.event.timestamp, retries: 0 });
        state.dirty.add(orderId);
        refreshDirty();
      } else if (state.page === 1 && m.event.eventType === "OrderCreated") {
        refreshPage();
      }
    } else if (m.kind === "services") {
      renderServices(m.services);
    } else if (m.kind === "consistency") {
      const table = document.getElementById("orders");
      table.dataset.checks = Number(table.dataset.checks || 0) + 1;  // how many verdicts arrived
      state.anomalies = new Map();
      m.anomalies.filter((a) => a.orderId !== null).forEach((a) => {
        state.anomalies.set(a.orderId, [...(state.anomalies.get(a.orderId) || []), a]);
      });
      render();
    }
  });
})();
