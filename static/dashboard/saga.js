// One order's saga, drawn as swimlanes in SVG: one lane per service (order, exchange, point,
// deadline, then any other source such as an operator's), time from the order's creation on an
// axis that fits the saga (timeline.js: bursts of events, quiet stretches compressed), zoomed and
// panned with the mouse, touch, keys or buttons (d3-zoom). The deadline is a vertical line where
// it falls, or an edge marker when it is out of view; each event a mark with an arrow from its
// cause, transitions and compensations highlighted, dropped and ignored deliveries marked in the
// lane of the service that refused them, the deadline's arming and disarming in its lane. History
// comes from the monitor's log; live events from /ws/sagas/<id>/; both merge by eventId.
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

  // What an event changed, as the service that handled it recorded it (its inbox record's
  // `effect`, written in the transaction of the change): `short` for the lane, else for the panel.
  function effectText(effect, t0, short) {
    const parts = [];
    if (effect.status) parts.push(`${effect.status[0] || "(new)"} → ${effect.status[1]}`);
    if (effect.points !== undefined) {
      const signed = effect.points.startsWith("-") ? `−${effect.points.slice(1)}` : `+${effect.points}`;
      parts.push(short ? `${signed} pts, ${effect.balance} left` : `${signed} points; the balance after: ${effect.balance}`);
    }
    if (effect.exchange) parts.push(`exchange ${effect.exchange}` + (effect.point && !short ? ` (${effect.point} points)` : ""));
    if (effect.deadline) {
      parts.push(short ? effect.deadline : `deadline ${effect.deadline}` +
        (effect.dueAt ? `, due at +${Timeline.duration(effect.dueAt - t0)}` : "") +
        (effect.firedAt ? ` at +${Timeline.duration(effect.firedAt - t0)}` : ""));
    }
    return parts.join("; ");
  }

  // What the lanes hold: each logged event in its source's lane; each delivery a service refused
  // (dropped, ignored) in that service's lane; each effect a service recorded (a status changed,
  // points spent or refunded, an exchange made or removed, the deadline armed or disarmed) in its
  // lane, even when it emitted nothing. Times in ms from the order's creation. `of`: the event
  // the mark's panel shows.
  function marksOf(list, t0, transitions) {
    const marks = list.map((e) => ({
      id: e.eventId, of: e.eventId, lane: e.source, t: e.timestamp - t0, cause: e.causationId, shape: "event", cls: `mark ${kind(e, transitions)}`,
      data: { "data-event-type": e.eventType, "data-event-id": e.eventId }, label: e.eventType,
      title: `${e.eventType} from ${e.source} at ${Timeline.duration(e.timestamp - t0)}` +
        (e.partition !== undefined ? ` (partition ${e.partition}, offset ${e.offset})` : "") + `\n${JSON.stringify(e.payload)}`,
    }));
    for (const o of detail.outcomes) {
      const t = o.handledAtMs - t0;
      if (o.outcome !== "applied") {
        marks.push({ of: o.eventId, lane: o.service, t, cause: o.eventId, shape: "cross", cls: `mark outcome ${o.outcome}`,
          data: { "data-outcome": o.outcome, "data-event-type": o.eventType }, label: `${o.outcome} ${o.eventType}`,
          title: `${o.service} ${o.outcome} ${o.eventType} at ${Timeline.duration(t)}: ${o.reason}` });
      } else if (o.effect) {
        const data = { "data-effect-of": o.eventId, "data-service": o.service };
        if (o.effect.deadline) data["data-deadline"] = o.effect.deadline;
        marks.push({ of: o.eventId, lane: o.service, t, cause: o.eventId, shape: "diamond",
          cls: `mark effect${o.effect.deadline ? ` deadline-state ${o.effect.deadline}` : ""}`, data,
          label: effectText(o.effect, t0, true),
          title: `${o.service} handled ${o.eventType} at ${Timeline.duration(t)}: ${effectText(o.effect, t0, false)}` });
      }
    }
    return marks;
  }

  // The panel of one event: its envelope, how each service handled it, what each changed (from the
  // services' records), and its timing (created, published, received, committed).
  function showPanel(eventId) {
    const t0 = detail.order.createdAtMs;
    const e = events().find((x) => x.eventId === eventId);
    const handled = detail.outcomes.filter((o) => o.eventId === eventId);
    const panel = document.getElementById("effect-panel");
    const at = (ms) => (ms === null || ms === undefined ? "—" : `+${Timeline.duration(ms - t0)}`);
    const effects = handled.filter((o) => o.effect).map((o) => ({ service: o.service, text: effectText(o.effect, t0, false) }));
    const d = detail.deadline;
    if (e && e.eventType === "DeadlineReached" && d && d.firedAt) {
      effects.push({ service: "deadline", text: effectText({ deadline: "fired", firedAt: d.firedAt }, t0, false) });
    }
    const type = e ? e.eventType : handled.length ? handled[0].eventType : eventId;
    panel.innerHTML = `<h3>${esc(type)} <small><code>${esc(eventId)}</code></small>
        <button type="button" id="effect-panel-close" aria-label="close the panel">×</button></h3>
      <div class="effect-parts">
      <section data-part="envelope"><h4>Envelope</h4>${e ? `<pre>${esc(JSON.stringify(e, ["eventId", "eventType", "orderId", "timestamp", "deadline",
        "causationId", "source", "policy", "payload", ...Object.keys(e.payload || {})], 2))}</pre>` : "<p>not in the monitor's log yet</p>"}</section>
      <section data-part="outcome"><h4>Outcome</h4>${handled.length ? `<ul>${handled.map((o) =>
        `<li data-service="${esc(o.service)}"><b>${esc(o.service)}</b>: <span class="outcome ${esc(o.outcome)}">${esc(o.outcome)}</span>` +
        (o.reason ? ` — ${esc(o.reason)}` : "") + "</li>").join("")}</ul>` : "<p>no service handled it (yet)</p>"}</section>
      <section data-part="effect"><h4>Effect</h4>${effects.length ? `<ul>${effects.map((x) =>
        `<li data-service="${esc(x.service)}"><b>${esc(x.service)}</b>: ${esc(x.text)}</li>`).join("")}</ul>` : "<p>it changed nothing</p>"}</section>
      <section data-part="timing"><h4>Timing</h4><table><thead><tr><th></th><th>published</th><th>received</th><th>committed</th></tr></thead><tbody>
        ${e ? `<tr><th>created</th><td colspan="3">${at(e.timestamp)}${e.partition !== undefined ? ` · partition ${e.partition}, offset ${e.offset}` : ""}</td></tr>` : ""}
        ${handled.map((o) => `<tr data-service="${esc(o.service)}"><th>${esc(o.service)}</th><td>${at(o.publishedAtMs)}</td>
          <td>${at(o.receivedAtMs)}</td><td>${at(o.handledAtMs)}</td></tr>`).join("")}</tbody></table></section>
      </div>`;
    panel.hidden = false;
    panel.dataset.eventId = eventId;
    document.getElementById("effect-panel-close").onclick = () => { panel.hidden = true; };
  }

  const view = { transform: d3.zoomIdentity };  // the zoom kept across redraws (live events)

  function draw() {
    const list = events();
    const order = detail.order;
    const t0 = order.createdAtMs;
    const deadlineAt = order.deadline - t0;
    const transitions = new Set(order.history.map((h) => h.eventId).filter(Boolean));
    const marks = marksOf(list, t0, transitions);
    const lanes = [...LANES];
    for (const m of marks) if (!lanes.includes(m.lane)) lanes.push(m.lane);
    const chart = document.getElementById("chart");
    const width = Math.max(900, chart.clientWidth || 1100), left = 90, right = width - 24;
    const { scale, bursts, breaks } = Timeline.axis(marks.map((m) => m.t), left + 10, right - 10);
    const svg = el("svg", { width, viewBox: `0 0 ${width} 100`, role: "group", tabindex: 0, "data-testid": "timeline",
      "data-plot-left": left, "data-plot-right": right, "data-zoom": view.transform.k.toFixed(3),
      "aria-label": `saga of order ${orderId}: ${marks.length} marks; keys + and − zoom, arrows pan, 0 resets` });
    el("title", {}, svg).textContent = `saga of order ${orderId}`;
    const defs = el("defs", {}, svg);
    const marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" }, defs);
    el("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" }, marker);
    const clip = el("clipPath", { id: "plot-clip" }, defs);
    const clipRect = el("rect", { x: left, y: 0, width: right - left, height: 100 }, clip);
    chart.replaceChildren(svg);

    // labels are measured once; their placement is redone at every zoom
    const measure = el("text", { class: "mark-label" }, svg);
    for (const m of marks) { measure.textContent = m.label; m.width = measure.getComputedTextLength(); }
    measure.remove();

    const bg = el("g", {}, svg), grid = el("g", { "clip-path": "url(#plot-clip)" }, svg);
    const arrows = el("g", { "clip-path": "url(#plot-clip)" }, svg), front = el("g", {}, svg);
    const axisG = el("g", { class: "axis" }, svg), top = el("g", {}, svg);
    const byId = new Map(marks.filter((m) => m.id).map((m) => [m.id, m]));
    for (const m of marks) {
      m.g = el("g", { class: m.cls, role: "button", tabindex: 0, "aria-label": m.title.split("\n")[0], ...m.data }, front);
      m.g.addEventListener("click", () => showPanel(m.of));
      m.g.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { showPanel(m.of); e.preventDefault(); } });
      el("title", {}, m.g).textContent = m.title;
      if (m.shape === "cross") m.glyph = el("path", { class: "cross" }, m.g);
      else if (m.shape === "diamond") m.glyph = el("path", { class: "diamond" }, m.g);
      else m.glyph = el("circle", { r: Timeline.MARK_R - 1 }, m.g);
      m.text = el("text", { class: "mark-label" }, m.g);
      m.text.textContent = m.label;
      const c = byId.get(m.cause);
      if (c) m.arrow = el("path", { class: m.shape === "cross" ? `cause refused ${m.data["data-outcome"]}` : "cause", "marker-end": "url(#arrow)" }, arrows);
      m.causeMark = c;
    }

    function layout() {
      const k = view.transform;
      const x = (t) => k.applyX(scale(t));
      for (const m of marks) { m.x = x(m.t); m.inView = m.x >= left - 0.5 && m.x <= right + 0.5; }
      const shown = marks.filter((m) => m.inView);
      const rowsUsed = Timeline.place(shown, left, width - 4, 6);
      const laneRows = lanes.map((lane) => Math.max(2, rowsUsed.get(lane) || 0));
      const laneTop = [];
      let y = 34;
      for (const rows of laneRows) { laneTop.push(y); y += rows * Timeline.ROW_PX + 14; }
      const plotBottom = y, height = y + 34;
      svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
      svg.setAttribute("height", height);
      clipRect.setAttribute("height", height);
      const laneOf = (m) => lanes.indexOf(m.lane);
      const yOf = (m) => laneTop[laneOf(m)] + 7 + Timeline.ROW_PX / 2 + m.row * Timeline.ROW_PX;

      bg.replaceChildren();
      lanes.forEach((lane, i) => {
        el("rect", { x: 0, y: laneTop[i], width, height: laneRows[i] * Timeline.ROW_PX + 14, class: i % 2 ? "lane odd" : "lane" }, bg);
        el("text", { x: 8, y: laneTop[i] + 7 + Timeline.ROW_PX / 2 + 4, class: "lane-name label" }, bg).textContent = lane;
      });
      grid.replaceChildren();
      axisG.replaceChildren();
      top.replaceChildren();
      // the quiet stretches, squeezed: a band across the lanes and its length on the axis
      const taken = [];  // the axis row's labels, [x0, x1]: nothing overlaps
      for (const b of breaks) {
        const a = x(b.lo), z = x(b.hi);
        if (z < left || a > right) continue;
        const band = el("g", { class: "axis-break", "data-testid": "axis-break", role: "img",
          "aria-label": `a quiet stretch of ${Timeline.duration(b.to - b.from)}, compressed` }, grid);
        el("title", {}, band).textContent = `nothing happened for ${Timeline.duration(b.to - b.from)}: this stretch is compressed`;
        el("rect", { x: a, y: 28, width: z - a, height: plotBottom - 28, class: "break-band" }, band);
        const mid = (a + z) / 2;
        el("path", { d: `M ${mid - 5} ${plotBottom + 2} l 4 -8 l 2 16 l 4 -8`, class: "break-zigzag" }, axisG);
        const text = el("text", { x: mid, y: plotBottom + 24, class: "break-label label", "text-anchor": "middle" }, axisG);
        text.textContent = `⋯ ${Timeline.duration(b.to - b.from)} ⋯`;
        const w = text.getComputedTextLength();
        taken.push([mid - w / 2 - 3, mid + w / 2 + 3]);
      }
      for (const tick of Timeline.ticks(bursts, x, left, right)) {
        el("line", { x1: tick.x, x2: tick.x, y1: 28, y2: plotBottom, class: "tick" }, grid);
        const text = el("text", { x: tick.x, y: plotBottom + 14, class: "tick-label label", "text-anchor": "middle" }, axisG);
        text.textContent = tick.label;
        const w = text.getComputedTextLength(), span = [tick.x - w / 2 - 3, tick.x + w / 2 + 3];
        if (span[0] < left - 40 || taken.some(([a, z]) => span[0] < z && a < span[1])) text.remove(); else taken.push(span);
      }
      // the deadline where it falls, or an edge marker saying how far away it is
      const dx = x(deadlineAt);
      const deadlineText = `deadline ${deadlineAt >= 0 ? "+" : ""}${Timeline.duration(deadlineAt)}`;
      if (dx >= left && dx <= right) {
        const line = el("line", { x1: dx, x2: dx, y1: 24, y2: plotBottom, class: "deadline-line", "data-testid": "deadline-line" }, top);
        el("title", {}, line).textContent = `the deadline: ${Timeline.duration(deadlineAt)} after the order was created`;
        const label = el("text", { x: dx + 4, y: 18, class: "deadline-label label" }, top);
        label.textContent = deadlineText;
        if (dx + 4 + label.getComputedTextLength() > width - 4) { label.setAttribute("x", dx - 4); label.setAttribute("text-anchor", "end"); }
      } else {
        const after = dx > right;
        const edge = el("g", { class: "deadline-edge", "data-testid": "deadline-edge", role: "img" }, top);
        const text = el("text", { x: after ? right : left, y: 18, class: "deadline-label label", "text-anchor": after ? "end" : "start" }, edge);
        text.textContent = after ? `${deadlineText} →` : `← ${deadlineText}`;
        edge.setAttribute("aria-label", `${deadlineText}, out of view`);
      }
      for (const m of marks) {
        m.g.style.display = m.inView ? "" : "none";
        if (!m.inView) continue;
        const cx = m.x, cy = yOf(m), r = Timeline.MARK_R;
        m.y = cy;
        if (m.shape === "cross") m.glyph.setAttribute("d", `M ${cx - 6} ${cy - 6} L ${cx + 6} ${cy + 6} M ${cx - 6} ${cy + 6} L ${cx + 6} ${cy - 6}`);
        else if (m.shape === "diamond") m.glyph.setAttribute("d", `M ${cx} ${cy - r} L ${cx + r} ${cy} L ${cx} ${cy + r} L ${cx - r} ${cy} z`);
        else { m.glyph.setAttribute("cx", cx); m.glyph.setAttribute("cy", cy); }
        m.text.style.display = m.labelSide ? "" : "none";
        m.text.setAttribute("class", m.labelSide ? "mark-label label" : "mark-label");
        m.text.setAttribute("x", m.labelSide === "left" ? cx - r - Timeline.LABEL_GAP : cx + r + Timeline.LABEL_GAP);
        m.text.setAttribute("y", cy + 4);
        m.text.setAttribute("text-anchor", m.labelSide === "left" ? "end" : "start");
      }
      for (const m of marks) {
        if (!m.arrow) continue;
        const c = m.causeMark;
        m.arrow.style.display = m.inView || c.inView ? "" : "none";
        if (m.inView || c.inView) m.arrow.setAttribute("d", `M ${c.x} ${c.y ?? yOf(c)} L ${m.x} ${m.y ?? yOf(m)}`);
      }
    }

    // zoom and pan: the mouse wheel, a drag, a pinch (d3-zoom), the keys and the buttons
    const plot = d3.select(svg);
    let frame = 0;
    const zoom = d3.zoom().scaleExtent([1, 500]).extent([[left, 0], [right, 100]]).translateExtent([[left, 0], [right, 100]])
      .on("zoom", (e) => {
        view.transform = e.transform;
        svg.dataset.zoom = e.transform.k.toFixed(3);
        if (!frame) frame = requestAnimationFrame(() => { frame = 0; layout(); });
      });
    plot.call(zoom).on("dblclick.zoom", null);
    plot.call(zoom.transform, view.transform);
    svg.addEventListener("keydown", (e) => {
      const step = (right - left) / 8;
      const actions = { "+": () => zoom.scaleBy(plot, 1.5), "=": () => zoom.scaleBy(plot, 1.5), "-": () => zoom.scaleBy(plot, 1 / 1.5),
        ArrowLeft: () => zoom.translateBy(plot, step / view.transform.k, 0), ArrowRight: () => zoom.translateBy(plot, -step / view.transform.k, 0),
        "0": () => zoom.transform(plot, d3.zoomIdentity), Home: () => zoom.transform(plot, d3.zoomIdentity) };
      if (actions[e.key]) { actions[e.key](); e.preventDefault(); }
    });
    document.getElementById("zoom-in").onclick = () => zoom.scaleBy(plot.transition().duration(150), 1.5);
    document.getElementById("zoom-out").onclick = () => zoom.scaleBy(plot.transition().duration(150), 1 / 1.5);
    document.getElementById("zoom-reset").onclick = () => zoom.transform(plot.transition().duration(150), d3.zoomIdentity);
    layout();
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

  function render() {
    renderText(draw());
    const panel = document.getElementById("effect-panel");
    if (!panel.hidden && panel.dataset.eventId) showPanel(panel.dataset.eventId);  // live: newer outcomes
  }

  async function reload() {
    detail = await Saga.get(`/dashboard/sagas/${orderId}.json`);
    render();
  }
  const reloadSoon = Saga.debounce(() => reload().catch(console.error), 150);

  render();
  window.addEventListener("resize", Saga.debounce(render, 200));
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
