// The playground's buttons: run an action (one request), then show the events
// of that request, read from the dashboard's history by the request's id.
(function () {
  "use strict";

  function sleep(ms) { return new Promise(function (done) { setTimeout(done, ms); }); }

  function dashboardUrl() { return document.querySelector(".playground").dataset.dashboardUrl; }

  function csrf() { return document.querySelector('meta[name="csrf-token"]').content; }

  function token() {
    var bytes = new Uint8Array(6);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
  }

  // The dashboard's history rows for a query (its partial, as its own page asks for it).
  function rowsFor(query) {
    return fetch(dashboardUrl() + "?" + query, {
      headers: { "HX-Request": "true", "HX-Target": "history" },
      credentials: "same-origin",
    }).then(function (r) {
      if (!r.ok) throw new Error("the dashboard answered " + r.status);
      return r.text();
    }).then(function (html) {
      var t = document.createElement("template");
      t.innerHTML = "<table>" + html + "</table>";
      var rows = Array.from(t.content.querySelectorAll("tr.event"));
      // A row's detail opens on the dashboard in a tab of its own: this page keeps its results.
      rows.forEach(function (r) {
        var link = r.querySelector("a.open");
        if (link) { link.target = "_blank"; link.rel = "noopener"; }
      });
      return rows;
    });
  }

  // The request's events once its request_finished is stored (the last it sends).
  async function eventsOf(requestId) {
    var rows = [];
    for (var i = 0; i < 24; i++) {
      await sleep(i ? 250 : 150);
      rows = await rowsFor("request=" + encodeURIComponent(requestId));
      if (rows.some(function (r) { return r.dataset.signal === "request_finished"; })) break;
    }
    // In the order they were sent. The history numbers a dispatch as it ends, after what
    // its receivers sent (a comment's post_save after the post save it caused): by time.
    return rows.reverse().sort(function (a, b) { return sentAt(a) - sentAt(b); });
  }

  // When a row's signal was sent, in microseconds (its <time datetime>, ISO 8601).
  function sentAt(row) {
    var iso = row.querySelector("time").getAttribute("datetime");
    var micro = /\.\d{3}(\d{3})/.exec(iso);
    return Date.parse(iso) * 1000 + (micro ? Number(micro[1]) : 0);
  }

  // A request that failed answers no id: its got_request_exception names the token.
  async function failedRequest(tok) {
    for (var i = 0; i < 24; i++) {
      await sleep(250);
      var rows = await rowsFor("signal=got_request_exception&q=" + tok);
      if (rows.length) return rows[0].dataset.request;
    }
    return null;
  }

  async function run(card, button) {
    var outcome = card.querySelector(".outcome");
    var result = card.querySelector(".result");
    var tok = token();
    button.disabled = true;
    outcome.textContent = "Running…";
    try {
      var response = await fetch(button.dataset.url, {
        method: "POST",
        headers: { "X-CSRFToken": csrf(), "Content-Type": "application/x-www-form-urlencoded" },
        body: "token=" + tok,
        credentials: "same-origin",
      });
      var requestId = null;
      var said = "";
      if (response.ok) {
        var data = await response.json();
        said = data.done;
        requestId = data.request;
      } else {
        said = "The server answered " + response.status + " " + response.statusText +
          " (on purpose, for this one).";
        requestId = await failedRequest(tok);
      }
      if (!requestId) {
        outcome.textContent = said + " The dashboard did not see this request.";
        return;
      }
      outcome.textContent = said + " Reading its events…";
      var rows = await eventsOf(requestId);
      var body = result.querySelector("tbody");
      body.replaceChildren.apply(body, rows);
      result.hidden = false;
      var names = rows.map(function (r) { return r.dataset.signal; });
      outcome.textContent = said + " " + rows.length + " event" + (rows.length === 1 ? "" : "s") +
        ": " + names.join(", ") + ".";
      card.dataset.request = requestId;
    } catch (err) {
      outcome.textContent = "Could not run it: " + err.message;
    } finally {
      button.disabled = false;
    }
  }

  document.addEventListener("click", function (e) {
    var button = e.target.closest("button.run");
    if (button) run(button.closest(".card"), button);
  });
})();
