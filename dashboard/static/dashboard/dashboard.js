// The live page's behaviours that htmx does not cover: the connection state and
// resume-after-reconnect, exact counters, the row cap, live filtering, pause
// and clear. Runs after htmx (deferred). The filter rule is dashboard/core/filters.py's:
// `matches()` and `searchText()` below are its one mirror here.
(function () {
  "use strict";
  // Reconnect fast at first, then back off (htmx's default waits up to 1 s, then doubles).
  htmx.config.wsReconnectDelay = function (retry) {
    return Math.min(200 * Math.pow(2, retry), 5000);
  };

  var counts = {};
  var droppedByProcess = {};
  var unstoredByProcess = {};
  var historyId = 0;     // the newest stored id the page's history covers
  var seen = {};         // per process, the newest event seq the page holds (or filtered out)
  var plumbing = 0;      // events so far that "my project" hides
  var paused = false;
  var pausedCount = 0;

  function $(id) { return document.getElementById(id); }
  function live() { return $("events"); }
  function history() { return $("history"); }
  function maxRows() { return parseInt(document.querySelector(".dash").dataset.maxRows, 10); }

  function filters() {
    var data = new FormData($("filters"));
    var out = {};
    ["family", "signal", "sender", "request", "q", "mine"].forEach(function (k) {
      var v = (data.get(k) || "").trim();
      if (v) out[k] = v;
    });
    return out;
  }

  function text(row, selector) {
    var el = row.querySelector(selector);
    return el ? el.textContent : "";
  }

  // What `q` searches: the row's signal, sender, summary and payload JSON, as
  // core/filters.py's search_text() joins them (not the time, badge or links).
  function searchText(row) {
    return [text(row, ".sig"), text(row, ".sender"), text(row, "summary"), text(row, "pre")]
      .join(" ").toLowerCase();
  }

  function matches(row, f) {
    if (f.family && row.dataset.family !== f.family) return false;
    if (f.signal && row.dataset.signal !== f.signal) return false;
    if (f.sender && row.dataset.sender !== f.sender) return false;
    if (f.request && (row.dataset.request || "") !== f.request) return false;
    if (f.q && searchText(row).indexOf(f.q.toLowerCase()) < 0) return false;
    if (f.mine && "plumbing" in row.dataset) return false;
    return true;
  }

  // An event key, "<process>.<seq>" (core/keys.py formats it).
  function parseKey(key) {
    var dot = key.lastIndexOf(".");
    return { process: key.slice(0, dot), seq: parseInt(key.slice(dot + 1), 10) };
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

  function note(key) {
    var k = parseKey(key);
    if (!(seen[k.process] >= k.seq)) seen[k.process] = k.seq;
  }

  function keysIn(rows, except) {
    var keys = new Set();
    rows.forEach(function (r) { if (!except.has(r)) keys.add(r.dataset.key); });
    return keys;
  }

  // Rows just swapped in: note what the page now holds, drop duplicates and
  // rows the filters exclude, hide them while paused.
  function admit(rows) {
    var f = filters();
    var fresh = new Set(rows);
    var held = keysIn(document.querySelectorAll("#events tr, #history tr"), fresh);
    rows.forEach(function (row) {
      note(row.dataset.key);
      if (held.has(row.dataset.key) || !matches(row, f)) { row.remove(); return; }
      held.add(row.dataset.key);
      if (paused) { row.hidden = true; pausedCount++; }
    });
    $("paused-count").textContent = pausedCount;
  }

  function showLosses(byProcess, process, count, name) {
    byProcess[process] = parseInt(count, 10) || 0;
    var total = Object.values(byProcess).reduce(function (a, b) { return a + b; }, 0);
    $(name + "-count").textContent = total;
    $(name + "-box").hidden = total === 0;
  }

  function showPlumbing() {
    $("plumbing-count").textContent = plumbing;
    $("plumbing-note").hidden = !filters().mine;
  }

  function applyBatch(freshRows) {
    var batch = $("batch");
    if (!batch || !batch.dataset.counts) return;
    addCounts(JSON.parse(batch.dataset.counts));
    plumbing += parseInt(batch.dataset.plumbingCount, 10) || 0;
    showPlumbing();
    if (batch.dataset.process) {
      // The sending process could not reach the channel layer: what shows here is
      // that process's own events only, until it can again.
      if (batch.dataset.layer === "down") {
        setStatus("degraded", "live · this process only");
        $("ws-status").title = "The channel layer cannot be reached: other processes' events do not arrive here";
      } else if ($("ws-status").dataset.state === "degraded") {
        setStatus("open", "live");
        $("ws-status").title = "Live connection";
      }
      // Running counts per process: the page shows their sum.
      showLosses(droppedByProcess, batch.dataset.process, batch.dataset.dropped, "dropped");
      showLosses(unstoredByProcess, batch.dataset.process, batch.dataset.unstored, "unstored");
    }
    if (batch.dataset.historyId) historyId = Math.max(historyId, parseInt(batch.dataset.historyId, 10));
    (batch.dataset.rolledBack || "").split(",").filter(Boolean).forEach(function (key) {
      document.querySelectorAll('tr[data-key="' + key + '"]').forEach(function (r) {
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
    e.detail.socketWrapper.send(JSON.stringify(
      { type: "resume", after: historyId, seen: seen, filters: filters() }));
  });

  // The filter form re-renders #history (htmx); live rows it now holds go,
  // the others stay if they pass the new filters.
  document.addEventListener("htmx:afterSwap", function (e) {
    if (e.detail.target.id !== "history" && e.target.id !== "history") return;
    var f = filters();
    var inHistory = keysIn(history().querySelectorAll("tr"), new Set());
    Array.from(live().rows).forEach(function (r) {
      if (inHistory.has(r.dataset.key) || !matches(r, f)) r.remove();
    });
    historyId = Math.max(historyId, parseInt(history().dataset.lastId, 10) || 0);
    showPlumbing();
    var q = new URLSearchParams(f).toString();
    $("export-ndjson").search = q;
    $("export-csv").search = q;
    trim();
    refreshRowCount();
  });

  // For tests/test_filters.py, which runs the server's cases through this rule.
  window.signalsDashboard = { matches: matches, searchText: searchText, parseKey: parseKey };

  document.addEventListener("DOMContentLoaded", function () {
    historyId = parseInt(history().dataset.lastId, 10) || 0;
    history().querySelectorAll("tr").forEach(function (r) { note(r.dataset.key); });
    var dash = document.querySelector(".dash");
    addCounts(JSON.parse(dash.dataset.counts || "{}"));
    plumbing = parseInt(dash.dataset.plumbing, 10) || 0;
    showPlumbing();
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
