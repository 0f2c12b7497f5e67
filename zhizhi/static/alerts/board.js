/* The alarm board, live: an EventSource on /alerts/stream/ (channel "alarm"); each event refreshes the
   table body through htmx with the page's own filters, then flashes the rows that changed. Several
   events in a burst cause one refresh. The browser reconnects by itself with Last-Event-ID. */
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
    function refresh() {
      timer = null;
      const url = body.dataset.rowsUrl + window.location.search;
      htmx.ajax("GET", url, { target: "#alarm-rows", swap: "innerHTML" }).then(() => {
        changed.forEach((id) => {
          const row = document.getElementById("alarm-" + id);
          if (row) row.classList.add("flash");
        });
        changed.clear();
        body.dataset.refreshed = String(received);
      });
    }
    const source = new EventSource(board.dataset.stream + "?after=" + encodeURIComponent(board.dataset.after || "0"));
    source.addEventListener("open", () => { if (dot) dot.dataset.state = "open"; });
    source.addEventListener("error", () => { if (dot) dot.dataset.state = "error"; });
    source.addEventListener("alarm", (event) => {
      received += 1;
      try {
        changed.add(JSON.parse(event.data).id);
      } catch (e) { /* a malformed frame still triggers a refresh */ }
      if (!timer) timer = setTimeout(refresh, 300);
    });
    window.addEventListener("beforeunload", () => source.close());
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
