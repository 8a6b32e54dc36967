// The saga timeline's geometry, apart from what it draws: a time axis that fits a saga, and a
// placement of marks and labels in lanes that never lets two labels overlap. Plain functions over
// plain data, so saga.js draws and the browser tests measure. Scales come from d3 (vendored:
// static/vendor/d3/d3.min.js); the rest is Sagaboard's.
"use strict";
const Timeline = (() => {
  const BREAK_MS = 250;       // a quiet stretch is compressed (a broken axis) when at least this long …
  const BREAK_RATIO = 5;      // … and this many times the saga's median step
  const BREAK_PX = 56;        // the width a compressed stretch takes
  const MIN_BURST_MS = 20;    // a burst of marks spans at least this much of the axis
  const ROW_PX = 18;          // rows of a lane, from its top
  const MARK_R = 8;           // a mark's radius (its glyph stays inside)
  const LABEL_GAP = 4;        // px between a mark and its label, and between labels

  /**
   * The broken axis of a saga: `times` (ms from the order's creation) grouped into bursts, each
   * burst on a linear stretch whose width follows its share of marks and of time, and each quiet
   * stretch between bursts (at least BREAK_MS and BREAK_RATIO times the median step between
   * marks: a 15 s wait among 20 ms steps, not the even steps of a slow saga) squeezed into
   * BREAK_PX. Returns {scale, bursts,
   * breaks}: `scale` is a d3 polylinear scale from ms to px over [x0, x1]; `bursts` are
   * [{lo, hi, count}] (ms, padded) and `breaks` [{from, to}] (ms, the quiet stretch).
   */
  function axis(times, x0, x1) {
    const ts = [...new Set(times.filter(Number.isFinite))].sort((a, b) => a - b);
    if (!ts.length) ts.push(0);
    const steps = ts.slice(1).map((t, i) => t - ts[i]).sort((a, b) => a - b);
    const quiet = Math.max(BREAK_MS, BREAK_RATIO * (steps.length ? steps[Math.floor(steps.length / 2)] : 0));
    const bursts = [];
    for (const t of ts) {
      const last = bursts[bursts.length - 1];
      if (last && t - last.to < quiet) { last.to = t; last.count += 1; } else bursts.push({ from: t, to: t, count: 1 });
    }
    for (const b of bursts) {
      const span = Math.max(b.to - b.from, MIN_BURST_MS);
      const pad = Math.min(span * 0.06, quiet / 4) + (span - (b.to - b.from)) / 2;
      b.lo = b.from - pad;
      b.hi = b.to + pad;
    }
    const breaks = bursts.slice(1).map((b, i) => ({ from: bursts[i].to, to: b.from, lo: bursts[i].hi, hi: b.lo }));
    const room = x1 - x0 - breaks.length * BREAK_PX;
    const totalMs = bursts.reduce((s, b) => s + (b.hi - b.lo), 0);
    const weights = bursts.map((b) => 0.5 * b.count / ts.length + 0.5 * (b.hi - b.lo) / totalMs);
    const domain = [], range = [];
    let x = x0;
    bursts.forEach((b, i) => {
      domain.push(b.lo, b.hi);
      range.push(x, x + room * weights[i]);
      x += room * weights[i] + BREAK_PX;
    });
    return { scale: d3.scaleLinear().domain(domain).range(range), bursts, breaks };
  }

  /** A duration or an instant in ms, for a person: "53 ms", "1.25 s", "15.0 s", "2 min 5 s";
   * three significant digits, or as many decimals as a tick `step` (ms) needs. */
  function duration(ms, step) {
    const a = Math.abs(ms);
    if (a < 1000 && (step === undefined || step < 1000)) return `${Math.round(ms)} ms`;
    if (a < 120000) {
      if (step === undefined) return `${(ms / 1000).toPrecision(3)} s`;
      return `${(ms / 1000).toFixed(Math.max(0, Math.min(3, Math.ceil(-Math.log10(step / 1000)))))} s`;
    }
    return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
  }

  /**
   * Ticks of the axis between px `left` and `right`: each burst's own ticks (d3's, about one per
   * 90 px) where `x` (ms → px, zoom included) puts it in view. [{x, label, t}]
   */
  function ticks(bursts, x, left, right) {
    const out = [];
    for (const b of bursts) {
      const a = Math.max(left, x(b.lo)), z = Math.min(right, x(b.hi));
      if (z - a < 30) continue;
      const local = d3.scaleLinear().domain([b.lo, b.hi]).range([x(b.lo), x(b.hi)]);
      const lo = local.invert(a), hi = local.invert(z);
      const count = Math.max(1, Math.floor((z - a) / 90));
      const step = d3.tickStep(lo, hi, count);
      for (const t of d3.ticks(lo, hi, count)) out.push({ x: local(t), t, label: duration(t, step) });
    }
    return out;
  }

  /**
   * Place marks on rows of their lanes so that no mark comes closer than 2·MARK_R to another on
   * its row and no label overlaps anything: a label goes right of its mark, else left, else it is
   * left to the mark's tooltip. `marks` are [{lane, x, width}] (width: the label's, px); sets
   * `row` and `labelSide` ("right", "left" or null) on each, and returns the rows each lane used.
   */
  function place(marks, left, right, maxRows) {
    const edges = new Map();  // lane → per row, the px right of which the row is free
    const used = new Map();
    const order = marks.map((m, i) => i).sort((i, j) => marks[i].x - marks[j].x);
    for (const i of order) {
      const m = marks[i];
      const rows = edges.get(m.lane) || [];
      edges.set(m.lane, rows);
      const free = (r) => rows[r] === undefined ? -Infinity : rows[r];
      let row = -1, side = null;
      for (const want of ["right", "left", null]) {
        for (let r = 0; r < maxRows && row < 0; r++) {
          const start = want === "left" ? m.x - MARK_R - LABEL_GAP - m.width : m.x - MARK_R;
          const end = want === "right" ? m.x + MARK_R + LABEL_GAP + m.width : m.x + MARK_R;
          if (start - LABEL_GAP < free(r) || (want === "left" && start < left) || (want === "right" && end > right)) continue;
          row = r; side = want;
        }
        if (row >= 0) break;
      }
      if (row < 0) {  // crowded: the row that frees up first, without a label
        row = 0;
        for (let r = 1; r < maxRows; r++) if (free(r) < free(row)) row = r;
        side = null;
      }
      const end = side === "right" ? m.x + MARK_R + LABEL_GAP + m.width : m.x + MARK_R;
      rows[row] = Math.max(free(row), end);
      m.row = row;
      m.labelSide = side;
      used.set(m.lane, Math.max(used.get(m.lane) || 0, row + 1));
    }
    return used;
  }

  return { axis, ticks, place, duration, BREAK_PX, ROW_PX, MARK_R, LABEL_GAP };
})();
