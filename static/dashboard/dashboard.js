// The live page's behaviours that htmx does not cover: the connection state and
// resume-after-reconnect, exact counters, the row cap, live filtering, pause
// and clear. Runs after htmx (deferred). Filtering rules mirror dashboard/filters.py.
(function () {
  "use strict";
  // Reconnect fast at first, then back off (htmx's default waits up to 1 s, then doubles).
  htmx.config.wsReconnectDelay = function (retry) {
    return Math.min(200 * Math.pow(2, retry), 5000);
  };

  var counts = {};
  var droppedByProcess = {};
  var lastId = 0;        // the newest stored event this page holds (or filtered out)
  var paused = false;
  var pausedCount = 0;

  function $(id) { return document.getElementById(id); }
  function live() { return $("events"); }
  function history() { return $("history"); }
  function maxRows() { return parseInt(document.querySelector(".dash").dataset.maxRows, 10); }

  function filters() {
    var data = new FormData($("filters"));
    var out = {};
    ["family", "signal", "sender", "request", "q"].forEach(function (k) {
      var v = (data.get(k) || "").trim();
      if (v) out[k] = v;
    });
    return out;
  }

  function matches(row, f) {
    if (f.family && row.dataset.family !== f.family) return false;
    if (f.signal && row.dataset.signal !== f.signal) return false;
    if (f.sender && row.dataset.sender !== f.sender) return false;
    if (f.request && row.dataset.request !== f.request) return false;
    if (f.q && row.textContent.toLowerCase().indexOf(f.q.toLowerCase()) < 0) return false;
    return true;
  }

  function setStatus(state, label) {
    var el = $("ws-status");
    el.dataset.state = state;
    el.textContent = label;
  }

  function showCount(name) {
    var el = document.querySelector('[data-count-for="' + name + '"]');
    if (el) el.textContent = counts[name];
  }

  function addCounts(c) {
    Object.keys(c).forEach(function (name) {
      counts[name] = (counts[name] || 0) + c[name];
      showCount(name);
    });
    var total = Object.values(counts).reduce(function (a, b) { return a + b; }, 0);
    $("total-count").textContent = total;
  }

  function refreshRowCount() {
    var n = live().rows.length + history().rows.length;
    $("row-count").textContent = n;
    $("empty-state").hidden = n > 0;
  }

  function trim() {
    var excess = live().rows.length + history().rows.length - maxRows();
    while (excess > 0 && history().rows.length) { history().deleteRow(-1); excess--; }
    while (excess > 0 && live().rows.length) { live().deleteRow(-1); excess--; }
  }

  // Rows just swapped in: note the newest id, drop duplicates and rows the
  // filters exclude, hide them while paused.
  function admit(rows) {
    var f = filters();
    var fresh = new Set(rows);
    var seen = {};
    document.querySelectorAll("#events tr[data-id], #history tr[data-id]").forEach(function (r) {
      if (!fresh.has(r) && r.dataset.id) seen[r.dataset.id] = true;
    });
    rows.forEach(function (row) {
      var id = parseInt(row.dataset.id, 10);
      if (id > lastId) lastId = id;
      if ((row.dataset.id && seen[row.dataset.id]) || !matches(row, f)) { row.remove(); return; }
      if (paused) { row.hidden = true; pausedCount++; }
    });
    $("paused-count").textContent = pausedCount;
  }

  function applyBatch(freshRows) {
    var batch = $("batch");
    if (!batch || !batch.dataset.counts) return;
    addCounts(JSON.parse(batch.dataset.counts));
    if (batch.dataset.process) {
      droppedByProcess[batch.dataset.process] = parseInt(batch.dataset.dropped, 10) || 0;
      var dropped = Object.values(droppedByProcess).reduce(function (a, b) { return a + b; }, 0);
      $("dropped-count").textContent = dropped;
      $("dropped-box").hidden = dropped === 0;
    }
    (batch.dataset.rolledBack || "").split(",").filter(Boolean).forEach(function (id) {
      document.querySelectorAll('tr[data-id="' + id + '"]').forEach(function (r) {
        r.classList.add("rolled-back");
      });
    });
    batch.removeAttribute("data-counts");  // each frame is counted once
    admit(freshRows);
    trim();
    refreshRowCount();
  }

  var before = null;
  document.addEventListener("htmx:wsBeforeMessage", function () {
    before = new Set(Array.from(live().rows));
  });
  document.addEventListener("htmx:wsAfterMessage", function () {
    var fresh = Array.from(live().rows).filter(function (r) { return !before.has(r); });
    applyBatch(fresh);
  });

  document.addEventListener("htmx:wsConnecting", function () { setStatus("connecting", "connecting…"); });
  document.addEventListener("htmx:wsClose", function () { setStatus("closed", "offline · reconnecting"); });
  document.addEventListener("htmx:wsOpen", function (e) {
    setStatus("open", "live");
    // First connect and every reconnect: ask for exactly what this page missed.
    e.detail.socketWrapper.send(JSON.stringify({ type: "resume", after: lastId, filters: filters() }));
  });

  // The filter form re-renders #history (htmx); live rows it now covers go,
  // the newer ones stay if they pass the new filters.
  document.addEventListener("htmx:afterSwap", function (e) {
    if (e.detail.target.id !== "history" && e.target.id !== "history") return;
    var upTo = parseInt(history().dataset.lastId, 10) || 0;
    var f = filters();
    Array.from(live().rows).forEach(function (r) {
      var id = parseInt(r.dataset.id, 10);
      if ((id && id <= upTo) || !matches(r, f)) r.remove();
    });
    if (upTo > lastId) lastId = upTo;
    var q = new URLSearchParams(f).toString();
    $("export-ndjson").search = q;
    $("export-csv").search = q;
    trim();
    refreshRowCount();
  });

  document.addEventListener("DOMContentLoaded", function () {
    lastId = parseInt(history().dataset.lastId, 10) || 0;
    var initial = JSON.parse(document.querySelector(".dash").dataset.counts || "{}");
    addCounts(initial);
    $("pause").addEventListener("click", function () {
      paused = !paused;
      this.setAttribute("aria-pressed", String(paused));
      this.textContent = paused ? "Resume" : "Pause";
      $("paused-box").hidden = !paused;
      if (!paused) {
        live().querySelectorAll("tr[hidden]").forEach(function (r) { r.hidden = false; });
        pausedCount = 0;
        $("paused-count").textContent = 0;
      }
    });
    $("clear-rows").addEventListener("click", function () {
      live().replaceChildren();
      history().replaceChildren();
      refreshRowCount();
    });
    refreshRowCount();
  });
})();
