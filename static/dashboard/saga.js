// The order page: one order's saga (SagaChart, sagaview.js), its status history, the checker's
// verdict, the raw events and how each service handled them; live over /ws/sagas/<id>/. The
// address keeps the zoom as a permalink (#t=<lo>,<hi>, ms from the order's creation).
"use strict";
(() => {
  const { esc, statusClass } = Saga;
  const root = document.getElementById("saga");
  const chart = new SagaView.SagaChart(root, JSON.parse(document.getElementById("saga-detail").textContent),
    { onView: SagaView.viewToHash });

  function renderText(list) {
    const detail = chart.detail, o = detail.order;
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

  const view = SagaView.viewFromHash();  // read before the first draw rewrites the address
  renderText(chart.draw());
  if (view) chart.showSpan(...view);
  SagaView.exports(root, [chart], `saga-${chart.orderId}`);
  window.addEventListener("resize", Saga.debounce(() => renderText(chart.draw()), 200));
  chart.followLive(() => renderText(chart.draw()));
})();
