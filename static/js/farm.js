/* printfarm: live-update glue for the dashboard, wall and printer pages.
 *
 * - shows the websocket state ("live" / "reconnecting…") in #live-status;
 * - while the socket is not open, refreshes #printer-grid over HTTP every 5 s
 *   (the grid listens for the "printfarm:poll" event); resyncs once when it reopens;
 * - "farm-push" htmx extension: drops pushed fragments whose target is not on this page
 *   (filtered grid, detail page) instead of letting htmx log oob errors;
 * - keeps the "for 3 min" ages current between pushes;
 * - refreshes the cards when the poller-health banner says which printers are stale changed;
 * - on a narrowed, sorted or grouped grid, re-reads it when a pushed card changes what it
 *   shows or its order (the cards' data-* keys, printers/finding.py);
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

  // The search form sends every field; the URL it pushes keeps only the choices made, as the
  // server's own links do (DashboardFilters.href): no "q=&sort=name&group=".
  var FIND_DEFAULTS = { q: "", sort: "name", group: "", density: "comfortable", view: "cards" };
  document.addEventListener("htmx:configRequest", function (evt) {
    var elt = evt.detail.elt;
    if (!elt || !elt.closest || !elt.closest(".find-bar") || evt.detail.verb !== "get") return;
    Object.keys(FIND_DEFAULTS).forEach(function (name) {
      var value = evt.detail.parameters[name];
      if (value !== undefined && String(value).trim() === FIND_DEFAULTS[name]) delete evt.detail.parameters[name];
    });
  });

  // The search box survives grid swaps (hx-preserve), so its value attribute is the first
  // page's: write what it holds now before htmx snapshots the page for the back button.
  document.addEventListener("htmx:beforeHistorySave", function () {
    var box = document.getElementById("farm-search");
    if (box) box.setAttribute("value", box.value);
  });

  // Grouped by tag, a printer with two tags has a card in each group, both with its id: a
  // command's answer replaces the copy whose button was pressed, not the first one.
  document.addEventListener("htmx:beforeSwap", function (evt) {
    var target = evt.detail.target;
    var elt = evt.detail.requestConfig && evt.detail.requestConfig.elt;
    var own = elt && elt.closest ? elt.closest("article.card") : null;
    if (target && own && own !== target && own.id && own.id === target.id) evt.detail.target = own;
  });

  document.addEventListener("htmx:beforeSwap", function (evt) {
    var xhr = evt.detail.xhr;
    var login = document.body.dataset.loginUrl;
    if (xhr && login && xhr.responseURL && new URL(xhr.responseURL).pathname === login) {
      evt.detail.shouldSwap = false;
      window.location.href = xhr.responseURL;
    }
  });

  // -- what a pushed card changes on a narrowed, sorted or grouped grid --------------------
  // The grid says what it shows (data-filter-state / -tag, data-q, data-sort, data-group) and
  // each card carries its keys (data-find, data-sort, data-tags, data-location on its
  // span.card-keys, computed by printers/finding.py). A pushed card is swapped in place; when
  // it no longer belongs where it stands, or a card not on the page now belongs on it, the
  // grid is re-read (once per burst) instead of being reordered here: the server stays the
  // one place the rules live.
  var SORT_INDEX = { state: 0, end: 1, attention: 2 };

  // A card's keys sit on its first child, span.card-keys (the printer-card partial).
  function keys(card, name) {
    var el = card.querySelector(".card-keys");
    return (el && el.getAttribute(name)) || "";
  }

  function matches(grid, card) {
    var state = grid.getAttribute("data-filter-state");
    if (state && !card.classList.contains("st-" + state)) return false;
    var tag = grid.getAttribute("data-filter-tag");
    if (tag && tagsOf(card).indexOf(tag) < 0) return false;
    var query = grid.getAttribute("data-q"); // lower-cased, spaces collapsed (DashboardFilters)
    return !query || keys(card, "data-find").indexOf(query) >= 0;
  }

  function tagsOf(card) {
    var tags = keys(card, "data-tags");
    return tags ? tags.split(",") : [];
  }

  function inPlace(grid, card, container) {
    if (!matches(grid, card)) return false;
    var group = grid.getAttribute("data-group");
    var key = container.getAttribute("data-group-key");
    if (group && key !== null) {
      if (group === "tag" && (key ? tagsOf(card).indexOf(key) < 0 : tagsOf(card).length > 0)) return false;
      if (group === "location" && keys(card, "data-location") !== key) return false;
    }
    return true;
  }

  function sortKey(grid, card) {
    var index = SORT_INDEX[grid.getAttribute("data-sort")];
    if (index === undefined) return null;
    return Number(keys(card, "data-sort").split(" ")[index]);
  }

  // After the swap: does every card still belong in its section, in order?
  function gridIsTrue() {
    var grid = document.getElementById("printer-grid");
    if (!grid) return true;
    var containers = grid.querySelectorAll(".cards");
    for (var c = 0; c < containers.length; c++) {
      var previous = -Infinity;
      var cards = containers[c].querySelectorAll(":scope > article.card");
      for (var i = 0; i < cards.length; i++) {
        if (!inPlace(grid, cards[i], containers[c])) return false;
        var key = sortKey(grid, cards[i]);
        if (key !== null) {
          if (key < previous) return false;
          previous = key;
        }
      }
    }
    return true;
  }

  function reloadGridSoon() {
    if (gridReload) return;
    gridReload = setTimeout(function () {
      gridReload = null;
      pollGrid();
    }, 300);
  }

  function defineExtension() {
    htmx.defineExtension("farm-push", {
      transformResponse: function (text, xhr) {
        if (xhr) return text; // an ordinary htmx response: leave it alone
        var tpl = document.createElement("template");
        tpl.innerHTML = text;
        var grid = document.getElementById("printer-grid");
        var reload = false;
        var cards = 0;
        Array.prototype.slice.call(tpl.content.children).forEach(function (el) {
          var isCard = el.tagName === "ARTICLE" && el.id.indexOf("printer-card-") === 0;
          if (isCard) cards++;
          if (el.id && !document.getElementById(el.id)) {
            // A printer not on this page: on a grid of every printer it was just added; on a
            // narrowed one it may have come to match (entered the state, its file found).
            if (isCard && grid && (grid.hasAttribute("data-every-printer") || matches(grid, el))) reload = true;
            el.remove();
          }
        });
        var plain =
          !grid ||
          (grid.hasAttribute("data-every-printer") &&
            grid.getAttribute("data-sort") === "name" &&
            !grid.getAttribute("data-group"));
        if (reload) {
          reloadGridSoon();
        } else if (cards && !plain) {
          setTimeout(function () {
            if (!gridIsTrue()) reloadGridSoon();
          }, 50); // once htmx has swapped the cards in
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
