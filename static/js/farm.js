/* printfarm: live-update glue for the dashboard, wall and printer pages.
 *
 * - shows the websocket state ("live" / "reconnecting…") in #live-status;
 * - while the socket is not open, refreshes #printer-grid over HTTP every 5 s
 *   (the grid listens for the "printfarm:poll" event); resyncs once when it reopens;
 * - "farm-push" htmx extension: swaps the pushed cards itself, by id, parsing each frame once
 *   (a wall of 1,000 is sent ~250 cards a second); drops those not on this page;
 * - keeps the "for 3 min" ages current between pushes;
 * - refreshes the cards when the poller-health banner says which printers are stale changed;
 * - on a sorted grid, moves a pushed card to where its keys now put it; on a narrowed or
 *   grouped one, re-reads the grid when a pushed card changes what it shows (the cards'
 *   data-* keys, printers/finding.py);
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
  // each card carries its keys (data-find, data-sort, data-rank, data-tags, data-location on
  // its span.card-keys, computed by printers/finding.py). A pushed card is swapped in place;
  // if its keys now put it elsewhere in the order, it is moved there (keys and ranks are
  // numbers the server computed: the page compares, it does not know the rules); if it no
  // longer belongs on the grid, or a card not on the page now does, the grid is re-read
  // (once per burst).
  var SORT_INDEX = { state: 0, end: 1, attention: 2 };

  // A card's keys sit on its first child, span.card-keys (the printer-card and wall-tile partials).
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

  // [the sort's key, the place in name order]: compared as numbers, first then second.
  function orderOf(grid, card) {
    var index = SORT_INDEX[grid.getAttribute("data-sort")];
    var first = index === undefined ? 0 : Number(keys(card, "data-sort").split(" ")[index]);
    return [first, Number(keys(card, "data-rank"))];
  }

  function before(a, b) {
    return a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]);
  }

  function siblingCard(card, forward) {
    var el = forward ? card.nextElementSibling : card.previousElementSibling;
    while (el && !(el.tagName === "ARTICLE" && el.classList.contains("card"))) {
      el = forward ? el.nextElementSibling : el.previousElementSibling;
    }
    return el;
  }

  // Where the card goes among its container's cards: a binary search on the keys.
  function reposition(grid, card) {
    var own = orderOf(grid, card);
    var prev = siblingCard(card, false);
    var next = siblingCard(card, true);
    if ((!prev || !before(own, orderOf(grid, prev))) && (!next || !before(orderOf(grid, next), own))) return;
    var container = card.parentElement;
    card.remove();
    var cards = container.querySelectorAll(":scope > article.card");
    var lo = 0;
    var hi = cards.length;
    while (lo < hi) {
      var mid = (lo + hi) >> 1;
      if (before(orderOf(grid, cards[mid]), own)) lo = mid + 1;
      else hi = mid;
    }
    if (lo < cards.length) container.insertBefore(card, cards[lo]);
    else container.appendChild(card);
  }

  function reloadGridSoon() {
    if (gridReload) return;
    gridReload = setTimeout(function () {
      gridReload = null;
      pollGrid();
    }, 300);
  }

  // -- swapping pushed cards ----------------------------------------------------------------
  // Events for the other scripts: "printfarm:cardswap" (detail: old, next) just before a card
  // is replaced, "printfarm:pushed" (detail: cards) once a frame's cards are in.
  var HTMX_PARTS = "[hx-get],[hx-post]";

  function copiesOf(grid, id) {
    if (grid && grid.getAttribute("data-group")) {
      // Grouped by tag, a printer with two tags has a card in each group, both with its id.
      return Array.prototype.slice.call(document.querySelectorAll('[id="' + id + '"]'));
    }
    var el = document.getElementById(id);
    return el ? [el] : [];
  }

  function swapIn(old, next) {
    document.dispatchEvent(new CustomEvent("printfarm:cardswap", { detail: { old: old, next: next } }));
    next.removeAttribute("hx-swap-oob");
    old.replaceWith(next);
    if (next.matches(HTMX_PARTS) || next.querySelector(HTMX_PARTS)) htmx.process(next);
  }

  function applyPush(text) {
    var tpl = document.createElement("template");
    tpl.innerHTML = text;
    var grid = document.getElementById("printer-grid");
    var plain =
      !grid ||
      (grid.hasAttribute("data-every-printer") &&
        grid.getAttribute("data-sort") === "name" &&
        !grid.getAttribute("data-group"));
    var reload = false;
    var swapped = [];
    Array.prototype.slice.call(tpl.content.children).forEach(function (el) {
      if (!el.id) return;
      var isCard = el.tagName === "ARTICLE" && el.id.indexOf("printer-card-") === 0;
      var olds = copiesOf(grid, el.id);
      if (!olds.length) {
        // A printer not on this page: on a grid of every printer it was just added; on a
        // narrowed one it may have come to match (entered the state, its file found).
        if (isCard && grid && (grid.hasAttribute("data-every-printer") || matches(grid, el))) reload = true;
        return;
      }
      if (el.getAttribute("hx-swap-oob") === "delete") {
        olds.forEach(function (old) { old.remove(); });
        return;
      }
      olds.forEach(function (old, i) {
        var next = i === olds.length - 1 ? el : el.cloneNode(true);
        swapIn(old, next);
        if (isCard) swapped.push(next);
      });
    });
    if (grid && !plain && !reload) {
      for (var i = 0; i < swapped.length && !reload; i++) {
        var container = swapped[i].parentElement;
        if (!container || !inPlace(grid, swapped[i], container)) reload = true;
        else reposition(grid, swapped[i]);
      }
    }
    if (reload) reloadGridSoon();
    document.dispatchEvent(new CustomEvent("printfarm:pushed", { detail: { cards: swapped } }));
  }

  function defineExtension() {
    htmx.defineExtension("farm-push", {
      transformResponse: function (text, xhr) {
        if (xhr) return text; // an ordinary htmx response: leave it alone
        applyPush(text);
        return ""; // swapped above: nothing left for htmx
      },
    });
  }

  if (window.htmx) {
    defineExtension();
  } else {
    document.addEventListener("DOMContentLoaded", defineExtension);
  }
})();
