// The live page's behaviours that htmx does not cover: the connection state and
// resume-after-reconnect, exact counters, the live chart, the row cap and "load
// older", live filtering and its chips, the requests view, pause and clear, and
// the detail panel with its address. Runs after htmx (deferred). The filter rule
// is dashboard/core/filters.py's: `matcher()` and `searchText()` below are its
// one mirror here (tests/test_filters.py runs the same cases through both).
(function () {
  "use strict";
  // Reconnect fast at first, then back off (htmx's default waits up to 1 s, then doubles).
  htmx.config.wsReconnectDelay = function (retry) {
    return Math.min(200 * Math.pow(2, retry), 5000);
  };
  // The page keeps its address itself (the filters, the open detail): htmx's
  // history would copy the whole page into sessionStorage on every push, and on
  // Back swap the body, its socket with it, for a stale copy.
  htmx.config.historyEnabled = false;

  var counts = {};
  var droppedByProcess = {};
  var unstoredByProcess = {};
  var historyId = 0;     // the newest stored id the page's history covers
  var seen = {};         // per process, the newest event seq the page holds (or filtered out)
  var plumbing = 0;      // events so far that "my project" hides
  var paused = false;
  var heldRows = [];     // rows held back while paused, oldest first (at most the cap)
  var heldCount = 0;     // events held back while paused (may exceed heldRows)
  var maxN = 0;          // arrival order (row.__n): live rows count up from 1,
  var minN = 1;          // the history's rows down from 0
  var extraRows = 0;     // rows "load older" added: the cap grows by as many
  var grouped = false;   // the requests view
  var groups = new Map();         // group key → {tbody, head, key}
  var expanded = new Set();       // group keys opened by the user
  var requests = {};              // request id → {method, path, status, duration_ms}
  var servers = new Set();        // processes that served requests
  var senders = new Set();        // suggestions for the sender filter
  var opener = null;              // what opened the detail: focus returns there
  var suppressPush = false;       // a swap caused by Back/Forward pushes nothing

  function $(id) { return document.getElementById(id); }
  function live() { return $("events"); }
  function history() { return $("history"); }
  function table() { return $("event-table"); }
  function dash() { return document.querySelector(".dash"); }
  function form() { return $("filters"); }
  function indexUrl() { return dash().dataset.indexUrl; }
  function maxRows() { return parseInt(dash().dataset.maxRows, 10); }
  function cap() { return maxRows() + extraRows; }
  function allRows() { return table().querySelectorAll("tr.event"); }

  // -- the one filter rule (core/filters.py) --------------------------------

  var MULTI = ["family", "signal"];
  var SINGLE = ["sender", "request", "q", "mine"];

  // A multi-valued filter, as core/filters.py's _values(): a list, or a string,
  // each value possibly listing several comma-separated; trimmed, no repeats.
  function values(v) {
    var items = Array.isArray(v) ? v : (v == null ? [] : [v]);
    var out = [];
    items.forEach(function (item) {
      String(item).split(",").forEach(function (part) {
        part = part.trim();
        if (part && out.indexOf(part) < 0) out.push(part);
      });
    });
    return out;
  }

  function filters() {
    var data = new FormData(form());
    var out = {};
    MULTI.forEach(function (k) {
      var v = values(data.getAll(k));
      if (v.length) out[k] = v;
    });
    SINGLE.forEach(function (k) {
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

  // The filters as one test, compiled once for a frame's rows.
  function matcher(f) {
    var family = values(f.family), signal = values(f.signal);
    var sender = String(f.sender || "").trim().toLowerCase();
    var request = String(f.request || "").trim();
    var q = String(f.q || "").trim().toLowerCase();
    var mine = !!f.mine;
    return function (row) {
      var d = row.dataset;
      if (family.length && family.indexOf(d.family) < 0) return false;
      if (signal.length && signal.indexOf(d.signal) < 0) return false;
      if (sender && d.sender.toLowerCase().indexOf(sender) < 0) return false;
      if (request && (d.request || "") !== request) return false;
      if (q && searchText(row).indexOf(q) < 0) return false;
      if (mine && "plumbing" in d) return false;
      return true;
    };
  }

  function matches(row, f) { return matcher(f)(row); }

  function hasFilters(f) { return Object.keys(f).length > 0; }

  // The filters (and the view) as a bookmarkable query, in core/filters.py's order.
  function query(withView) {
    var f = filters();
    var p = new URLSearchParams();
    MULTI.concat(SINGLE).forEach(function (k) {
      if (!(k in f)) return;
      (Array.isArray(f[k]) ? f[k] : [f[k]]).forEach(function (v) { p.append(k, v); });
    });
    if (withView && grouped) p.append("view", "requests");
    return p.toString();
  }

  function pushUrl(path) {
    var q = query(true);
    var url = path + (q ? "?" + q : "");
    if (url !== location.pathname + location.search) history_().pushState({ dash: 1 }, "", url);
  }
  function history_() { return window.history; }

  // -- keys, status, counters ------------------------------------------------

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

  function note(key) {
    var k = parseKey(key);
    if (!(seen[k.process] >= k.seq)) {
      delete seen[k.process];  // to the end: the keys stay in order of their last event
      seen[k.process] = k.seq;
    }
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

  // The table's state in words: rows shown, the cap, what pause holds, the empty state.
  function refresh() {
    var n = allRows().length;
    $("row-count").textContent = n;
    $("row-cap").textContent = cap() * (reading() ? READING_CAP : 1);  // (trim)
    $("paused-count").textContent = heldCount;
    $("paused-box").hidden = !paused;
    var filtered = hasFilters(filters());
    $("empty-state").hidden = n > 0;
    $("empty-waiting").hidden = filtered;
    $("empty-filtered").hidden = !filtered;
  }

  // -- what rows teach: requests, the processes that serve them, senders ------

  function requestInfo(row) {
    var info = requests[row.dataset.request] || (requests[row.dataset.request] = {});
    try {
      var payload = JSON.parse(text(row, "pre") || "{}");
      if (payload.request && payload.request.method) {
        info.method = payload.request.method;
        info.path = payload.request.path;
      }
      if ("status" in payload) info.status = payload.status;
      if ("duration_ms" in payload) info.duration_ms = payload.duration_ms;
    } catch (e) { /* a payload cut short: the request stays unnamed */ }
  }

  var REQUEST_SIGNALS = { request_started: 1, request_finished: 1 };

  // Every row of a frame, before the filters: true if a new serving process showed.
  function learn(rows) {
    var newServer = false;
    var list = $("senders");
    rows.forEach(function (row) {
      var d = row.dataset;
      if (d.request) {
        var process = parseKey(d.key).process;
        if (!servers.has(process)) { servers.add(process); newServer = true; }
        if (REQUEST_SIGNALS[d.signal]) requestInfo(row);
      }
      if (d.sender && !senders.has(d.sender) && senders.size < 500) {
        senders.add(d.sender);
        var option = document.createElement("option");
        option.value = d.sender;
        list.appendChild(option);
      }
    });
    return newServer;
  }

  function learnTbody(tbody) {
    try {
      var found = JSON.parse(tbody.dataset.requests || "{}");
      Object.keys(found).forEach(function (rid) {
        requests[rid] = Object.assign(requests[rid] || {}, found[rid]);
      });
      JSON.parse(tbody.dataset.servers || "[]").forEach(function (p) { servers.add(p); });
    } catch (e) { /* nothing to learn */ }
  }

  // -- rows arriving ----------------------------------------------------------

  function keysHeld(except) {
    var keys = new Set();
    allRows().forEach(function (r) { if (!except.has(r)) keys.add(r.dataset.key); });
    heldRows.forEach(function (r) { keys.add(r.dataset.key); });
    return keys;
  }

  // Rows just swapped in (newest first): note what the page now holds, drop
  // duplicates and rows the filters exclude; hold them back while paused, or
  // put them in their groups in the requests view.
  function admit(rows) {
    rows.forEach(function (r) { colour(r.dataset.family); });
    var ok = matcher(filters());
    var regroupNeeded = learn(rows) && grouped;
    var fresh = new Set(rows);
    var keys = keysHeld(fresh);
    var admitted = [];
    for (var i = rows.length - 1; i >= 0; i--) {  // oldest first
      var row = rows[i];
      note(row.dataset.key);
      if (keys.has(row.dataset.key) || !ok(row)) { row.remove(); continue; }
      keys.add(row.dataset.key);
      row.__n = ++maxN;
      admitted.push(row);
    }
    // Paused, all wait; scrolled down reading, those past READING_CAP times the cap
    // (trimmed, the rows read would go): the newest wait until the page is at the top.
    var shown = allRows().length - admitted.length;
    var room = paused ? 0 : reading() ? Math.max(cap() * READING_CAP - shown, 0) : Infinity;
    var wait = admitted.slice(room);
    if (wait.length) {
      wait.forEach(function (r) { r.remove(); heldRows.push(r); });
      heldCount += wait.length;
      if (heldRows.length > cap()) heldRows.splice(0, heldRows.length - cap());
    }
    var total = admitted.length;
    admitted = admitted.slice(0, room);
    if (!admitted.length) {
      return total;
    } else if (regroupNeeded) {
      regroup();
    } else if (grouped) {
      var touched = new Set();
      admitted.forEach(function (r) { touched.add(place(r)); });
      touched.forEach(updateHead);
    } else {
      admitted.forEach(sink);  // oldest first: each sinks past the rows below it
    }
    return total;
  }

  // The flat table reads in the order of the times it shows, newest first. Events come
  // in the order their sends ended: one sent from another's receivers (a login's save of
  // its user) ends before it, a request's ends after that of a request begun beside it,
  // and a process's may be stored after another's later ones. So each row goes down past
  // the rows that began after it, from the live rows on into the history's (ISO times,
  // all in UTC, or all naive in TIME_ZONE without USE_TZ: as strings they sort as times).
  function began(r) {  // read once per row: a row out of order is compared many times
    if (r.__t === undefined) {
      var t = r.querySelector("td.t time");
      r.__t = t ? t.getAttribute("datetime") : "";
    }
    return r.__t;
  }
  function sink(row) {
    var t = began(row), body = row.parentNode, next = row.nextElementSibling;
    for (;;) {
      while (next && began(next) > t) next = next.nextElementSibling;
      var first = !next && body === live() && history() && history().firstElementChild;
      if (!first || began(first) <= t) break;  // else on past the history's newer rows
      body = history();
      next = first;
    }
    if (body !== row.parentNode || next !== row.nextElementSibling) body.insertBefore(row, next);
  }
  function sortByTime() {  // an insertion sort, from the bottom up: rows come nearly in order
    [history(), live()].forEach(function (tbody) {
      if (tbody) Array.from(tbody.querySelectorAll("tr.event")).reverse().forEach(sink);
    });
  }

  // Past the cap, the first rows to arrive go, in either view ("Load older" pages back by
  // arrival; the flat table is in time order: sink); in the requests view, from their groups.
  // Scrolled down, a person is reading: new rows still come in above, the browser keeps
  // what they read in place (as the row under the pointer is kept at the top), and the cap
  // waits, up to READING_CAP times over (then new rows wait: admit). Trimmed from under
  // them, the rows they read went and the page slid to the end of the list within seconds
  // at 100 events/s. Back at the top, the cap applies again. (4 times over, 2,000 rows
  // under the pointer at 140 events/s, was more than the page could lay out: it fell
  // behind its socket, and daphne's ping timed out.)
  var READING_CAP = 2;
  function reading() { return window.scrollY > 0 || anchor != null; }  // (anchor: below)
  function trim() {
    var rows = allRows();
    var excess = rows.length - cap() * (reading() ? READING_CAP : 1);
    if (excess <= 0) return;
    var touched = new Set();
    Array.from(rows).sort(byArrival).slice(0, excess).forEach(function (r) {
      touched.add(r.parentNode);
      r.remove();
    });
    if (grouped) touched.forEach(function (tbody) { if (tbody) tidy(tbody); });
  }

  function byArrival(a, b) { return a.__n - b.__n; }

  // The rows that came in above while reading: "↑ N newer", a way back to the top.
  var newer = 0;
  function showNewer() {
    var button = $("newer");
    if (!reading()) newer = 0;
    button.hidden = newer === 0;
    button.textContent = "\u2191 " + plural(newer, "newer row");
  }
  function scrolled() {  // back at the top, what waited joins the table
    if (!reading() && !paused) { release(); refresh(); }
    showNewer();
  }
  window.addEventListener("scroll", scrolled, { passive: true });

  // The rows held back (paused, or reading past the cap) join the table; then the cap.
  function release() {
    heldRows.forEach(function (r) {  // oldest first: the newest ends on top
      if (grouped) updateHead(place(r));
      else { live().insertBefore(r, live().firstElementChild); sink(r); }
    });
    heldRows = [];
    heldCount = 0;
    trim();
  }

  // A row whose transaction rolled back after it was shown: struck through, and the badge
  // a row stored so has (the page's <template>, from core/render.py).
  function markRolledBack(r) {
    if (r.classList.contains("rolled-back")) return;
    r.classList.add("rolled-back");
    var sig = r.querySelector("span.sig"), badge = $("rolled-back-badge");
    if (sig && badge) sig.after(badge.content.cloneNode(true));
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
    if (batch.dataset.rates) chart.add(JSON.parse(batch.dataset.rates));
    (batch.dataset.rolledBack || "").split(",").filter(Boolean).forEach(function (key) {
      document.querySelectorAll('tr[data-key="' + key + '"]').forEach(markRolledBack);
      heldRows.forEach(function (r) { if (r.dataset.key === key) markRolledBack(r); });
    });
    batch.removeAttribute("data-counts");  // each frame is counted once
    var admitted = admit(freshRows);
    if (reading() && !paused) newer += admitted;
    trim();
    refresh();
  }

  // The rows a frame put on top of #events: those above the row that was first before it.
  // The row under the pointer stays where it is (the page scrolls by what came in above
  // it), so that at 100 events/s the row a person reaches for is the one they click;
  // away from the table, new rows push the others down as they come.
  var marker = null, anchor = null, anchorTop = 0;
  document.addEventListener("htmx:wsBeforeMessage", function () {
    marker = live().firstElementChild;
    anchor = table().querySelector("tr.event:hover, tr.group-head:hover");
    if (anchor) anchorTop = anchor.getBoundingClientRect().top;
  });
  document.addEventListener("htmx:wsAfterMessage", function () {
    var fresh = [];
    for (var r = live().firstElementChild; r && r !== marker; r = r.nextElementSibling) fresh.push(r);
    marker = null;
    applyBatch(fresh);
    if (anchor && anchor.isConnected) {  // by what is left after the browser's own anchoring
      var moved = anchor.getBoundingClientRect().top - anchorTop;
      if (moved) window.scrollBy(0, moved);
    }
    anchor = null;
    showNewer();
  });

  // The server takes at most 64 processes (live/consumer.py): those with the newest events.
  function newestSeen() {
    var out = {};
    Object.keys(seen).slice(-64).forEach(function (p) { out[p] = seen[p]; });
    return out;
  }

  document.addEventListener("htmx:wsConnecting", function () { setStatus("connecting", "connecting…"); });
  document.addEventListener("htmx:wsClose", function (e) {
    var code = e.detail && e.detail.event && e.detail.event.code;
    // The server closed it: logged out, session gone, deactivated (4401), or the
    // permission taken away (4403). htmx does not reconnect after these codes.
    if (code === 4401 || code === 4403) { sessionEnded(code === 4403); return; }
    setStatus("closed", "offline · reconnecting");
    // A refused handshake says nothing of why: the socket's address over HTTP does.
    var url = document.querySelector(".dash").getAttribute("ws-connect");
    fetch(url, { credentials: "same-origin" }).then(function (r) {
      if (r.status === 401 || r.status === 403) sessionEnded(r.status === 403);
    }).catch(function () {});  // the server is down: htmx reconnects (and a login elsewhere
                               // lets it in again)
  });
  // An htmx request refused for the same reasons (a logged-out one is redirected whole).
  document.addEventListener("htmx:responseError", function (e) {
    if (e.detail.xhr && e.detail.xhr.status === 403) sessionEnded(true);
  });

  function sessionEnded(refused) {
    setStatus("ended", refused ? "not permitted" : "session ended");
    var banner = $("session-ended");
    if (!banner) {
      banner = document.createElement("div");
      banner.id = "session-ended";
      banner.setAttribute("role", "alert");
      document.querySelector(".dash").prepend(banner);
    }
    var url = (document.querySelector(".dash").dataset.loginUrl || "/") +
      "?next=" + encodeURIComponent(location.pathname + location.search);
    banner.textContent = refused
      ? "You may no longer view this dashboard. "
      : "Your session ended: nothing new is shown. ";
    var link = document.createElement("a");
    link.href = url;
    link.textContent = refused ? "Log in as someone who may" : "Log in again";
    banner.appendChild(link);
    // Logged out: the header no longer names the user, nor offers to log out.
    if (!refused) document.querySelectorAll(".topnav .who, .topnav form").forEach(function (el) {
      el.hidden = true;
    });
  }
  document.addEventListener("htmx:wsOpen", function (e) {
    setStatus("open", "live");
    var ended = $("session-ended");  // logged in again (in another tab)
    if (ended) ended.remove();
    document.querySelectorAll(".topnav .who, .topnav form").forEach(function (el) {
      el.hidden = false;
    });
    // First connect and every reconnect: ask for exactly what this page missed.
    e.detail.socketWrapper.send(JSON.stringify(
      { type: "resume", after: historyId, seen: newestSeen(), filters: filters() }));
  });

  // -- the requests view ------------------------------------------------------

  function groupKey(row) {
    var rid = row.dataset.request;
    if (rid) return "r:" + rid;
    var process = parseKey(row.dataset.key).process;
    // A process that serves requests: its other events stay flat, in time order.
    return servers.has(process) ? "" : "p:" + process;
  }

  function makeGroup(key) {
    var tbody = document.createElement("tbody");
    tbody.className = "group" + (expanded.has(key) ? "" : " collapsed");
    tbody.dataset.group = key;
    var head = document.createElement("tr");
    head.className = "group-head";
    var cell = document.createElement("td");
    cell.colSpan = 4;
    var line = document.createElement("div");  // one line where it fits (a td cannot flex)
    line.className = "group-line";
    cell.appendChild(line);
    var toggle = document.createElement("button");
    toggle.type = "button";
    toggle.className = "group-toggle";
    toggle.setAttribute("aria-expanded", String(expanded.has(key)));
    line.appendChild(toggle);
    if (key.slice(0, 2) === "r:") {
      var only = document.createElement("button");
      only.type = "button";
      only.className = "only-request link";
      only.dataset.request = key.slice(2);
      only.textContent = "only this request";
      line.appendChild(only);
    }
    head.appendChild(cell);
    tbody.appendChild(head);
    var group = { tbody: tbody, head: head, toggle: toggle, key: key };
    groups.set(key, group);
    return group;
  }

  // Put a row (newer than every row placed before it) in its group, on top.
  function place(row) {
    var key = groupKey(row);
    var top = live().nextElementSibling;
    if (!key) {
      var loose = top && top.classList.contains("loose") ? top : null;
      if (!loose) {
        loose = document.createElement("tbody");
        loose.className = "loose";
        live().after(loose);
      }
      loose.insertBefore(row, loose.firstElementChild);
      return loose;
    }
    var group = groups.get(key) || makeGroup(key);
    group.tbody.insertBefore(row, group.head.nextElementSibling);
    if (top !== group.tbody) live().after(group.tbody);
    return group.tbody;
  }

  function plural(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }

  function span(cls, content) {
    var s = document.createElement("span");
    s.className = cls;
    s.textContent = content;
    return s;
  }

  // A group's head: what it is, method, path, status and duration, how many events.
  function updateHead(tbody) {
    if (!tbody || !tbody.classList.contains("group")) return;
    var group = groups.get(tbody.dataset.group);
    var rows = tbody.querySelectorAll("tr.event");
    var key = group.key;
    var toggle = group.toggle;
    var parts = [span("caret", "")];
    if (key.slice(0, 2) === "r:") {
      var info = requests[key.slice(2)] || {};
      parts.push(span("what", info.method ? info.method + " " + info.path : "request " + key.slice(2)));
      if (info.status != null) {
        parts.push(span("status s" + String(info.status).charAt(0), "→ " + info.status));
      } else if (info.method) {
        parts.push(span("status", "in progress"));
      }
      if (info.duration_ms != null) parts.push(span("dur", info.duration_ms + " ms"));
    } else {
      parts.push(span("what", "process " + key.slice(2)));
      parts.push(span("muted", "outside any request (a shell, a command, a worker)"));
    }
    parts.push(span("n", plural(rows.length, "event")));
    var sigs = {};
    rows.forEach(function (r) { sigs[r.dataset.signal] = (sigs[r.dataset.signal] || 0) + 1; });
    var names = Object.keys(sigs).sort(function (a, b) { return sigs[b] - sigs[a]; });
    parts.push(span("sigs muted", names.slice(0, 4).map(function (s) {
      return sigs[s] > 1 ? s + " ×" + sigs[s] : s;
    }).join(", ") + (names.length > 4 ? ", …" : "")));
    if (rows.length) {  // a request's duration is shown: when it began says the rest
      var first = text(rows[rows.length - 1], "time"), last = text(rows[0], "time");
      var request = key.slice(0, 2) === "r:";
      parts.push(span("when muted", first === last || request ? first : first + "–" + last));
    }
    toggle.replaceChildren.apply(toggle, parts);
  }

  // Empty groups go; the others say what they hold now.
  function tidy(tbody) {
    if (tbody.querySelector("tr.event")) { updateHead(tbody); return; }
    if (tbody.dataset.group) groups.delete(tbody.dataset.group);
    if (tbody.classList.contains("group") || tbody.classList.contains("loose")) tbody.remove();
  }

  // Lay the rows out anew for the view: groups (oldest placed first), or flat
  // (live rows in #events, the history's in #history, newest first).
  function regroup() {
    var rows = Array.from(allRows()).sort(byArrival);
    table().querySelectorAll("tbody.group, tbody.loose").forEach(function (t) { t.remove(); });
    groups = new Map();
    if (grouped) {
      var touched = new Set();
      rows.forEach(function (r) { touched.add(place(r)); });
      touched.forEach(updateHead);
    } else {
      rows.forEach(function (r) {
        var body = r.__n > 0 ? live() : history();
        body.insertBefore(r, body.firstElementChild);
      });
      sortByTime();
    }
    table().classList.toggle("grouped", grouped);
  }

  function toggleGroup(button) {
    var tbody = button.closest("tbody.group");
    var open = tbody.classList.toggle("collapsed") === false;
    button.setAttribute("aria-expanded", String(open));
    if (open) expanded.add(tbody.dataset.group); else expanded.delete(tbody.dataset.group);
  }

  // -- the live chart: events per second by family ----------------------------
  // Plain SVG: one stacked path per family, redrawn at most once a frame and
  // every second; its colours are the families' (CSS), its clicks filter.

  var chart = (function () {
    var WINDOW = 300;  // seconds shown
    var RECENT = 10;   // seconds the legend's rate is taken over
    var H = 60;
    var buckets = new Map();  // server second → {family: n}
    var offset = 0;           // the server's clock minus this browser's, in seconds
    var scheduled = false;
    var paths = {};
    var legend = {};

    function now() { return Date.now() / 1000 + offset; }

    function add(list) {
      list.forEach(function (item) {
        var b = buckets.get(item[0]);
        if (!b) buckets.set(item[0], b = {});
        b[item[1]] = (b[item[1]] || 0) + item[2];
      });
      schedule();
    }

    function schedule() {
      if (scheduled) return;
      scheduled = true;
      requestAnimationFrame(function () { scheduled = false; draw(); });
    }

    function families() {
      var order = Array.from(document.querySelectorAll(".counters .family .pick-family"))
        .map(function (b) { return b.dataset.family; });
      buckets.forEach(function (b) {
        Object.keys(b).forEach(function (f) { if (order.indexOf(f) < 0) order.push(f); });
      });
      return order;
    }

    function draw() {
      var end = Math.floor(now());
      var start = end - WINDOW + 1;
      buckets.forEach(function (_, second) { if (second < start - RECENT) buckets.delete(second); });
      var fams = families();
      var peak = 1, inWindow = {}, recent = {};
      for (var s = start; s <= end; s++) {
        var b = buckets.get(s);
        if (!b) continue;
        var total = 0;
        fams.forEach(function (f) {
          var n = b[f] || 0;
          total += n;
          inWindow[f] = (inWindow[f] || 0) + n;
          if (s > end - RECENT) recent[f] = (recent[f] || 0) + n;
        });
        peak = Math.max(peak, total);
      }
      var d = {};
      for (var x = 0; x < WINDOW; x++) {
        var bucket = buckets.get(start + x);
        if (!bucket) continue;
        var y = H;
        fams.forEach(function (f) {
          var n = bucket[f];
          if (!n) return;
          var h = Math.max(n / peak * H, 0.6);
          d[f] = (d[f] || "") + "M" + x + "," + (y - h).toFixed(2) + "h1V" + y.toFixed(2) + "h-1Z";
          y -= h;
        });
      }
      var svg = $("rate-chart");
      fams.forEach(function (f) {
        var path = paths[f];
        if (!path && d[f]) {
          path = paths[f] = document.createElementNS("http://www.w3.org/2000/svg", "path");
          path.setAttribute("class", "fam-" + f);
          path.dataset.family = f;
          colour(f);
          svg.appendChild(path);
        }
        if (path) path.setAttribute("d", d[f] || "");
        if (inWindow[f] || legend[f]) legendItem(f, inWindow[f] || 0, (recent[f] || 0) / RECENT);
      });
      $("chart-peak").textContent = "peak " + peak + "/s";
    }

    function legendItem(f, total, rate) {
      var item = legend[f];
      if (!item) {
        item = legend[f] = document.createElement("button");
        item.type = "button";
        item.className = "legend-item fam-" + f;
        item.dataset.family = f;
        item.setAttribute("aria-pressed", String(values(filters().family).indexOf(f) >= 0));
        item.append(span("swatch", ""), span("name", f), span("rate", ""));
        $("chart-legend").appendChild(item);
      }
      var label = (rate >= 10 ? Math.round(rate) : rate.toFixed(1)) + "/s";
      item.lastChild.textContent = label;
      item.title = f + ": " + total + " events in the last 5 minutes; click to filter";
    }

    function init(el) {
      offset = (parseFloat(el.dataset.now) || Date.now() / 1000) - Date.now() / 1000;
      try { add(JSON.parse(el.dataset.rates || "[]")); } catch (e) { /* no history */ }
      setInterval(draw, 1000);
      draw();
    }

    return { add: add, init: init, draw: draw };
  })();

  // -- filters: pickers, chips, clickable families and signals ---------------

  function submitFilters() { htmx.trigger(form(), "submit"); }

  function checkbox(name, value) {
    var found = Array.from(form().querySelectorAll('input[name="' + name + '"]'))
      .filter(function (i) { return i.value === value; })[0];
    if (found) return found;
    // A family or signal first seen after the page was made: a box of its own.
    var label = document.createElement("label");
    var input = document.createElement("input");
    input.type = "checkbox";
    input.name = name;
    input.value = value;
    label.append(input, value);
    $(name === "family" ? "pick-families" : "pick-signals").querySelector(".menu").appendChild(label);
    return input;
  }

  // Clicking a family or a signal (chart, legend or counters): show only it, or
  // again to undo. Several can be chosen in the pickers.
  function toggleFilter(name, value) {
    var box = checkbox(name, value);
    box.checked = !box.checked;
    submitFilters();
  }

  function clearFilter(name, value) {
    if (MULTI.indexOf(name) >= 0) {
      checkbox(name, value).checked = false;
    } else if (name === "mine") {
      form().querySelector('input[name="mine"]').checked = false;
    } else {
      form().querySelector('input[name="' + name + '"]').value = "";
    }
  }

  function chip(name, value, label) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = "chip";
    b.dataset.name = name;
    b.dataset.value = value;
    b.setAttribute("aria-label", "Remove the filter " + label);
    b.append(span("", label), span("x", "✕"));
    b.lastChild.setAttribute("aria-hidden", "true");
    return b;
  }

  function requestLabel(rid) {
    var info = requests[rid];
    return info && info.method ? info.method + " " + info.path : rid;
  }

  function renderChips() {
    var f = filters();
    var box = $("chips");
    var items = [];
    values(f.family).forEach(function (v) { items.push(chip("family", v, "family: " + v)); });
    values(f.signal).forEach(function (v) { items.push(chip("signal", v, "signal: " + v)); });
    if (f.sender) items.push(chip("sender", f.sender, "sender contains “" + f.sender + "”"));
    if (f.q) items.push(chip("q", f.q, "text “" + f.q + "”"));
    if (f.request) items.push(chip("request", f.request, "request: " + requestLabel(f.request)));
    if (f.mine) items.push(chip("mine", "1", "my project"));
    if (items.length > 1) {
      var all = document.createElement("button");
      all.type = "button";
      all.className = "chip clear-all";
      all.textContent = "Clear all filters";
      items.push(all);
    }
    box.replaceChildren.apply(box, items);
    box.hidden = items.length === 0;
    ["family", "signal"].forEach(function (k) {
      var n = values(f[k]).length;
      document.querySelector('.pick-n[data-for="' + k + '"]').textContent = n ? "(" + n + ")" : "";
    });
    // Families and signals that are filtered show pressed wherever they can be clicked.
    document.querySelectorAll(".pick-family, .legend-item").forEach(function (b) {
      b.setAttribute("aria-pressed", String(values(f.family).indexOf(b.dataset.family) >= 0));
    });
    document.querySelectorAll(".pick-signal").forEach(function (b) {
      b.setAttribute("aria-pressed", String(values(f.signal).indexOf(b.dataset.signal) >= 0));
    });
  }

  function clearAll() {
    form().querySelectorAll('input[type="checkbox"]').forEach(function (i) { i.checked = false; });
    form().querySelectorAll('input[type="search"], input[name="request"]').forEach(function (i) {
      i.value = "";
    });
    submitFilters();
  }

  // Live rows that sank into #history (sink) go back to #events before the filter form
  // replaces #history: the swap would take them with it (a row not stored yet, or never).
  document.addEventListener("htmx:beforeSwap", function (e) {
    var target = e.detail.target;
    if (!target || target.id !== "history") return;
    Array.from(history().rows).forEach(function (r) { if (r.__n > 0) live().appendChild(r); });
  });

  // The filter form re-rendered #history (htmx): its rows are the history now;
  // live rows it holds go, the others stay if they pass the new filters.
  document.addEventListener("htmx:afterSwap", function (e) {
    var target = e.detail.target;
    if (target && target.id === "detail") { panelShown(); return; }
    if (!target || (target.id !== "history" && e.target.id !== "history")) return;
    var ok = matcher(filters());
    var fresh = new Set(history().rows);
    // The history's rows from before (wherever the requests view put them) go.
    allRows().forEach(function (r) { if (!fresh.has(r) && !(r.__n > 0)) r.remove(); });
    var inHistory = new Set();
    minN = 1;
    extraRows = 0;
    Array.from(history().rows).forEach(function (r) {
      r.__n = --minN;
      inHistory.add(r.dataset.key);
    });
    learnTbody(history());
    allRows().forEach(function (r) {
      if (r.__n > 0 && (inHistory.has(r.dataset.key) || !ok(r))) r.remove();
    });
    heldRows = heldRows.filter(function (r) { return !inHistory.has(r.dataset.key) && ok(r); });
    heldCount = heldRows.length;
    historyId = Math.max(historyId, parseInt(history().dataset.lastId, 10) || 0);
    regroup();
    showPlumbing();
    var q = query(false);
    $("export-ndjson").search = q;
    $("export-csv").search = q;
    $("export-test").search = q;
    $("older-note").textContent = "";
    $("load-older").disabled = false;
    if (!suppressPush) pushUrl(location.pathname);
    suppressPush = false;
    renderChips();
    trim();
    markSelected();  // the open detail's row, if the new history holds it
    refresh();
  });

  // "Load older": the filtered history before the oldest row the page holds.
  function loadOlder() {
    var rows = Array.from(allRows()).sort(byArrival);
    var oldest = rows[0];
    var before = oldest ? (oldest.dataset.id || oldest.dataset.key) : String(historyId + 1);
    var q = query(false);
    var url = indexUrl() + "?" + (q ? q + "&" : "") + "before=" + encodeURIComponent(before);
    var button = $("load-older");
    button.disabled = true;
    $("older-note").textContent = "loading…";
    fetch(url, { headers: { "HX-Request": "true" }, credentials: "same-origin" })
      .then(function (r) {
        // A session that ended: the whole page goes to the login, as htmx does.
        var redirect = r.headers.get("HX-Redirect");
        if (redirect) { location.href = redirect; return null; }
        if (r.status === 403) sessionEnded(true);
        if (!r.ok) throw new Error(r.status + " " + r.statusText);
        return r.text();
      })
      .then(function (html) {
        if (html === null) return;
        var t = document.createElement("template");
        t.innerHTML = "<table>" + html + "</table>";
        var older = t.content.querySelector("#older");
        learnTbody(older);
        var keys = keysHeld(new Set());
        var added = 0;
        Array.from(older.rows).forEach(function (r) {
          note(r.dataset.key);
          if (keys.has(r.dataset.key)) return;
          r.__n = --minN;
          history().appendChild(r);
          added++;
        });
        extraRows += added;
        if (grouped) regroup();
        else sortByTime();
        var more = older.rows.length + added >= parseInt(older.dataset.limit, 10);
        $("older-note").textContent = added
          ? plural(added, "older row") + " added" + (more ? "" : " · that is all the history holds")
          : "Nothing older in the history" + (hasFilters(filters()) ? " for these filters" : "");
        button.disabled = !more;
        markSelected();
        refresh();
      })
      .catch(function (err) {
        $("older-note").textContent = "Could not load older rows: " + err.message;
        button.disabled = false;
      });
  }

  // -- the detail panel ---------------------------------------------------------

  function detailOpen() { return $("detail").childElementCount > 0; }

  function isEventPath(path) { return path.indexOf(indexUrl() + "events/") === 0; }

  function openDetail(url, from, push) {
    if (!detailOpen() || !opener) opener = from || document.activeElement;
    var path = url.split("?")[0];
    return htmx.ajax("GET", path, { target: "#detail", swap: "innerHTML" }).then(function () {
      if (push) pushUrl(path);
    });
  }

  // The row whose detail is open stands out, and says so to a screen reader.
  function markSelected() {
    var card = document.querySelector("#detail .detail-card");
    var key = card ? card.dataset.event : null;
    table().querySelectorAll("tr.event.selected").forEach(function (r) {
      if (r.dataset.key === key) return;
      r.classList.remove("selected");
      r.removeAttribute("aria-current");
    });
    if (!key) return;
    table().querySelectorAll('tr.event[data-key="' + CSS.escape(key) + '"]').forEach(function (r) {
      r.classList.add("selected");
      r.setAttribute("aria-current", "true");
    });
  }

  function panelShown() {
    markSelected();
    document.body.classList.add("detail-open");
    var title = $("detail-title");
    if (title) title.focus();
  }

  function closeDetail(push) {
    if (!detailOpen()) return;
    $("detail").replaceChildren();
    markSelected();
    document.body.classList.remove("detail-open");
    if (push) pushUrl(indexUrl());
    var back = opener && opener.isConnected ? opener : table().querySelector("a.open");
    opener = null;
    if (back) back.focus();
  }

  function setRequest(rid) {
    form().querySelector('input[name="request"]').value = rid;
    closeDetail(false);
    submitFilters();
  }

  // Back and Forward: the filters and the detail follow the address.
  function followAddress() {
    var params = new URLSearchParams(location.search);
    var before = query(false);
    form().querySelectorAll("input").forEach(function (i) {
      if (i.type === "checkbox") {
        i.checked = params.getAll(i.name).some(function (v) { return values(v).indexOf(i.value) >= 0; });
      } else if (i.type === "radio") {
        i.checked = i.value === (params.get("view") === "requests" ? "requests" : "flat");
      } else if (i.name && i.type !== "submit") {
        i.value = params.get(i.name) || "";
      }
    });
    var nowGrouped = params.get("view") === "requests";
    if (nowGrouped !== grouped) { grouped = nowGrouped; regroup(); }
    if (query(false) !== before) { suppressPush = true; submitFilters(); }
    renderChips();
    if (isEventPath(location.pathname)) openDetail(location.pathname, null, false);
    else closeDetail(false);
  }

  // -- wiring -----------------------------------------------------------------

  document.addEventListener("click", function (e) {
    var t = e.target;
    var open = t.closest("a.open");
    if (open && e.button === 0 && !(e.ctrlKey || e.metaKey || e.shiftKey || e.altKey)) {
      e.preventDefault();
      openDetail(open.getAttribute("href"), open, true);
      return;
    }
    if (t.closest("#detail .close")) { e.preventDefault(); closeDetail(true); return; }
    var only = t.closest(".only-request");
    if (only) { e.preventDefault(); setRequest(only.dataset.request); return; }
    var c = t.closest(".chip");
    if (c) {
      if (c.classList.contains("clear-all")) { clearAll(); return; }
      var index = Array.from($("chips").children).indexOf(c);
      clearFilter(c.dataset.name, c.dataset.value);
      submitFilters();
      renderChips();
      var next = $("chips").children[Math.min(index, $("chips").children.length - 1)];
      (next || form().querySelector("summary")).focus();
      return;
    }
    var fam = t.closest(".pick-family, .legend-item, #rate-chart path[data-family]");
    if (fam) { toggleFilter("family", fam.dataset.family); return; }
    var sig = t.closest(".pick-signal");
    if (sig) { toggleFilter("signal", sig.dataset.signal); return; }
    var toggle = t.closest(".group-toggle");
    if (toggle) { toggleGroup(toggle); return; }
    // A click on a row's text opens its detail too, as its link does (not on the
    // payload's summary or text, nor while a selection is being made); keyboards and
    // screen readers have the link.
    var row = t.closest("#event-table tr.event");
    if (row && e.button === 0 && !t.closest("a, button, summary, pre, input, label") &&
        !String(window.getSelection() || "")) {
      var link = row.querySelector("a.open");
      if (link) { openDetail(link.getAttribute("href"), link, true); return; }
    }
    // A picker's menu closes when the click is elsewhere.
    document.querySelectorAll("details.pick[open]").forEach(function (d) {
      if (!d.contains(t)) d.open = false;
    });
  });

  document.addEventListener("keydown", function (e) {
    if (e.key !== "Escape") return;
    var menu = document.querySelector("details.pick[open]");
    if (menu) { menu.open = false; menu.querySelector("summary").focus(); return; }
    var typing = e.target.matches && e.target.matches("input, select, textarea");
    if (detailOpen() && !typing) { e.preventDefault(); closeDetail(true); }
  });

  window.addEventListener("popstate", followAddress);

  // For tests/test_filters.py, which runs the server's cases through this rule.
  window.signalsDashboard = { matches: matches, searchText: searchText, parseKey: parseKey };

  // The top bar's height, for what sits below it (dashboard.css: --nav-h): it wraps as
  // the screen narrows, and the detail over the table must not cover it.
  document.addEventListener("DOMContentLoaded", function () {
    var nav = document.querySelector(".topnav");
    if (!nav || !window.ResizeObserver) return;
    new ResizeObserver(function () {
      document.documentElement.style.setProperty("--nav-h", nav.offsetHeight + "px");
    }).observe(nav);
  });

  // An app's own family (blog, catalog, ...) takes one of the stylesheet's other colours,
  // by its name, so that two apps side by side are told apart (they all had --other): a
  // rule added through the CSSOM, for the rows, counters, chart and panels alike. Django's
  // five have their own (dashboard.css).
  var OTHER_COLOURS = ["--other", "--other-2", "--other-3"];  // (more: too near Django's)
  var coloured = new Set(["model", "request", "database", "settings", "auth"]);
  function colour(family) {
    if (!family || coloured.has(family)) return;
    coloured.add(family);
    var sheet = Array.from(document.styleSheets).find(function (s) {
      return (s.href || "").indexOf("dashboard.css") >= 0;
    });
    if (!sheet) return;
    var h = 0;
    for (var i = 0; i < family.length; i++) h = (h * 31 + family.charCodeAt(i)) >>> 0;
    var rule = ".fam-" + CSS.escape(family) + " { --fam: var(" + OTHER_COLOURS[h % OTHER_COLOURS.length] + "); }";
    try { sheet.insertRule(rule, sheet.cssRules.length); } catch (e) { /* left --other */ }
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-family]").forEach(function (el) { colour(el.dataset.family); });
    historyId = parseInt(history().dataset.lastId, 10) || 0;
    Array.from(history().rows).forEach(function (r) { note(r.dataset.key); r.__n = --minN; });
    learnTbody(history());
    learn(Array.from(history().rows));
    Array.from($("senders").options).forEach(function (o) { senders.add(o.value); });
    addCounts(JSON.parse(dash().dataset.counts || "{}"));
    plumbing = parseInt(dash().dataset.plumbing, 10) || 0;
    showPlumbing();
    chart.init(dash());
    grouped = (form().querySelector('input[name="view"]:checked') || {}).value === "requests";
    if (grouped) regroup();
    else sortByTime();
    // The view is not a filter: switching it re-lays the rows, nothing is fetched.
    form().querySelector(".view-mode").addEventListener("change", function (e) {
      e.stopPropagation();
      grouped = e.target.value === "requests";
      regroup();
      pushUrl(location.pathname);
    });
    if (window.matchMedia("(max-width: 1000px)").matches) {
      document.querySelector(".signal-list").open = false;
    }
    $("newer").addEventListener("click", function () {
      window.scrollTo(0, 0);
      scrolled();  // now, not at the scroll event a frame later
    });
    $("pause").addEventListener("click", function () {
      paused = !paused;
      this.setAttribute("aria-pressed", String(paused));
      this.textContent = paused ? "Resume" : "Pause";
      if (!paused) release();
      refresh();
    });
    $("clear-rows").addEventListener("click", function () {
      allRows().forEach(function (r) { r.remove(); });
      table().querySelectorAll("tbody.group, tbody.loose").forEach(function (t) { t.remove(); });
      groups = new Map();
      heldRows = [];
      heldCount = 0;
      extraRows = 0;
      refresh();
    });
    $("load-older").addEventListener("click", loadOlder);
    $("empty-clear").addEventListener("click", clearAll);
    renderChips();
    refresh();
    if (detailOpen()) {  // opened by its address: the panel came with the page
      document.body.classList.add("detail-open");
      opener = null;
      markSelected();
      var selected = table().querySelector("tr.event.selected");
      if (selected) selected.scrollIntoView({ block: "center" });
    }
  });
})();
