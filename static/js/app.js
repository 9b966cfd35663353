// Small behaviours htmx does not cover. No build step: plain ES2017.

// Live over the WebSocket, else polling every 5 s (a proxy that blocks the
// socket, a web process or Redis restarting), for each element that has its
// own socket (ws-connect) and a way to fetch again what it shows: the history
// table and the log viewer register below. The element's data-live says which
// is in use ("ws", "poll", "" while connecting); its [data-live-state] tells
// the reader. The only name this file puts on window.
var liveOrPoll = (function () {
  "use strict";
  var POLL_MS = 5000;
  var OFFLINE = "offline: refreshing every 5 s";
  var kinds = [];

  function kindOf(el) {
    return kinds.find(function (kind) { return el && el.matches && el.matches(kind.selector); });
  }
  function setLive(el, mode, text) {
    el.dataset.live = mode;
    var label = el.querySelector("[data-live-state]");
    if (label) label.textContent = text;
  }
  // From when the element is on the page: its socket has POLL_MS to open, then
  // every POLL_MS without it, fetch again.
  function start(el, kind) {
    if (el.liveTimer) return;
    setLive(el, "", "connecting…");
    el.liveTimer = setInterval(function () {
      if (!document.body.contains(el)) { clearInterval(el.liveTimer); return; }
      if (el.dataset.live === "ws") return;
      if (el.dataset.live !== "poll") setLive(el, "poll", OFFLINE);
      kind.refresh(el);
    }, POLL_MS);
  }
  htmx.onLoad(function (root) {
    kinds.forEach(function (kind) {
      if (root.matches && root.matches(kind.selector)) start(root, kind);
      if (root.querySelectorAll) root.querySelectorAll(kind.selector).forEach(function (el) { start(el, kind); });
    });
  });

  document.addEventListener("htmx:wsOpen", function (e) {
    var el = e.target;
    var kind = kindOf(el);
    if (!kind) return;
    setLive(el, "ws", "live");
    // Back after a drop (a web process or Redis restarted): events sent
    // meanwhile are lost, so catch up once.
    if (el.liveDropped || kind.refreshOnFirstOpen) {
      el.liveDropped = false;
      kind.refresh(el);
    }
  });
  ["htmx:wsClose", "htmx:wsError"].forEach(function (name) {
    document.addEventListener(name, function (e) {
      if (!kindOf(e.target)) return;
      e.target.liveDropped = true;
      setLive(e.target, "poll", OFFLINE);
    });
  });
  // Every socket of the page: 4503 is the server saying "I lost my channel
  // layer (Redis), come back in a moment". htmx reconnects by itself only after
  // 1006/1011/1012/1013, and daphne cannot send those; spread the returns out.
  document.addEventListener("htmx:wsClose", function (e) {
    var detail = e.detail || {};
    if (!detail.event || detail.event.code !== 4503 || !detail.socketWrapper) return;
    setTimeout(function () {
      if (document.body.contains(e.target)) detail.socketWrapper.reconnect();
    }, 500 + Math.random() * 2000);
  });

  // selector: the elements; options.refresh(el): fetch again what el shows;
  // options.refreshOnFirstOpen: also when the socket opens the first time
  // (else only when it comes back after a drop, and when polling).
  return function (selector, options) {
    kinds.push({ selector: selector, refresh: options.refresh, refreshOnFirstOpen: !!options.refreshOnFirstOpen });
  };
})();

(function () {
  "use strict";

  // Live state is versioned. Several processes push about one task (the web
  // process that queued it, the worker that runs it) and nothing orders their
  // messages; each fragment with an id and a data-version (a row, a status
  // badge, a row's removal) carries its task's version. The page keeps, per
  // id, the newest version it has seen (even of an element it removed since)
  // and drops an older fragment, however it comes: a push, the polling
  // fallback, "Load more", the answer to an action.
  var newest = {};
  function versionOf(el) {
    var v = el && el.getAttribute && el.getAttribute("data-version");
    return v ? parseInt(v, 10) : null;
  }
  // False for a fragment older than what the page has seen of its id; else
  // remembers its version.
  function isCurrent(el) {
    var v = versionOf(el);
    if (v === null || !el.id) return true;
    var shown = versionOf(document.getElementById(el.id)) || 0;
    if (v < Math.max(newest[el.id] || 0, shown)) return false;
    newest[el.id] = v;
    return true;
  }
  // Pushed fragments (out-of-band swaps): the element itself, or for a
  // "delete" the element naming what to remove.
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var fragment = event.detail.fragment;
    var incoming = fragment && fragment.nodeType === 11 ? fragment.firstElementChild : fragment;
    if (!isCurrent(incoming)) event.detail.shouldSwap = false;
  });
  // Answers to requests (polling, "Load more", an action's row): an element
  // older than the page's copy is replaced by that copy, or left out.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var html = event.detail.serverResponse;
    if (typeof html !== "string" || html.indexOf("data-version") < 0) return;
    var holder = document.createElement("template");
    holder.innerHTML = html;
    var changed = false;
    holder.content.querySelectorAll("[id][data-version]").forEach(function (el) {
      if (!holder.content.contains(el) || isCurrent(el)) return;
      var shown = document.getElementById(el.id);
      if (shown) el.replaceWith(shown.cloneNode(true));
      else el.remove();
      changed = true;
    });
    if (changed) event.detail.serverResponse = holder.innerHTML;
  });

  // A live row for a task the table does not show yet (new task, or one that
  // entered the status filter): insert it in id order instead of dropping it.
  document.addEventListener("htmx:oobErrorNoTarget", function (event) {
    var row = event.detail.content;
    var rows = document.getElementById("task-rows");
    // isCurrent first: a removal of a row the page does not show is remembered too.
    if (!row || !isCurrent(row) || !rows || !row.dataset.taskId || row.tagName !== "TR") return;
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

  // A pushed row for a task the table does not show yet: make room for it
  // before htmx swaps it in (else htmx reports htmx:oobErrorNoTarget in the
  // console). A hidden placeholder takes the row's place, in id order; one
  // marked "drop" (a removal, or a row older than what the page shows) is
  // never swapped. What is left of them goes after the message.
  document.addEventListener("htmx:wsBeforeMessage", function (event) {
    var message = event.detail.message;
    if (typeof message !== "string" || message.indexOf("hx-swap-oob") < 0) return;
    var holder = document.createElement("template");
    holder.innerHTML = message;
    var top = holder.content.children;
    if (top.length !== 1 || top[0].tagName !== "TR" || !top[0].id) return;
    var row = top[0];
    if (document.getElementById(row.id)) return;
    var rows = document.getElementById("task-rows");
    var placeholder = document.createElement("tr");
    placeholder.id = row.id;
    placeholder.hidden = true;
    placeholder.dataset.placeholder = "drop";
    if (!rows) { document.body.appendChild(placeholder); return; }
    var before = null;
    var loadMore = document.getElementById("load-more");
    var id = parseInt(row.dataset.taskId, 10);
    if (row.getAttribute("hx-swap-oob") !== "delete" && id) {
      rows.querySelectorAll("tr.task-row").forEach(function (other) {
        if (!before && parseInt(other.dataset.taskId, 10) < id) before = other;
      });
      // Older than what the page shows: "Load more" will bring it.
      if (before || !loadMore) placeholder.dataset.placeholder = "";
    }
    rows.insertBefore(placeholder, placeholder.dataset.placeholder ? null : before || loadMore || null);
  });
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var target = event.detail.target;
    if (target && target.dataset && target.dataset.placeholder === "drop") event.detail.shouldSwap = false;
    else if (target && target.dataset && target.dataset.placeholder === "" && event.detail.shouldSwap) {
      var empty = document.querySelector("#task-rows tr.empty");
      if (empty) empty.remove();
    }
  });
  document.addEventListener("htmx:wsAfterMessage", function () {
    document.querySelectorAll("[data-placeholder]").forEach(function (el) { el.remove(); });
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

  // The table's rows fetched again, as many as it shows (after a drop, and
  // the polling fallback).
  function refreshRows(table) {
    var shown = table.querySelectorAll("#task-rows tr.task-row").length;
    var url = new URL(table.dataset.pollUrl, window.location.href);
    url.searchParams.set("limit", String(Math.max(shown, 1)));
    htmx.ajax("GET", url.toString(), { target: "#task-rows", swap: "innerHTML" });
  }
  liveOrPoll("#task-table", { refresh: refreshRows });
})();

// Modals (the input prompt, the task log): htmx swaps a <dialog> into
// #modal-root; open it as a real modal (focus trap, Esc), and give focus back
// when it closes.
(function () {
  "use strict";
  var opener = null;
  var openerUrl = null;
  var openerRow = null;
  function returnFocus() {
    // A live update may have replaced the row that held the opener: use its twin,
    // else the first link of its row (a "Provide input" gone once answered).
    var target = opener && document.contains(opener) ? opener
      : openerUrl && document.querySelector("[hx-target='#modal-root'][hx-get='" + openerUrl + "']");
    var row = openerRow && document.getElementById(openerRow);
    if (!target && row) target = row.querySelector("td.actions a") || row.querySelector("a");
    if (target) target.focus();
    else if (document.getElementById("main")) document.getElementById("main").focus();
  }
  document.addEventListener("click", function (event) {
    var trigger = event.target.closest("[hx-target='#modal-root']");
    if (trigger) {
      opener = trigger;
      openerUrl = trigger.getAttribute("hx-get");
      var row = trigger.closest("tr[id]");
      openerRow = row ? row.id : null;
    }
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
      // Through htmx, so what the dialog opened (a log's WebSocket) is closed too.
      if (htmx.swap) htmx.swap(dialog, "", { swapStyle: "delete" });
      else dialog.remove();
      returnFocus();
    });
    dialog.addEventListener("click", function (e) { if (e.target === dialog) dialog.close(); });
    dialog.showModal();
    // The first field of a prompt, not its ✕.
    var first = dialog.querySelector("[autofocus]") ||
      dialog.querySelector("form input:not([type=hidden]), form textarea, form select") ||
      dialog.querySelector("input:not([type=hidden]), textarea, button");
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

// The task log viewer (modal, task page, /tasks/{id}/logs): local times, the
// newest entry in view, a "new entries" button when the reader has scrolled
// up, earlier pages without losing one's place, a catch-up when the socket
// opens (liveOrPoll: and every 5 s without it), and copy.
(function () {
  "use strict";
  var NEAR_BOTTOM_PX = 40;

  function pad(n, width) { return String(n).padStart(width || 2, "0"); }
  function localTime(el) {
    var iso = el.getAttribute("datetime");
    var when = new Date(iso.replace(/(\.\d{3})\d+/, "$1")); // Safari reads milliseconds at most
    if (isNaN(when.getTime())) return;
    el.title = iso;
    el.textContent = when.getFullYear() + "-" + pad(when.getMonth() + 1) + "-" + pad(when.getDate()) +
      " " + pad(when.getHours()) + ":" + pad(when.getMinutes()) + ":" + pad(when.getSeconds()) +
      "." + pad(when.getMilliseconds(), 3);
  }
  function entryId(el) { return parseInt(el.dataset.id, 10) || 0; }
  function lastId(list) {
    var entries = list.querySelectorAll("li.log-entry");
    return entries.length ? entryId(entries[entries.length - 1]) : 0;
  }
  function say(viewer, text) {
    var status = viewer.querySelector("[data-log-status]");
    if (status) status.textContent = text;
  }

  function init(viewer) {
    if (viewer.logState) return;
    var scroller = viewer.querySelector(".log-scroll");
    var list = viewer.querySelector("ol.log");
    var jump = viewer.querySelector("[data-log-jump]");
    var state = viewer.logState = { atBottom: true, maxId: lastId(list), keep: null };
    viewer.querySelectorAll("time[data-local]").forEach(localTime);
    viewer.querySelectorAll("[data-log-copy]").forEach(function (b) { b.hidden = false; });

    state.toBottom = function () {
      scroller.scrollTop = scroller.scrollHeight;
      state.atBottom = true;
      jump.hidden = true;
    };
    // After the dialog around it has opened and laid out.
    requestAnimationFrame(state.toBottom);
    scroller.addEventListener("scroll", function () {
      state.atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < NEAR_BOTTOM_PX;
      if (state.atBottom) jump.hidden = true;
    });
    jump.addEventListener("click", function () { state.toBottom(); scroller.focus(); });

    // Every way entries arrive (socket, catch-up, polling, "load earlier")
    // ends here: drop repeats, keep id order, then follow or signal.
    new MutationObserver(function (records) {
      var fresh = 0;
      records.forEach(function (record) {
        record.addedNodes.forEach(function (node) {
          if (node.nodeType !== 1 || !node.classList.contains("log-entry") || !node.parentNode) return;
          if (list.querySelectorAll("[id='" + node.id + "']").length > 1) { node.remove(); return; }
          node.querySelectorAll("time[data-local]").forEach(localTime);
          var id = entryId(node);
          if (id > state.maxId) { state.maxId = id; fresh++; return; }
          var prev = node.previousElementSibling;
          if (prev && prev.classList.contains("log-entry") && entryId(prev) > id) {
            while (prev && prev.classList.contains("log-entry") && entryId(prev) > id) prev = prev.previousElementSibling;
            list.insertBefore(node, prev ? prev.nextSibling : list.firstChild);
          }
        });
      });
      if (state.keep !== null) {
        // Earlier entries went in above: stay on the entry the reader was reading.
        scroller.scrollTop = scroller.scrollHeight - state.keep;
        state.keep = null;
        if (!viewer.contains(document.activeElement)) {
          (list.querySelector(".log-earlier a") || scroller).focus({ preventScroll: true });
        }
      }
      if (!fresh) return;
      var empty = list.querySelector(".log-empty");
      if (empty) empty.remove();
      if (state.atBottom) {
        state.toBottom();
      } else {
        jump.hidden = false;
        say(viewer, fresh + " new log " + (fresh === 1 ? "entry" : "entries") + " below.");
      }
    }).observe(list, { childList: true });
  }

  htmx.onLoad(function (root) {
    if (root.matches && root.matches(".log-viewer")) init(root);
    if (root.querySelectorAll) root.querySelectorAll(".log-viewer").forEach(init);
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (!target.classList || !target.classList.contains("log-earlier")) return;
    var viewer = target.closest(".log-viewer");
    var scroller = viewer && viewer.querySelector(".log-scroll");
    if (scroller && viewer.logState) viewer.logState.keep = scroller.scrollHeight - scroller.scrollTop;
  });

  // What was written between the page and the socket (or while it was down).
  function catchUp(viewer) {
    var state = viewer.logState;
    var list = viewer.querySelector("ol.log");
    if (!state || !list || state.busy || !viewer.dataset.followUrl) return;
    state.busy = true;
    var url = new URL(viewer.dataset.followUrl, window.location.href);
    url.searchParams.set("after", String(Math.max(state.maxId, lastId(list))));
    url.searchParams.set("limit", "1000");
    // Only entries: a login page (expired session) must not land in the list.
    htmx.ajax("GET", url.toString(), { target: list, swap: "beforeend", select: "li.log-entry" })
      .finally(function () { state.busy = false; });
  }
  liveOrPoll(".log-viewer[data-follow-url]", { refresh: catchUp, refreshOnFirstOpen: true });

  // Copy the whole (filtered) log, not only the entries loaded so far.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-log-copy]");
    if (!button) return;
    var viewer = button.closest(".log-viewer");
    var text = fetch(button.dataset.logCopy, { credentials: "same-origin" }).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.text();
    });
    var copied;
    if (navigator.clipboard && window.ClipboardItem && navigator.clipboard.write) {
      // A promised blob keeps the click's permission while the text downloads.
      copied = navigator.clipboard.write([new ClipboardItem({
        "text/plain": text.then(function (t) { return new Blob([t], { type: "text/plain" }); })
      })]);
    } else if (navigator.clipboard && navigator.clipboard.writeText) {
      copied = text.then(function (t) { return navigator.clipboard.writeText(t); });
    } else {
      // No Clipboard API (plain http): copy the entries shown, synchronously.
      var area = document.createElement("textarea");
      area.value = viewer.querySelector("ol.log").innerText;
      viewer.appendChild(area);
      area.select();
      var ok = document.execCommand("copy");
      area.remove();
      button.focus();
      copied = ok ? Promise.resolve("shown") : Promise.reject(new Error("copy refused"));
    }
    copied.then(function (what) {
      say(viewer, what === "shown" ? "Copied the entries shown; Download has the whole log." : "Log copied.");
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = "Copy"; }, 2000);
    }, function () {
      say(viewer, "Could not copy here: use Download.");
    });
  });
})();

// Signs of progress, questions and focus: busy buttons, the page's own confirm
// dialog, where focus goes after a swap, toasts that keep clear of a row's
// buttons, "Select all shown".
(function () {
  "use strict";

  // A [data-busy="Testing…"] button says so, disabled, while its request runs.
  var pressed = null;
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button[data-busy]");
    if (button) pressed = button;
  }, true);
  function busyButton(elt) {
    if (!elt) return null;
    if (elt.matches && elt.matches("button[data-busy]")) return elt;
    if (pressed && elt.contains && elt.contains(pressed)) return pressed;
    var only = elt.querySelectorAll ? elt.querySelectorAll("button[data-busy]") : [];
    return only.length === 1 && elt.tagName === "FORM" ? only[0] : null;
  }
  document.addEventListener("htmx:beforeRequest", function (event) {
    var button = busyButton(event.detail.elt);
    pressed = null;
    if (!button || button.getAttribute("aria-busy") === "true") return;
    button.dataset.idleLabel = button.textContent;
    button.textContent = button.dataset.busy;
    button.setAttribute("aria-busy", "true");
    button.disabled = true;
    event.detail.elt.busyButton = button;
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var button = event.detail.elt && event.detail.elt.busyButton;
    if (!button) return;
    event.detail.elt.busyButton = null;
    button.textContent = button.dataset.idleLabel;
    button.removeAttribute("aria-busy");
    button.disabled = false;
  });

  // The page's own confirm dialog instead of the browser's: hx-confirm on htmx
  // requests, data-confirm on plain forms. data-confirm-yes / -no name the buttons.
  function ask(question, from) {
    return new Promise(function (resolve) {
      var opener = document.activeElement;
      var dialog = document.createElement("dialog");
      dialog.className = "modal confirm";
      dialog.setAttribute("aria-labelledby", "confirm-question");
      var text = document.createElement("p");
      text.id = "confirm-question";
      text.textContent = question;
      var actions = document.createElement("div");
      actions.className = "actions";
      var no = document.createElement("button");
      no.type = "button";
      no.textContent = (from && from.dataset.confirmNo) || "Keep it";
      var yes = document.createElement("button");
      yes.type = "button";
      yes.className = "primary danger-primary";
      yes.textContent = (from && from.dataset.confirmYes) || "Yes";
      actions.append(no, yes);
      dialog.append(text, actions);
      var answer = false;
      yes.addEventListener("click", function () { answer = true; dialog.close(); });
      no.addEventListener("click", function () { dialog.close(); });
      dialog.addEventListener("close", function () {
        dialog.remove();
        if (!answer && opener && document.contains(opener)) opener.focus();
        resolve(answer);
      });
      document.body.appendChild(dialog);
      dialog.showModal();
      no.focus();
    });
  }
  document.addEventListener("htmx:confirm", function (event) {
    if (!event.detail.question) return;
    event.preventDefault();
    var from = event.detail.elt.closest("[hx-confirm]") || event.detail.elt;
    ask(event.detail.question, from).then(function (yes) {
      if (yes) event.detail.issueRequest(true);
    });
  });
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches("form[data-confirm]") || form.dataset.confirmed) return;
    event.preventDefault();
    ask(form.dataset.confirm, form).then(function (yes) {
      if (!yes) return;
      form.dataset.confirmed = "1";
      form.submit();
    });
  });

  // After a swap, focus goes where the new content says (data-focus): the
  // "started" message, the form's error, the field asked again.
  // Once htmx has processed the new content (a form answered before that
  // would be sent without htmx).
  htmx.onLoad(function (root) {
    if (!root.querySelectorAll) return;
    var marked = Array.prototype.slice.call(root.querySelectorAll("[data-focus]"));
    if (root.matches && root.matches("[data-focus]")) marked.unshift(root);
    if (!marked.length) return;
    marked.forEach(function (el) { el.removeAttribute("data-focus"); });
    marked[0].focus();
  });

  // "Select all shown" and the count of ticked dashboards.
  function countPicked(scope) {
    document.querySelectorAll("[data-picked-count]").forEach(function (label) {
      var picker = document.querySelector(label.dataset.pickedCount);
      if (!picker || (scope && !picker.contains(scope) && scope !== picker)) return;
      var n = picker.querySelectorAll("input[type=checkbox]:checked").length;
      label.textContent = n ? n + " ticked" : "";
    });
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-select-all]");
    if (!button) return;
    var picker = document.querySelector(button.dataset.selectAll);
    if (!picker) return;
    picker.querySelectorAll("input[type=checkbox]").forEach(function (box) { box.checked = true; });
    countPicked(picker);
    picker.dispatchEvent(new Event("change", { bubbles: true }));
  });
  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches("input[type=checkbox]")) countPicked(event.target);
  });
  document.addEventListener("htmx:afterSettle", function () { countPicked(null); });

  // A live row replacing the one that holds the focus: the focus goes to the
  // same link or button of the new row (not to <body>).
  var focusKey = null;
  function keyOf(el) {
    return [el.tagName, el.getAttribute("hx-get") || el.getAttribute("href") || "", el.textContent.trim()].join("|");
  }
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var target = event.detail.target;
    var active = document.activeElement;
    focusKey = target && target.id && active && active !== document.body && target.contains(active)
      ? { id: target.id, key: keyOf(active) } : null;
  });
  document.addEventListener("htmx:oobAfterSwap", function () {
    if (!focusKey) return;
    var wanted = focusKey;
    focusKey = null;
    var fresh = document.getElementById(wanted.id);
    if (!fresh || fresh.contains(document.activeElement)) return;
    var same = Array.prototype.find.call(fresh.querySelectorAll("a, button, input, select, textarea"),
      function (el) { return keyOf(el) === wanted.key; });
    (same || fresh.querySelector("td.actions a") || fresh.querySelector("a") || fresh).focus({ preventScroll: true });
  });

  // The picker is listed again as the search changes: a box ticked (or unticked)
  // while that answer was on its way keeps the state the person gave it.
  var pickerState = null;
  document.addEventListener("htmx:beforeSwap", function (event) {
    pickerState = null;
    // Another source lists other dashboards: nothing to keep.
    if (event.detail.target.id !== "dashboard-picker" || (event.detail.requestConfig && event.detail.requestConfig.elt && event.detail.requestConfig.elt.id === "id_source")) return;
    var picker = event.detail.target;
    pickerState = [];
    picker.querySelectorAll("input[name=dashboards]").forEach(function (box) {
      var label = box.closest("label");
      var title = picker.querySelector("input[name='title_" + CSS.escape(box.value) + "']");
      pickerState.push({
        value: box.value, checked: box.checked,
        label: label ? label.cloneNode(true) : null, title: title ? title.cloneNode(true) : null
      });
    });
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    var picker = event.detail.target;
    if (picker.id !== "dashboard-picker" || !pickerState) return;
    var state = pickerState;
    pickerState = null;
    var list = picker.querySelector("fieldset");
    state.forEach(function (was) {
      var box = picker.querySelector("input[name=dashboards][value='" + CSS.escape(was.value) + "']");
      if (box) box.checked = was.checked;
      else if (was.checked && was.label && list) {
        list.insertBefore(was.label, list.children[1] || null);
        if (was.title) was.label.after(was.title);
      }
    });
    countPicked(picker);
  });

  // Toasts: bottom-right, unless there they would cover the buttons of a row
  // (the "Provide input" they offer, a Cancel): then top-right.
  function overlaps(a, b) {
    return a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
  }
  function placeToasts() {
    var box = document.getElementById("toasts");
    if (!box || !box.children.length) return;
    var buttons = Array.prototype.filter.call(
      document.querySelectorAll("td.actions a, td.actions button"),
      function (b) { return b.getClientRects().length; }
    ).map(function (b) { return b.getBoundingClientRect(); });
    function covers() {
      var r = box.getBoundingClientRect();
      return buttons.some(function (b) { return overlaps(r, b); });
    }
    box.classList.remove("at-top");
    if (covers()) {
      box.classList.add("at-top");
      if (covers()) box.classList.remove("at-top");
    }
  }
  document.addEventListener("htmx:oobAfterSwap", placeToasts);
  document.addEventListener("htmx:afterSettle", placeToasts);
  window.addEventListener("scroll", placeToasts, { passive: true });
  window.addEventListener("resize", placeToasts);
  // A task's toast goes once its prompt is open.
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target.id !== "modal-root") return;
    var form = event.detail.target.querySelector(".input-form[id^='input-form-']");
    if (!form) return;
    var id = form.id.replace("input-form-", "");
    document.querySelectorAll(".toast[data-task-id='" + id + "']").forEach(function (t) { t.remove(); });
  });

})();
