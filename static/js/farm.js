/* printfarm: live-update glue for the dashboard, wall and printer pages.
 *
 * - shows the websocket state ("live" / "reconnecting…") in #live-status;
 * - while the socket is not open, refreshes #printer-grid over HTTP every 5 s
 *   (the grid listens for the "printfarm:poll" event); resyncs once when it reopens;
 * - "farm-push" htmx extension: drops pushed fragments whose target is not on this page
 *   (filtered grid, detail page) instead of letting htmx log oob errors;
 * - keeps the "for 3 min" ages current between pushes;
 * - refreshes the cards when the poller-health banner says which printers are stale changed;
 * - follows a redirect to the login page with a full navigation.
 */
(function () {
  "use strict";

  var POLL_MS = 5000;
  var AGE_MS = 10000;
  var socketOpen = false;
  var everOpened = false;
  var retryTimer = null;
  var gridReload = null;

  function setLive(state, text) {
    var el = document.getElementById("live-status");
    if (el) {
      el.dataset.live = state;
      el.textContent = text;
    }
  }

  function pollGrid() {
    var grid = document.getElementById("printer-grid");
    if (grid && window.htmx) {
      htmx.trigger(grid, "printfarm:poll");
    }
  }

  document.addEventListener("htmx:wsConnecting", function () {
    if (!socketOpen) setLive("connecting", everOpened ? "reconnecting…" : "connecting…");
  });

  document.addEventListener("htmx:wsOpen", function () {
    socketOpen = true;
    setLive("live", "live");
    if (everOpened) pollGrid(); // catch up on what changed while we were away
    everOpened = true;
  });

  document.addEventListener("htmx:wsClose", function (evt) {
    socketOpen = false;
    setLive("down", "reconnecting…");
    // The extension retries abnormal closes (1006, 1011-1013) by itself; a server that is
    // restarting says 1001 "going away", which it doesn't retry. Do it, slowly.
    var code = evt.detail && evt.detail.event ? evt.detail.event.code : 0;
    var wrapper = evt.detail && evt.detail.socketWrapper;
    if (code === 1001 && wrapper && !retryTimer) {
      retryTimer = setTimeout(function () {
        retryTimer = null;
        wrapper.reconnect();
      }, 3000 + Math.random() * 2000);
    }
  });

  setInterval(function () {
    if (!socketOpen && !document.hidden) pollGrid();
  }, POLL_MS);

  // Mirrors printers.formatting.format_duration: "45 s", "12 min", "1 h 02 min", "2 d 03 h".
  function formatAge(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    if (seconds < 60) return seconds + " s";
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min";
    var hours = Math.floor(minutes / 60);
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    if (hours < 24) return hours + " h " + pad(minutes % 60) + " min";
    return Math.floor(hours / 24) + " d " + pad(hours % 24) + " h";
  }

  function refreshAges() {
    var now = Date.now();
    document.querySelectorAll("time[data-age]").forEach(function (el) {
      var at = Date.parse(el.getAttribute("datetime"));
      if (!isNaN(at)) el.textContent = "for " + formatAge((now - at) / 1000);
    });
  }
  setInterval(refreshAges, AGE_MS);

  // The poller-health banner refreshes itself every 10 s. When the set of stale printers
  // changed (a poller stopped or came back), nothing is pushed for the cards themselves:
  // re-read them, the grid as a whole or, on other pages, each card from this page's URL.
  var healthKey = null;
  function refreshCards() {
    if (document.getElementById("printer-grid")) {
      pollGrid();
      return;
    }
    document.querySelectorAll("#farm-live article.card[id^='printer-card-']").forEach(function (card) {
      var sel = "#" + card.id;
      htmx.ajax("GET", window.location.href, { target: sel, select: sel, swap: "outerHTML" });
    });
  }
  function noteHealth(el) {
    if (!el || el.id !== "poller-health") return;
    var key = el.dataset.health;
    if (healthKey !== null && key !== healthKey) refreshCards();
    healthKey = key;
  }
  document.addEventListener("DOMContentLoaded", function () {
    noteHealth(document.getElementById("poller-health"));
  });
  document.addEventListener("htmx:load", function (evt) {
    noteHealth(evt.detail.elt);
  });

  document.addEventListener("htmx:beforeSwap", function (evt) {
    var xhr = evt.detail.xhr;
    var login = document.body.dataset.loginUrl;
    if (xhr && login && xhr.responseURL && new URL(xhr.responseURL).pathname === login) {
      evt.detail.shouldSwap = false;
      window.location.href = xhr.responseURL;
    }
  });

  function defineExtension() {
    htmx.defineExtension("farm-push", {
      transformResponse: function (text, xhr) {
        if (xhr) return text; // an ordinary htmx response: leave it alone
        var tpl = document.createElement("template");
        tpl.innerHTML = text;
        var added = false;
        Array.prototype.slice.call(tpl.content.children).forEach(function (el) {
          if (el.id && !document.getElementById(el.id)) {
            added = added || (el.tagName === "ARTICLE" && el.id.indexOf("printer-card-") === 0);
            el.remove();
          }
        });
        // A printer added since this page loaded: on a grid of every printer, re-read the
        // grid (once per burst) so it appears in its place.
        var grid = document.getElementById("printer-grid");
        if (added && grid && grid.hasAttribute("data-every-printer") && !gridReload) {
          gridReload = setTimeout(function () {
            gridReload = null;
            pollGrid();
          }, 300);
        }
        return tpl.innerHTML;
      },
    });
  }

  if (window.htmx) {
    defineExtension();
  } else {
    document.addEventListener("DOMContentLoaded", defineExtension);
  }
})();
