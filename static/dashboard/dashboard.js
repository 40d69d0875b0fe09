// The live page's few behaviours that htmx does not cover: the connection
// indicator, exact counters, and the row cap. Runs after htmx (deferred).
(function () {
  "use strict";
  // Reconnect fast at first, then back off (htmx's default waits up to 1 s, then doubles).
  htmx.config.wsReconnectDelay = function (retry) {
    return Math.min(200 * Math.pow(2, retry), 5000);
  };

  var counts = {};
  var droppedByProcess = {};
  var total = 0;

  function $(id) { return document.getElementById(id); }

  function setStatus(state, label) {
    var el = $("ws-status");
    el.dataset.state = state;
    el.textContent = label;
  }

  function rowsBody() { return $("events"); }

  function refreshRowCount() {
    var n = rowsBody().rows.length;
    $("row-count").textContent = n;
    $("empty-state").hidden = n > 0;
  }

  function trim() {
    var body = rowsBody();
    var max = parseInt(document.querySelector(".dash").dataset.maxRows, 10);
    while (body.rows.length > max) body.deleteRow(-1);
  }

  function applyBatch() {
    var batch = $("batch");
    if (!batch || !batch.dataset.counts) return;
    var c = JSON.parse(batch.dataset.counts);
    Object.keys(c).forEach(function (name) {
      counts[name] = (counts[name] || 0) + c[name];
      var el = document.querySelector('[data-count-for="' + name + '"]');
      if (el) el.textContent = counts[name];
    });
    total += parseInt(batch.dataset.total, 10) || 0;
    $("total-count").textContent = total;
    droppedByProcess[batch.dataset.process] = parseInt(batch.dataset.dropped, 10) || 0;
    var dropped = Object.values(droppedByProcess).reduce(function (a, b) { return a + b; }, 0);
    $("dropped-count").textContent = dropped;
    $("dropped-box").hidden = dropped === 0;
    batch.removeAttribute("data-counts");  // each batch is counted once
    trim();
    refreshRowCount();
  }

  document.addEventListener("htmx:wsConnecting", function () { setStatus("connecting", "connecting…"); });
  document.addEventListener("htmx:wsOpen", function () { setStatus("open", "live"); });
  document.addEventListener("htmx:wsClose", function () { setStatus("closed", "offline · reconnecting"); });
  document.addEventListener("htmx:wsAfterMessage", applyBatch);

  document.addEventListener("DOMContentLoaded", function () {
    $("clear-rows").addEventListener("click", function () {
      rowsBody().replaceChildren();
      refreshRowCount();
    });
    refreshRowCount();
  });
})();
