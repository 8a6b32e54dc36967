// One order's saga, drawn as swimlanes in plain SVG: one lane per service (order, exchange,
// point, deadline, then any other source such as an operator's), time in ms from the order's
// creation, the deadline as a vertical line, each event a mark with an arrow from its cause,
// transitions and compensations highlighted, dropped and ignored deliveries marked in the lane of
// the service that refused them. History comes from the monitor's log; live events from
// /ws/sagas/<id>/; both merge by eventId.
"use strict";
(() => {
  const { esc, statusClass } = Saga;
  const SVG = "http://www.w3.org/2000/svg";
  const LANES = ["order", "exchange", "point", "deadline"];
  let detail = JSON.parse(document.getElementById("saga-detail").textContent);
  const orderId = detail.order.id;
  const live = new Map();  // eventId → event seen on the socket, not yet in the monitor's log

  function events() {
    const byId = new Map();
    for (const e of detail.events) if (!byId.has(e.eventId)) byId.set(e.eventId, e);
    for (const [id, e] of live) {
      if (byId.has(id)) live.delete(id); else byId.set(id, e);
    }
    return [...byId.values()].sort((a, b) => a.timestamp - b.timestamp);
  }

  function kind(e, transitions) {
    if (e.eventType.endsWith("Compensated")) return "compensation";
    if (transitions.has(e.eventId) || ["OrderPlaced", "OrderRejected"].includes(e.eventType)) return "transition";
    return "other";
  }

  function el(name, attrs, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (parent) parent.appendChild(node);
    return node;
  }

  function draw() {
    const list = events();
    const order = detail.order;
    const t0 = order.createdAtMs;
    const deadlineAt = order.deadline - t0;
    const transitions = new Set(order.history.map((h) => h.eventId).filter(Boolean));
    const refused = detail.outcomes.filter((o) => o.outcome !== "applied");
    const lanes = [...LANES];
    for (const e of list) if (!lanes.includes(e.source)) lanes.push(e.source);
    const last = Math.max(deadlineAt, ...list.map((e) => e.timestamp - t0), ...refused.map((o) => o.handledAtMs - t0), 1);
    const width = 1100, left = 90, right = 170, laneH = 80, top = 30;
    const height = top + lanes.length * laneH + 30;
    const x = (t) => left + (Math.max(0, t) / (last * 1.08)) * (width - left - right);
    const y = (lane) => top + lanes.indexOf(lane) * laneH + laneH / 2;

    const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img", "aria-label": `saga of order ${orderId}` });
    const defs = el("defs", {}, svg);
    const marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" }, defs);
    el("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" }, marker);

    lanes.forEach((lane, i) => {
      el("rect", { x: 0, y: top + i * laneH, width, height: laneH, class: i % 2 ? "lane odd" : "lane" }, svg);
      el("text", { x: 8, y: y(lane) + 4, class: "lane-name" }, svg).textContent = lane;
    });
    const ticks = 8;
    for (let i = 0; i <= ticks; i++) {
      const t = Math.round((last * 1.08 * i) / ticks);
      el("line", { x1: x(t), x2: x(t), y1: top, y2: height - 24, class: "tick" }, svg);
      el("text", { x: x(t), y: height - 8, class: "tick-label", "text-anchor": "middle" }, svg).textContent = `${t} ms`;
    }
    const line = el("line", { x1: x(deadlineAt), x2: x(deadlineAt), y1: 8, y2: height - 24, class: "deadline-line", "data-testid": "deadline-line" }, svg);
    el("title", {}, line).textContent = `deadline at ${deadlineAt} ms`;
    el("text", { x: x(deadlineAt) + 4, y: 20, class: "deadline-label" }, svg).textContent = `deadline ${deadlineAt} ms`;

    // marks close in time on one lane take turns on three rows, so their labels stay readable
    const rows = new Map();
    function place(lane, px) {
      const last = rows.get(lane) || [-Infinity, -Infinity, -Infinity];
      rows.set(lane, last);
      let slot = [1, 0, 2].find((i) => px - last[i] > 150);
      if (slot === undefined) slot = last.indexOf(Math.min(...last));
      last[slot] = px;
      return y(lane) + (slot - 1) * 20;
    }
    const where = new Map();
    for (const e of list) {
      const px = x(e.timestamp - t0);
      where.set(e.eventId, { x: px, y: place(e.source, px) });
    }
    for (const e of list) {
      const cause = where.get(e.causationId), me = where.get(e.eventId);
      if (cause) el("path", { d: `M ${cause.x} ${cause.y} L ${me.x} ${me.y}`, class: "cause", "marker-end": "url(#arrow)" }, svg);
    }
    for (const e of list) {
      const p = where.get(e.eventId);
      const g = el("g", { class: `mark ${kind(e, transitions)}`, "data-event-type": e.eventType, "data-event-id": e.eventId }, svg);
      el("circle", { cx: p.x, cy: p.y, r: 7 }, g);
      el("text", { x: p.x + 9, y: p.y - 9, class: "mark-label" }, g).textContent = e.eventType;
      el("title", {}, g).textContent = `${e.eventType} from ${e.source} at ${e.timestamp - t0} ms` +
        (e.partition !== undefined ? ` (partition ${e.partition}, offset ${e.offset})` : "") + `\n${JSON.stringify(e.payload)}`;
    }
    for (const o of refused) {
      if (!lanes.includes(o.service)) continue;
      const px = x(o.handledAtMs - t0), py = place(o.service, px);
      const cause = where.get(o.eventId);
      if (cause) el("path", { d: `M ${cause.x} ${cause.y} L ${px} ${py}`, class: `cause refused ${o.outcome}`, "marker-end": "url(#arrow)" }, svg);
      const g = el("g", { class: `mark outcome ${o.outcome}`, "data-outcome": o.outcome, "data-event-type": o.eventType }, svg);
      el("path", { d: `M ${px - 6} ${py - 6} L ${px + 6} ${py + 6} M ${px - 6} ${py + 6} L ${px + 6} ${py - 6}`, class: "cross" }, g);
      el("text", { x: px + 9, y: py - 8, class: "mark-label" }, g).textContent = `${o.outcome} ${o.eventType}`;
      el("title", {}, g).textContent = `${o.service} ${o.outcome} ${o.eventType} at ${o.handledAtMs - t0} ms: ${o.reason}`;
    }
    const chart = document.getElementById("chart");
    chart.replaceChildren(svg);
    return list;
  }

  function renderText(list) {
    const o = detail.order;
    const status = document.getElementById("order-status");
    status.textContent = o.status;
    status.className = `status ${statusClass(o.status)}`;
    document.getElementById("order-facts").innerHTML =
      `holder <b>${esc(o.holderId)}</b> · amount ${o.amount} · currency ${esc(o.currencyId)} · policy <b>${esc(o.policy)}</b>` +
      (o.reason ? ` · reason: ${esc(o.reason)}` : "") +
      (detail.deadline ? ` · deadline ${esc(detail.deadline.status)}` : "");
    document.getElementById("history").innerHTML = "status: " + o.history.map((h) =>
      `<span class="status ${statusClass(h.toStatus)}">${esc(h.toStatus)}</span> <small>${Date.parse(h.at) - o.createdAtMs} ms</small>`).join(" → ");
    const verdict = detail.consistency;
    document.getElementById("verdict").innerHTML = verdict.count === 0
      ? `<p class="verdict ok" data-verdict="consistent">consistent (or not settled yet)</p>`
      : `<ul class="verdict anomaly" data-verdict="anomaly">` + verdict.anomalies.map((a) =>
          `<li><b>${esc(a.rule)}</b>: ${esc(a.evidence)}</li>`).join("") + "</ul>";
    document.querySelector("#events tbody").innerHTML = list.map((e) => `
      <tr data-event-id="${esc(e.eventId)}"><td>${e.timestamp - o.createdAtMs}</td><td>${esc(e.eventType)}</td><td>${esc(e.source)}</td>
        <td>${e.partition ?? ""}</td><td>${e.offset ?? ""}</td><td><code>${esc(e.eventId.slice(0, 8))}</code></td>
        <td><code>${esc((e.causationId || "").slice(0, 8))}</code></td><td><code>${esc(JSON.stringify(e.payload))}</code></td></tr>`).join("");
    document.querySelector("#outcomes tbody").innerHTML = detail.outcomes.map((r) => `
      <tr class="${esc(r.outcome)}"><td>${r.handledAtMs - o.createdAtMs}</td><td>${esc(r.service)}</td><td>${esc(r.eventType)}</td>
        <td>${esc(r.outcome)}</td><td>${esc(r.reason)}</td></tr>`).join("");
  }

  function render() { renderText(draw()); }

  async function reload() {
    detail = await Saga.get(`/dashboard/sagas/${orderId}.json`);
    render();
  }
  const reloadSoon = Saga.debounce(() => reload().catch(console.error), 150);

  render();
  let verdictTimer = null;
  Saga.live(`/ws/sagas/${orderId}/`, (m) => {
    if (m.kind === "hello") reloadSoon();
    if (m.kind !== "event") return;
    live.set(m.event.eventId, { ...m.event, partition: m.partition, offset: m.offset });
    render();
    reloadSoon();
    // the verdict settles a grace period after the last event: read it again then
    clearTimeout(verdictTimer);
    verdictTimer = setTimeout(reloadSoon, 2500);
  });
})();
