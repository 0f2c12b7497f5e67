/* The alarm board, live: an EventSource on /alerts/stream/ (channel "alarm"). Each event names the alarm
   that changed; after a short pause (a burst of events makes one request) the board fetches just those
   rows with the page's own filters and puts each in place: replaced, added on top, or removed when it no
   longer matches. The severity chips follow from the answer's X-Severity-Counts. The browser reconnects
   by itself with Last-Event-ID, so nothing is missed. */
(function () {
  "use strict";
  function start() {
    const board = document.getElementById("alarm-board");
    const body = document.getElementById("alarm-rows");
    const dot = document.getElementById("live-state");
    if (!board || !body || !window.EventSource) return;
    const changed = new Set();
    let timer = null;
    let received = 0;

    function counts(header) {
      if (!header) return;
      const bySeverity = JSON.parse(header);
      document.querySelectorAll("[data-severity-count]").forEach((chip) => {
        const strong = chip.querySelector("strong");
        if (strong) strong.textContent = String(bySeverity[chip.dataset.severityCount] || 0);
      });
    }

    function place(ids, html) {
      const holder = document.createElement("tbody");
      holder.innerHTML = html;
      ids.forEach((id) => {
        const fresh = holder.querySelector("#alarm-" + id);
        const old = document.getElementById("alarm-" + id);
        if (fresh) {
          fresh.classList.add("flash");
          if (old) old.replaceWith(fresh);
          else body.insertBefore(fresh, body.firstChild);
        } else if (old) {
          old.remove();
        }
      });
      const empty = body.querySelector("tr.empty");
      if (empty && body.querySelector("tr.alarm-row")) empty.remove();
      if (window.htmx) htmx.process(body);  // the acknowledge buttons of the new rows
    }

    function refresh() {
      timer = null;
      const ids = Array.from(changed);
      changed.clear();
      const query = new URLSearchParams(window.location.search);
      query.set("ids", ids.join(","));
      fetch(body.dataset.rowsUrl + "?" + query.toString(), { credentials: "same-origin", headers: { "HX-Request": "true" } })
        .then((r) => (r.ok ? r.text().then((html) => ({ html, counts: r.headers.get("X-Severity-Counts") })) : null))
        .then((answer) => {
          if (!answer) return;
          place(ids, answer.html);
          counts(answer.counts);
          body.dataset.refreshed = String(received);
        });
    }

    const source = new EventSource(board.dataset.stream + "?after=" + encodeURIComponent(board.dataset.after || "0"));
    source.addEventListener("open", () => { if (dot) dot.dataset.state = "open"; });
    source.addEventListener("error", () => { if (dot) dot.dataset.state = "error"; });
    source.addEventListener("alarm", (event) => {
      received += 1;
      let id = null;
      try {
        id = JSON.parse(event.data).id;
      } catch (e) {
        return;
      }
      if (id == null) return;
      changed.add(id);
      if (!timer) timer = setTimeout(refresh, 300);
    });
    window.addEventListener("beforeunload", () => source.close());
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
