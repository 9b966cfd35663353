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

  // htmx 2 does not swap 4xx answers by default: a form re-rendered with its
  // errors (400) or a refused request (422) must still show what is wrong.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    if (status === 400 || status === 422) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
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

// Modals (the input prompt): htmx swaps a <dialog> into #modal-root; open it
// as a real modal (focus trap, Esc), and give focus back when it closes.
(function () {
  "use strict";
  var opener = null;
  document.addEventListener("click", function (event) {
    var trigger = event.target.closest("[hx-target='#modal-root']");
    if (trigger) opener = trigger;
    if (event.target.closest("[data-close-modal]")) {
      var dialog = event.target.closest("dialog");
      if (dialog) dialog.close();
    }
    if (event.target.closest("[data-dismiss-toast]")) event.target.closest(".toast").remove();
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target.id !== "modal-root") return;
    var dialog = event.detail.target.querySelector("dialog");
    if (!dialog) return;
    dialog.addEventListener("close", function () {
      dialog.remove();
      if (opener && document.contains(opener)) opener.focus();
    });
    dialog.addEventListener("click", function (e) { if (e.target === dialog) dialog.close(); });
    dialog.showModal();
    var first = dialog.querySelector("input, textarea, button");
    if (first) first.focus();
  });
  // After a successful answer, close the prompt shortly (the row updates live).
  document.body && document.body.addEventListener("task-resumed", function () {
    setTimeout(function () {
      var dialog = document.querySelector("#modal-root dialog");
      if (dialog) dialog.close();
    }, 1500);
  });
})();
