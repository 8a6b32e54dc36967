// The compare page: two orders' sagas (SagaChart, sagaview.js) one above the other on one time
// axis (the union of both sagas' times, ms from each order's creation), zoomed together, live; the
// address keeps the zoom as a permalink (#t=<lo>,<hi>).
"use strict";
(() => {
  const { esc, statusClass } = Saga;
  const page = document.getElementById("compare");
  const charts = {};
  for (const side of ["a", "b"]) {
    const other = side === "a" ? "b" : "a";
    charts[side] = new SagaView.SagaChart(document.getElementById(`saga-${side}`),
      JSON.parse(document.getElementById(`saga-${side}-detail`).textContent), {
        tools: page,
        extraTimes: () => charts[other].markTimes(),
        onZoom: (transform) => charts[other].followZoom(transform),
        onView: SagaView.viewToHash,
      });
  }

  function header(side) {
    const chart = charts[side], d = chart.detail, o = d.order, root = chart.root;
    const link = root.querySelector(".order-link");
    link.href = `/sagas/${o.id}/`;
    link.textContent = `order ${o.id}`;
    const status = root.querySelector(".status");
    status.textContent = o.status;
    status.className = `status ${statusClass(o.status)}`;
    root.querySelector(".facts").innerHTML = `policy <b>${esc(o.policy)}</b> · holder ${esc(o.holderId)} · amount ${o.amount} · currency ${esc(o.currencyId)}`;
    root.querySelector(".verdict-line").innerHTML = d.consistency.count === 0
      ? `<span class="verdict ok" data-verdict="consistent">consistent (or not settled yet)</span>`
      : `<span class="verdict anomaly" data-verdict="anomaly">${d.consistency.anomalies.map((a) => `<b>${esc(a.rule)}</b>: ${esc(a.evidence)}`).join("; ")}</span>`;
  }

  function drawBoth() {
    for (const side of ["a", "b"]) { charts[side].draw(); header(side); }
  }

  const view = SagaView.viewFromHash();  // read before the first draw rewrites the address
  drawBoth();
  if (view) charts.a.showSpan(...view);
  SagaView.exports(page, [charts.a, charts.b], `sagas-${charts.a.orderId}-${charts.b.orderId}`);
  window.addEventListener("resize", Saga.debounce(drawBoth, 200));
  for (const side of ["a", "b"]) charts[side].followLive(drawBoth);
})();
