// One order's saga as swimlanes in SVG (`SagaChart`), for the order page (saga.js) and the compare
// page (compare.js): one lane per service (order, exchange, point, deadline, then any other source
// such as an operator's), time from the order's creation on an axis that fits the saga
// (timeline.js: bursts of marks, quiet stretches compressed), zoomed and panned with the mouse,
// touch, keys or buttons (d3-zoom). The deadline is a vertical line where it falls, or an edge
// marker when it is out of view; each event a mark with an arrow from its cause; transitions and
// compensations highlighted; dropped and ignored deliveries a cross in the lane of the service that
// refused them; each effect a service recorded a diamond in its lane. A click (or Enter) on a mark
// opens its panel: envelope, outcomes, effects, timing. Exports: Mermaid, SVG, permalink.
"use strict";
const SagaView = (() => {
  const { esc } = Saga;
  const SVG = "http://www.w3.org/2000/svg";
  const LANES = ["order", "exchange", "point", "deadline"];

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

  // The effects of one event: each service's recorded effect, and a fired deadline (the deadline
  // row's fired_at, written with DeadlineReached).
  function effectsOf(detail, e, eventId) {
    const t0 = detail.order.createdAtMs;
    const effects = detail.outcomes.filter((o) => o.eventId === eventId && o.effect)
      .map((o) => ({ service: o.service, text: effectText(o.effect, t0, false) }));
    const d = detail.deadline;
    if (e && e.eventType === "DeadlineReached" && d && d.firedAt) {
      effects.push({ service: "deadline", text: effectText({ deadline: "fired", firedAt: d.firedAt }, t0, false) });
    }
    return effects;
  }

  // What the lanes hold: each logged event in its source's lane; each delivery a service refused
  // (dropped, ignored) in that service's lane; each effect a service recorded (a status changed,
  // points spent or refunded, an exchange made or removed, the deadline armed or disarmed) in its
  // lane, even when it emitted nothing. Times in ms from the order's creation. `of`: the event
  // the mark's panel shows.
  function marksOf(detail, list) {
    const t0 = detail.order.createdAtMs;
    const transitions = new Set(detail.order.history.map((h) => h.eventId).filter(Boolean));
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

  // Text for Mermaid: its statement separators and comment marks taken out (mermaid.js.org, syntax
  // of sequence diagrams: `;` ends a statement, `#` starts an entity code, `%%` a comment).
  function mermaidText(text) {
    return String(text).replace(/[;#\n\r]/g, ",").replace(/%%/g, "%");
  }

  /**
   * The saga as a Mermaid sequence diagram: one participant per lane; for each delivery, in the
   * order the services handled them, an arrow from the event's source to the service that handled
   * it (`->>` applied, `-x` dropped or ignored, with the reason), and what it changed as a note over
   * that service; an event no service handled is a self-message of its source; a fired deadline a
   * note over the deadline service. Returns the text.
   */
  function mermaid(detail, list) {
    const o = detail.order, t0 = o.createdAtMs;
    const lanes = [...LANES];
    for (const e of list) if (!lanes.includes(e.source)) lanes.push(e.source);
    for (const r of detail.outcomes) if (!lanes.includes(r.service)) lanes.push(r.service);
    const byId = new Map(list.map((e) => [e.eventId, e]));
    const steps = [];
    for (const e of list) {
      const handled = detail.outcomes.filter((r) => r.eventId === e.eventId);
      if (!handled.length) steps.push({ at: e.timestamp, lines: [`    ${e.source}->>${e.source}: ${mermaidText(e.eventType)}`] });
      // an effect no delivery recorded: the deadline fired (the row written with DeadlineReached)
      const recorded = new Set(handled.filter((r) => r.effect).map((r) => r.service));
      for (const x of effectsOf(detail, e, e.eventId).filter((x) => !recorded.has(x.service))) {
        steps.push({ at: e.timestamp, lines: [`    Note over ${x.service}: ${mermaidText(x.text)}`] });
      }
    }
    for (const r of detail.outcomes) {
      const e = byId.get(r.eventId);
      const from = e ? e.source : r.service;
      const lines = r.outcome === "applied"
        ? [`    ${from}->>${r.service}: ${mermaidText(r.eventType)}`]
        : [`    ${from}-x${r.service}: ${mermaidText(`${r.eventType} ${r.outcome}: ${r.reason}`)}`];
      for (const x of effectsOf(detail, e, r.eventId).filter((x) => x.service === r.service)) {
        lines.push(`    Note over ${r.service}: ${mermaidText(x.text)}`);
      }
      steps.push({ at: r.handledAtMs, lines });
    }
    steps.sort((a, b) => a.at - b.at);
    return ["sequenceDiagram", `    title ${mermaidText(`Order ${o.id} (${o.policy}): ${o.status}`)}`,
      ...lanes.map((l) => `    participant ${l}`), ...steps.flatMap((s) => s.lines)].join("\n") + "\n";
  }

  /**
   * One order's chart inside `root` (an element holding `.chart`, `.effect-panel` and optionally
   * `.zoom-in`, `.zoom-out`, `.zoom-reset`, or `options.tools` holds those). `options.extraTimes()`: more times (ms from creation)
   * the axis must span (the other order of a comparison); `options.onZoom(transform)`: called
   * when a person zooms this chart (to follow it elsewhere); `options.onView(lo, hi)`: the span in
   * view after each zoom (ms; null when the whole saga is in view).
   */
  class SagaChart {
    constructor(root, detail, options = {}) {
      this.root = root;
      this.detail = detail;
      this.options = options;
      this.live = new Map();  // eventId → event seen on the socket, not yet in the monitor's log
      this.transform = d3.zoomIdentity;
      this.following = false;
    }

    get orderId() { return this.detail.order.id; }

    events() {
      const byId = new Map();
      for (const e of this.detail.events) if (!byId.has(e.eventId)) byId.set(e.eventId, e);
      for (const [id, e] of this.live) {
        if (byId.has(id)) this.live.delete(id); else byId.set(id, e);
      }
      return [...byId.values()].sort((a, b) => a.timestamp - b.timestamp);
    }

    markTimes() { return marksOf(this.detail, this.events()).map((m) => m.t); }

    mermaid() { return mermaid(this.detail, this.events()); }

    /** The chart as a standalone SVG document, with the dashboard's styles inlined. */
    svgDocument() {
      const svg = this.root.querySelector(".chart svg").cloneNode(true);
      svg.setAttribute("xmlns", SVG);
      const rules = [];
      for (const sheet of document.styleSheets) {
        try { for (const rule of sheet.cssRules) rules.push(rule.cssText); } catch (e) { /* another origin's sheet */ }
      }
      const style = document.createElementNS(SVG, "style");
      style.textContent = rules.join("\n");
      svg.insertBefore(style, svg.firstChild);
      return '<?xml version="1.0" encoding="UTF-8"?>\n' + new XMLSerializer().serializeToString(svg);
    }

    /** Follow another chart's zoom (a comparison), without calling onZoom back. */
    followZoom(transform) {
      if (!this.zoom) return;
      this.following = true;
      try { this.zoom.transform(this.plot, transform); } finally { this.following = false; }
    }

    /** Zoom so that [lo, hi] (ms from creation) fills the plot (a permalink's view). */
    showSpan(lo, hi) {
      const a = this.scale(lo), z = this.scale(hi);
      if (!(z > a)) return;
      const k = Math.max(1, (this.right - this.left) / (z - a));
      this.zoom.transform(this.plot, d3.zoomIdentity.translate(this.left - k * a, 0).scale(k));
    }

    /** The span in view, ms from creation: [lo, hi]. */
    span() {
      const inv = (px) => this.scale.invert(this.transform.invertX(px));
      return [inv(this.left), inv(this.right)];
    }

    showPanel(eventId) {
      const detail = this.detail, t0 = detail.order.createdAtMs;
      const e = this.events().find((x) => x.eventId === eventId);
      const handled = detail.outcomes.filter((o) => o.eventId === eventId);
      const panel = this.root.querySelector(".effect-panel");
      const at = (ms) => (ms === null || ms === undefined ? "—" : `+${Timeline.duration(ms - t0)}`);
      const effects = effectsOf(detail, e, eventId);
      const type = e ? e.eventType : handled.length ? handled[0].eventType : eventId;
      panel.innerHTML = `<h3>${esc(type)} <small><code>${esc(eventId)}</code></small>
          <button type="button" class="effect-panel-close"${panel.id ? ` id="${panel.id}-close"` : ""} aria-label="close the panel">×</button></h3>
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
      panel.querySelector(".effect-panel-close").onclick = () => { panel.hidden = true; };
    }

    /** Draw (again: live events, a resize); keeps the zoom and an open panel. Returns the events. */
    draw() {
      const started = performance.now();
      const list = this.events();
      const detail = this.detail, order = detail.order, orderId = order.id;
      const t0 = order.createdAtMs;
      const deadlineAt = order.deadline - t0;
      const marks = marksOf(detail, list);
      const lanes = [...LANES];
      for (const m of marks) if (!lanes.includes(m.lane)) lanes.push(m.lane);
      const chart = this.root.querySelector(".chart");
      const width = Math.max(900, chart.clientWidth || 1100), left = 90, right = width - 24;
      const extra = this.options.extraTimes ? this.options.extraTimes() : [];
      const { scale, bursts, breaks } = Timeline.axis([...marks.map((m) => m.t), ...extra], left + 10, right - 10);
      Object.assign(this, { scale, left, right });
      const svg = el("svg", { width, viewBox: `0 0 ${width} 100`, role: "group", tabindex: 0, "data-testid": "timeline",
        "data-plot-left": left, "data-plot-right": right, "data-zoom": this.transform.k.toFixed(3),
        "aria-label": `saga of order ${orderId}: ${marks.length} marks; keys + and − zoom, arrows pan, 0 resets` });
      el("title", {}, svg).textContent = `saga of order ${orderId}`;
      const defs = el("defs", {}, svg);
      const marker = el("marker", { id: `arrow-${orderId}`, viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" }, defs);
      el("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" }, marker);
      const clip = el("clipPath", { id: `plot-clip-${orderId}` }, defs);
      const clipRect = el("rect", { x: left, y: 0, width: right - left, height: 100 }, clip);
      chart.replaceChildren(svg);

      const clipped = { "clip-path": `url(#plot-clip-${orderId})` };
      const bg = el("g", {}, svg), grid = el("g", clipped, svg);
      const arrows = el("g", clipped, svg), front = el("g", {}, svg);
      const axisG = el("g", { class: "axis" }, svg), top = el("g", {}, svg);
      const byId = new Map(marks.filter((m) => m.id).map((m) => [m.id, m]));
      for (const m of marks) {
        m.g = el("g", { class: m.cls, role: "button", tabindex: 0, "aria-label": m.title.split("\n")[0], ...m.data }, front);
        m.g.addEventListener("click", () => this.showPanel(m.of));
        m.g.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { this.showPanel(m.of); e.preventDefault(); } });
        el("title", {}, m.g).textContent = m.title;
        if (m.shape === "cross") m.glyph = el("path", { class: "cross" }, m.g);
        else if (m.shape === "diamond") m.glyph = el("path", { class: "diamond" }, m.g);
        else m.glyph = el("circle", { r: Timeline.MARK_R - 1 }, m.g);
        m.text = el("text", { class: "mark-label" }, m.g);
        m.text.textContent = m.label;
        const c = byId.get(m.cause);
        if (c) m.arrow = el("path", { class: m.shape === "cross" ? `cause refused ${m.data["data-outcome"]}` : "cause", "marker-end": `url(#arrow-${orderId})` }, arrows);
        m.causeMark = c;
      }
      // labels are measured once, all after all are written (one layout); placed at every zoom
      for (const m of marks) m.width = m.text.getComputedTextLength();

      const layout = () => {
        const laidOut = performance.now();
        const k = this.transform;
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
        const yOf = (m) => laneTop[lanes.indexOf(m.lane)] + 7 + Timeline.ROW_PX / 2 + m.row * Timeline.ROW_PX;

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
        svg.dataset.layoutMs = (performance.now() - laidOut).toFixed(2);  // what bench/timeline.py reads
        svg.dataset.layouts = Number(svg.dataset.layouts || 0) + 1;
      };

      // zoom and pan: the mouse wheel, a drag, a pinch (d3-zoom), the keys and the buttons
      const plot = d3.select(svg);
      let frame = 0;
      const zoom = d3.zoom().scaleExtent([1, 500]).extent([[left, 0], [right, 100]]).translateExtent([[left, 0], [right, 100]])
        .on("zoom", (e) => {
          this.transform = e.transform;
          svg.dataset.zoom = e.transform.k.toFixed(3);
          if (!frame) frame = requestAnimationFrame(() => { frame = 0; layout(); });
          if (!this.following && this.options.onZoom) this.options.onZoom(e.transform);
        })
        .on("end", () => {
          if (!this.following && this.options.onView) this.options.onView(this.transform.k === 1 && this.transform.x === 0 ? null : this.span());
        });
      Object.assign(this, { zoom, plot });
      plot.call(zoom).on("dblclick.zoom", null);
      this.following = true;
      plot.call(zoom.transform, this.transform);
      this.following = false;
      svg.addEventListener("keydown", (e) => {
        const step = (right - left) / 8;
        const by = (f) => () => zoom.scaleBy(plot, f), pan = (px) => () => zoom.translateBy(plot, px / this.transform.k, 0);
        const actions = { "+": by(1.5), "=": by(1.5), "-": by(1 / 1.5), ArrowLeft: pan(step), ArrowRight: pan(-step),
          "0": () => zoom.transform(plot, d3.zoomIdentity), Home: () => zoom.transform(plot, d3.zoomIdentity) };
        if (actions[e.key]) { actions[e.key](); e.preventDefault(); }
      });
      const tools = this.options.tools || this.root;
      const button = (name, fn) => { const b = tools.querySelector(`.${name}`); if (b) b.onclick = fn; };
      button("zoom-in", () => zoom.scaleBy(plot.transition().duration(150), 1.5));
      button("zoom-out", () => zoom.scaleBy(plot.transition().duration(150), 1 / 1.5));
      button("zoom-reset", () => zoom.transform(plot.transition().duration(150), d3.zoomIdentity));
      layout();
      svg.dataset.drawMs = (performance.now() - started).toFixed(2);
      svg.dataset.marks = marks.length;
      const panel = this.root.querySelector(".effect-panel");
      if (panel && !panel.hidden && panel.dataset.eventId) this.showPanel(panel.dataset.eventId);  // live: newer outcomes
      return list;
    }

    /** Follow the order live: `redraw()` (which draws this chart, and whatever goes with it) at
     * each event from its socket, and again once the log was read again. */
    followLive(redraw) {
      const reload = async () => {
        this.detail = await Saga.get(`/dashboard/sagas/${this.orderId}.json`);
        redraw();
      };
      const reloadSoon = Saga.debounce(() => reload().catch(console.error), 150);
      let verdictTimer = null;
      Saga.live(`/ws/sagas/${this.orderId}/`, (m) => {
        if (m.kind === "hello") reloadSoon();
        if (m.kind !== "event") return;
        this.live.set(m.event.eventId, { ...m.event, partition: m.partition, offset: m.offset });
        redraw();
        reloadSoon();
        // the verdict settles a grace period after the last event: read it again then
        clearTimeout(verdictTimer);
        verdictTimer = setTimeout(reloadSoon, 2500);
      });
    }
  }

  /** A permalink's view from the page's hash: `#t=<lo>,<hi>` (ms from creation), or null. */
  function viewFromHash() {
    const m = /^#t=(-?\d+(?:\.\d+)?),(-?\d+(?:\.\d+)?)$/.exec(location.hash);
    return m && Number(m[2]) > Number(m[1]) ? [Number(m[1]), Number(m[2])] : null;
  }

  /** Keep the page's address a permalink of what is in view. */
  function viewToHash(span) {
    const hash = span ? `#t=${Math.round(span[0] * 10) / 10},${Math.round(span[1] * 10) / 10}` : "";
    history.replaceState(null, "", location.pathname + location.search + hash);
  }

  /** Wire the export buttons inside `root` to `charts`: Mermaid to the clipboard (and shown),
   * SVG as a download, the permalink to the clipboard (and shown). */
  function exports(root, charts, name) {
    const out = root.querySelector(".export-output");
    const show = async (text, what) => {
      out.hidden = false;
      out.querySelector("textarea").value = text;
      out.dataset.kind = what;
      let copied = false;
      try { await navigator.clipboard.writeText(text); copied = true; } catch (e) { /* no clipboard here: select it instead */ }
      out.querySelector(".export-note").textContent = copied ? `${what} copied to the clipboard` : `${what}: select and copy it`;
    };
    root.querySelector(".export-mermaid").onclick = () => show(charts.map((c) => c.mermaid()).join("\n"), "Mermaid");
    root.querySelector(".export-permalink").onclick = () => show(location.href, "permalink");
    root.querySelector(".export-svg").onclick = () => {
      charts.forEach((chart, i) => {
        const url = URL.createObjectURL(new Blob([chart.svgDocument()], { type: "image/svg+xml" }));
        const a = document.createElement("a");
        a.href = url;
        a.download = `${name}${charts.length > 1 ? `-${chart.orderId}` : ""}.svg`;
        document.body.appendChild(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 10_000);
      });
    };
  }

  return { SagaChart, viewFromHash, viewToHash, exports, mermaid, effectText };
})();
