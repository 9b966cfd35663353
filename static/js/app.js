// Small behaviours htmx does not cover. No build step: plain ES2017.
(function () {
  "use strict";

  // A live row for a task the table does not show yet (new task, or one that
  // entered the status filter): insert it in id order instead of dropping it.
  document.addEventListener("htmx:oobErrorNoTarget", function (event) {
    var row = event.detail.content;
    var rows = document.getElementById("task-rows");
    if (!rows || !row || !row.id || row.id.indexOf("task-") !== 0 || row.tagName !== "TR") return;
    var id = parseInt(row.dataset.taskId, 10);
    var before = null;
    rows.querySelectorAll("tr.task-row").forEach(function (other) {
      if (!before && parseInt(other.dataset.taskId, 10) < id) before = other;
    });
    var loadMore = document.getElementById("load-more");
    if (!before && loadMore) return; // older than what the page shows: "Load more" will bring it
    rows.insertBefore(row, before || loadMore || null);
    var empty = rows.querySelector("tr.empty");
    if (empty) empty.remove();
    htmx.process(row);
  });

  // Live state and the polling fallback when the WebSocket is unavailable
  // (a proxy that blocks it): refresh the rows the page shows every 5 s.
  var POLL_MS = 5000;
  function table() { return document.getElementById("task-table"); }
  function setState(text, live) {
    var t = table();
    if (!t) return;
    t.dataset.live = live ? "ws" : "poll";
    var label = t.querySelector("[data-live-state]");
    if (label) label.textContent = text;
  }
  document.addEventListener("htmx:wsOpen", function () { setState("live", true); });
  document.addEventListener("htmx:wsClose", function () { setState("offline: refreshing every 5 s", false); });
  document.addEventListener("htmx:wsError", function () { setState("offline: refreshing every 5 s", false); });

  setInterval(function () {
    var t = table();
    if (!t || t.dataset.live === "ws") return;
    if (t.dataset.live !== "poll" && Date.now() - started < POLL_MS) return;
    var shown = t.querySelectorAll("#task-rows tr.task-row").length;
    var url = new URL(t.dataset.pollUrl, window.location.href);
    url.searchParams.set("limit", String(Math.max(shown, 1)));
    htmx.ajax("GET", url.toString(), { target: "#task-rows", swap: "innerHTML" });
  }, POLL_MS);
  var started = Date.now();
})();
