/* printfarm: the wall sized to its screen. Picks the tile width at which every printer fits
 * the window without scrolling (12 printers on a 4K TV: big tiles, text readable across the
 * room; 1,000 on 1080p: small ones), sets it and a matching font size as CSS variables on the
 * grid, and marks very small tiles so the stylesheet keeps only name, colour and progress.
 * The tiles stay out of layout until the first fit (printfarm.css), which measures the real
 * layout once or twice and predicts the rest (~0.1 s per layout of 1,000 tiles).
 * Runs on load, on resize and whenever the grid is swapped or cards are added or removed.
 */
(function () {
  "use strict";

  var MIN_TILE = 48; // px: below this the wall scrolls rather than shrink further
  var MAX_TILE = 640;
  var GAIN = 0.02; // a fit within 2% of the largest tile that fits is kept
  var SMALL = 150; // px: below this a tile drops its temperatures and file
  var TINY = 90; // px: below this only the name, the state's colour and the progress
  var STEP = 0.04; // where the measured model misjudged: shrink in 4% steps until it fits
  var scheduled = false;
  var lastFit = null; // this page's last fit: {tile, over}

  function apply(grid, tile) {
    grid.style.setProperty("--tile-w", tile + "px");
    grid.style.setProperty("--tile-font", Math.max(6, Math.min(48, tile / 9.5)).toFixed(1) + "px");
    grid.classList.toggle("tiles-small", tile < SMALL);
    grid.classList.toggle("tiles-tiny", tile < TINY);
  }

  function fitsScreen() {
    var root = document.documentElement;
    return root.scrollHeight <= window.innerHeight && root.scrollWidth <= window.innerWidth;
  }

  function fontOf(tile) {
    return Math.max(6, Math.min(48, tile / 9.5));
  }

  function clamp(tile) {
    return Math.max(MIN_TILE, Math.min(MAX_TILE, Math.floor(tile)));
  }

  // The fit per screen size and printer count, kept across reloads: a wall display that
  // restarts starts from its answer and measures once.
  var MEMORY = "printfarm-wall-fit";

  function fitKey(wall) {
    return [wall.count, Math.round(wall.width), Math.round(wall.room)].join("x");
  }

  // {tile, over}: the width that fit and the smallest measured not to (0: none), or null.
  function remembered(wall) {
    try {
      var kept = JSON.parse(window.localStorage.getItem(MEMORY) || "null");
      if (!kept || kept.key !== fitKey(wall)) return null;
      var tile = clamp(kept.tile);
      return { tile: tile, over: kept.over > tile ? kept.over : 0 };
    } catch (e) {
      return null; // storage refused or garbled: estimate
    }
  }

  function remember(wall, fitted) {
    try {
      window.localStorage.setItem(
        MEMORY,
        JSON.stringify({ key: fitKey(wall), tile: fitted.tile, over: fitted.over })
      );
    } catch (e) {
      /* storage refused (private mode): estimate next time */
    }
  }

  function columnsAt(wall, tile) {
    return Math.max(1, Math.floor((wall.width + wall.gap) / (tile + wall.gap)));
  }

  // A tile's height that does not scale with the font: its padding, borders and the gaps
  // between its lines are pixels (printfarm.css), the rest is em.
  function fixedHeight(tile) {
    var style = window.getComputedStyle(tile);
    var lines = 0;
    for (var child = tile.firstElementChild; child; child = child.nextElementSibling) {
      if (child.offsetParent !== null) lines++;
    }
    var px = function (name) {
      return parseFloat(style[name]) || 0;
    };
    return (
      px("paddingTop") + px("paddingBottom") + px("borderTopWidth") + px("borderBottomWidth") +
      px("rowGap") * Math.max(0, lines - 1)
    );
  }

  // The wall measured at one or two widths predicts every other: the grid fits
  // floor(width / tile) columns, and a row is a fixed part (padding, borders, the progress
  // bar's minimum) plus a part that scales with the font (every other size is em of it), the
  // two told apart by the last two measurements. Returns the largest width that should fit.
  function predict(wall, points) {
    var rows = function (w) {
      return Math.ceil(wall.count / columnsAt(wall, w));
    };
    var last = points[points.length - 1];
    var before = points[points.length - 2];
    var fixed = Math.min(last.fixed, last.row); // one point: the pixels that don't scale, as read
    var perFont = (last.row - fixed) / fontOf(last.tile);
    if (before && fontOf(before.tile) !== fontOf(last.tile)) {
      var slope = (last.row - before.row) / (fontOf(last.tile) - fontOf(before.tile));
      if (slope > 0 && slope <= last.row / fontOf(last.tile)) {
        perFont = slope; // else a layout change between them (small tiles hide lines): one point
        fixed = last.row - slope * fontOf(last.tile);
      }
    }
    for (var w = MAX_TILE; w > MIN_TILE; w--) {
      if (rows(w) * (fixed + perFont * fontOf(w)) <= wall.room) return w;
    }
    return MIN_TILE;
  }

  // The largest tile at which the real layout (names wrap, text scales) needs no scrolling, in
  // as few layouts of 1,000 tiles as possible (~0.1 s each): measure at a first guess, jump to
  // what that measurement predicts, measure again; small steps only where the model was wrong.
  function fit() {
    scheduled = false;
    var grid = document.querySelector("#printer-grid.farm-wall");
    if (!grid || !grid.querySelector("article.card")) return;
    var started = window.performance ? performance.now() : 0;
    var cards = grid.querySelector(".cards");
    var top = cards.getBoundingClientRect().top + window.scrollY;
    // What lies below the grid (the page's padding): the document's own height never reads
    // less than the window, so the wall's height is measured at the grid's bottom instead.
    var tail = Math.max(0, document.body.getBoundingClientRect().bottom - grid.getBoundingClientRect().bottom);
    var wall = {
      count: grid.querySelectorAll("article.card").length,
      width: cards.clientWidth,
      gap: parseFloat(window.getComputedStyle(cards).columnGap) || 0,
      room: Math.max(1, window.innerHeight - top - tail),
    };
    // From the last fit on this screen of this many printers (a display reloading), else from
    // the area each tile has: a tile is about 0.6 times as tall as it is wide, a tiny one
    // (name and progress only) about 0.4.
    var area = (wall.width * wall.room) / wall.count;
    var guess = Math.sqrt(area / 0.6) < TINY ? Math.sqrt(area / 0.4) : Math.sqrt(area / 0.6);
    var known = lastFit || remembered(wall) || { tile: clamp(guess), over: 0 };
    var tile = known.tile;
    var over = known.over; // the smallest width known not to fit: not tried again
    var measuredOver = 0; // …as measured now: only this is remembered, so a bound is re-checked
    apply(grid, tile);
    // Until now the stylesheet kept the tiles out of layout (no data-tile; the measurements
    // above cost nothing): the page would have laid out 1,000 tiles at a size about to change.
    grid.dataset.tile = "fitting";
    var best = 0; // the largest width measured to fit
    var points = [];
    var tried = [];
    for (var k = 0; k < 3; k++) {
      tried.push(tile);
      if (grid.style.getPropertyValue("--tile-w") !== tile + "px") apply(grid, tile);
      var fits = fitsScreen();
      if (fits && tile > best) best = tile;
      if (!fits && (!over || tile < over)) over = tile;
      if (!fits && (!measuredOver || tile < measuredOver)) measuredOver = tile;
      var used = Math.max(1, grid.getBoundingClientRect().bottom + window.scrollY - top);
      points.push({
        tile: tile,
        row: used / Math.ceil(wall.count / columnsAt(wall, tile)),
        fixed: wall.gap + fixedHeight(cards.querySelector("article.card")),
      });
      var next = predict(wall, points);
      // Fits, and the model finds no more than ~2% to gain: a layout is worth more than that.
      if (next === tile || next <= best || (over && next >= over) || (fits && next <= tile * (1 + GAIN))) {
        break;
      }
      tile = next;
    }
    if (best && tile !== best && !fitsScreen()) {
      tile = best;
      apply(grid, tile);
    }
    for (var j = 0; j < 60 && tile > MIN_TILE && !fitsScreen(); j++) {
      tile = clamp(Math.min(tile - 1, tile * (1 - STEP))); // the model was wrong: small steps
      apply(grid, tile);
      tried.push(tile);
    }
    lastFit = { tile: tile, over: measuredOver > tile ? measuredOver : 0 };
    grid.dataset.tile = String(tile);
    remember(wall, lastFit);
    // For scripts/bench_wall.py: when the first fit ended, and how long each took.
    if (window.performance && performance.measure) {
      performance.measure("wall-fit", { start: started, detail: { tile: tile, tried: tried } });
    }
  }

  function schedule() {
    if (!scheduled) {
      scheduled = true;
      window.requestAnimationFrame(fit);
    }
  }

  window.addEventListener("resize", function () {
    lastFit = null; // another screen: start from an estimate
    schedule();
  });
  document.addEventListener("DOMContentLoaded", schedule);
  // The grid re-read (a filter, a printer added): fit again; other swaps (the health banner)
  // leave the tiles alone.
  document.addEventListener("htmx:afterSettle", function (evt) {
    var elt = evt.detail && evt.detail.elt;
    if (elt && (elt.id === "printer-grid" || (elt.querySelector && elt.querySelector("#printer-grid")))) {
      lastFit = null; // other printers, another count: start from an estimate
      schedule();
    }
  });
  // A pushed card may be taller (an error's reason): fit again only if the wall no longer
  // fits, so a farm of 1,000 updating every second costs one measurement per frame.
  var checking = false;
  document.addEventListener("printfarm:pushed", function () {
    if (checking || scheduled) return;
    checking = true;
    window.requestAnimationFrame(function () {
      checking = false;
      if (document.querySelector("#printer-grid.farm-wall") && !fitsScreen()) schedule();
    });
  });
  schedule();
})();
