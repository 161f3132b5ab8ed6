/* printfarm: live-update glue for the dashboard, wall and printer pages.
 *
 * - shows the websocket state ("live" / "reconnecting…") in #live-status;
 * - while the socket is not open, refreshes #printer-grid over HTTP every 5 s
 *   (the grid listens for the "printfarm:poll" event); resyncs once when it reopens;
 * - "farm-push" htmx extension: drops pushed fragments whose target is not on this page
 *   (filtered grid, detail page) instead of letting htmx log oob errors;
 * - keeps the "for 3 min" ages current between pushes;
 * - follows a redirect to the login page with a full navigation.
 */
(function () {
  "use strict";

  var POLL_MS = 5000;
  var AGE_MS = 10000;
  var socketOpen = false;
  var everOpened = false;
  var retryTimer = null;

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

  // Mirrors printers.presenters.format_age.
  function formatAge(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    if (seconds < 60) return seconds + " s";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min";
    if (seconds < 86400) return Math.floor(seconds / 3600) + " h";
    return Math.floor(seconds / 86400) + " d";
  }

  function refreshAges() {
    var now = Date.now();
    document.querySelectorAll("time[data-age]").forEach(function (el) {
      var at = Date.parse(el.getAttribute("datetime"));
      if (!isNaN(at)) el.textContent = "for " + formatAge((now - at) / 1000);
    });
  }
  setInterval(refreshAges, AGE_MS);

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
        Array.prototype.slice.call(tpl.content.children).forEach(function (el) {
          if (el.id && !document.getElementById(el.id)) el.remove();
        });
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
