// Herald's cabinet: live statuses over Server-Sent Events, and the few enhancements htmx
// does not cover. Plain script, no build step; the pages work without it, only less live.
(function () {
  "use strict";
  var source = null;

  function watched() {
    var rows = document.querySelectorAll('[data-message-id][data-final="false"]');
    var ids = [];
    for (var i = 0; i < rows.length; i++) {
      var id = rows[i].getAttribute("data-message-id");
      if (ids.indexOf(id) < 0) ids.push(id);
    }
    return ids;
  }

  function show(update) {
    var selector = '[data-message-id="' + CSS.escape(update.id) + '"]';
    var holders = document.querySelectorAll(selector);
    for (var i = 0; i < holders.length; i++) {
      var holder = holders[i];
      var badge = holder.querySelector("[data-status]");
      var changed = badge && !badge.classList.contains("status-" + update.status);
      if (badge) {
        badge.textContent = update.label;
        badge.className = "status status-" + update.status;
      }
      holder.setAttribute("data-final", update.final ? "true" : "false");
      if (changed) {
        // The message page reloads its timeline on this event (hx-trigger).
        document.body.dispatchEvent(new CustomEvent("status-changed", { detail: update }));
      }
    }
  }

  function stop() {
    if (source) {
      source.close();
      source = null;
    }
  }

  function watch() {
    stop();
    if (!window.EventSource) return;
    var parts = watched().map(function (id) { return "id=" + encodeURIComponent(id); });
    var list = document.querySelector("[data-live-list]");
    if (list) {
      if (list.getAttribute("data-query")) parts.push(list.getAttribute("data-query"));
      parts.push("live=true", "newest=" + encodeURIComponent(list.getAttribute("data-newest")));
    }
    if (!parts.length) return;
    source = new EventSource("/messages/events?" + parts.join("&"));
    source.addEventListener("status", function (event) {
      show(JSON.parse(event.data));
    });
    source.addEventListener("new", function () {
      stop();
      // A newer message matches: the first page again, in place (htmx), then watch anew.
      var query = list ? list.getAttribute("data-query") : "";
      if (window.htmx) {
        window.htmx.ajax("GET", "/messages" + (query ? "?" + query : ""), { target: "#results" });
      }
    });
    source.addEventListener("done", stop);
  }

  document.addEventListener("DOMContentLoaded", watch);
  // New rows after a filter or another page (htmx swapped them in).
  document.addEventListener("htmx:afterSettle", function (event) {
    if (event.target && event.target.id === "results") watch();
  });
  window.addEventListener("pagehide", stop);
})();
