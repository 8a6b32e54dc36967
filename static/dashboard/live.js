// Sagaboard's shared page code: the live socket (reconnects with backoff), JSON requests, escaping.
"use strict";
const Saga = (() => {
  const stateEl = () => document.getElementById("live-state");

  function setState(state) {
    const el = stateEl();
    if (el) { el.dataset.state = state; el.textContent = state; }
  }

  // Open a WebSocket on `path`; every message goes to onMessage. When the socket drops (the web
  // server restarted, the network blinked) it reconnects after 0.25 s, 0.5 s, 1 s … at most 5 s;
  // each (re)connection starts with a {"kind": "hello"} message, so a page re-reads what it missed.
  function live(path, onMessage) {
    let delay = 250;
    function connect() {
      const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
      const socket = new WebSocket(url);
      socket.onopen = () => {
        delay = 250;
        setState("live");
        const el = stateEl();
        if (el) el.dataset.connections = Number(el.dataset.connections || 0) + 1;  // how many (re)connections
      };
      socket.onmessage = (m) => onMessage(JSON.parse(m.data));
      socket.onclose = () => {
        setState("reconnecting");
        setTimeout(connect, delay);
        delay = Math.min(delay * 2, 5000);
      };
    }
    connect();
  }

  function csrf() {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  // An Idempotency-Key (sagaboard/idempotency.py): 128 random bits in hex; getRandomValues, as
  // randomUUID exists only in secure contexts (not on http://<a LAN address>).
  function newKey() {
    return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  async function request(method, url, body, idempotencyKey) {
    const options = { method, headers: { "Accept": "application/json", "X-CSRFToken": csrf() }, credentials: "same-origin" };
    if (idempotencyKey) options.headers["Idempotency-Key"] = idempotencyKey;
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(url, options);
    let data = null;
    try { data = await response.json(); } catch (e) { data = { detail: response.statusText }; }
    if (!response.ok) {
      const error = new Error(describe(data));
      error.status = response.status;
      throw error;
    }
    return data;
  }

  function describe(data) {
    if (!data || typeof data !== "object") return String(data);
    return Object.entries(data).map(([k, v]) => (k === "detail" ? "" : k + ": ") + (Array.isArray(v) ? v.join(" ") : v)).join("; ");
  }

  function esc(value) {
    return String(value === null || value === undefined ? "" : value)
      .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  }

  // A CSS class for a status: "APPROVED" → "approved", "REJECTED DUE TO …" → "rejected".
  function statusClass(status) {
    return (status || "").split(" ")[0].toLowerCase();
  }

  // Collapse bursts: fn runs at most once per `ms`, after the burst.
  function debounce(fn, ms) {
    let timer = null;
    return () => { if (timer === null) timer = setTimeout(() => { timer = null; fn(); }, ms); };
  }

  return { live, request, get: (url) => request("GET", url), post: (url, body, idempotencyKey) => request("POST", url, body, idempotencyKey), newKey, esc, statusClass, debounce };
})();
