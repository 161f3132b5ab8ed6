/* printfarm: the wall sized to its screen. Picks the tile width at which every printer fits
 * the window without scrolling (12 printers on a 4K TV: big tiles, text readable across the
 * room; 1,000 on 1080p: small ones), sets it and a matching font size as CSS variables on the
 * grid, and marks very small tiles so the stylesheet keeps only name, colour and progress.
 * A layout of 1,000 tiles costs ~0.1 s (0.3 s on a busy machine), so the width is chosen on
 * copies of a few tiles while the real ones stay out of layout (printfarm.css), and the wall is
 * laid out once at that width; small steps only where the copies misjudged it.
 * Runs on load, on resize and whenever the grid is swapped or cards are added or removed.
 */
(function () {
  "use strict";

  var MIN_TILE = 48; // px: below this the wall scrolls rather than shrink further
  var MAX_TILE = 640;
  var SMALL = 150; // px: below this a tile drops its temperatures and file
  var TINY = 90; // px: below this only the name, the state's colour and the progress
  var SAMPLES = 80; // tiles copied to measure, spread over the wall
  var MARGIN = 0.98; // of the room: the copies stand for the whole wall, not exactly
  var STEP = 0.04; // where the copies misjudged: shrink in 4% steps until the wall fits
  var scheduled = false;
  var measured = false; // the first fit is timed (below); later ones would only pile up entries

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

  function clamp(tile) {
    return Math.max(MIN_TILE, Math.min(MAX_TILE, Math.floor(tile)));
  }

  function columnsAt(wall, tile) {
    return Math.max(1, Math.floor((wall.width + wall.gap) / (tile + wall.gap)));
  }

  // The largest width at which the wall's height, as copies of some of its tiles predict it,
  // fits the room below the bar. The copies sit in a box of the wall's width and classes, so
  // they wrap and scale as the tiles do; each row of the wall is as tall as the tallest copy
  // of a tile in it (the wall is sorted: printing tiles, taller, sit together), a row with
  // none as the row before.
  function chooseWidth(grid, cards, tiles, wall) {
    var spread = Math.max(1, tiles.length / SAMPLES);
    var box = document.createElement("div");
    box.className = "cards wall-measure";
    box.setAttribute("aria-hidden", "true");
    box.style.width = wall.width + "px";
    var places = [];
    for (var x = 0; x < tiles.length && places.length < SAMPLES; x += spread) {
      var copy = tiles[Math.floor(x)].cloneNode(true);
      copy.removeAttribute("id"); // the page's scripts find tiles by id: these are none of them
      box.appendChild(copy);
      places.push(Math.floor(x));
    }
    cards.parentNode.insertBefore(box, cards);
    var copies = box.children;
    var heightAt = function (w) {
      apply(grid, w);
      var columns = columnsAt(wall, w);
      var rows = Math.ceil(wall.count / columns);
      var total = 0;
      var row = 0;
      var s = 0;
      for (var r = 0; r < rows; r++) {
        var tallest = 0;
        for (; s < places.length && places[s] < (r + 1) * columns; s++) {
          tallest = Math.max(tallest, copies[s].offsetHeight);
        }
        row = tallest || row;
        total += row + (r ? wall.gap : 0);
      }
      return total;
    };
    var room = wall.room * MARGIN;
    var low = MIN_TILE;
    var high = MAX_TILE;
    if (heightAt(high) <= room) {
      low = high;
    } else {
      while (high - low > 1) {
        var mid = Math.floor((low + high) / 2);
        if (heightAt(mid) <= room) low = mid;
        else high = mid;
      }
    }
    box.remove();
    return low;
  }

  function fit() {
    scheduled = false;
    var grid = document.querySelector("#printer-grid.farm-wall");
    var tiles = grid ? grid.querySelectorAll("article.card") : []; // every group's
    if (!tiles.length) return;
    var started = window.performance ? performance.now() : 0;
    // Out of layout while the width is chosen (printfarm.css: no data-tile); nothing is painted
    // before this task ends, so a wall being fitted again does not blink.
    delete grid.dataset.tile;
    var cards = grid.querySelector(".cards");
    var top = cards.getBoundingClientRect().top + window.scrollY;
    // What lies below the grid (the page's padding) is not room for tiles.
    var below = document.body.getBoundingClientRect().bottom - grid.getBoundingClientRect().bottom;
    var tail = Math.max(0, below);
    var wall = {
      count: tiles.length,
      width: cards.clientWidth,
      gap: parseFloat(window.getComputedStyle(cards).columnGap) || 0,
      room: Math.max(1, window.innerHeight - top - tail),
    };
    var tile = chooseWidth(grid, cards, tiles, wall);
    apply(grid, tile);
    grid.dataset.tile = String(tile);
    var tried = [tile];
    for (var j = 0; j < 60 && tile > MIN_TILE && !fitsScreen(); j++) {
      tile = clamp(Math.min(tile - 1, tile * (1 - STEP)));
      apply(grid, tile);
      tried.push(tile);
    }
    grid.dataset.tile = String(tile);
    // For scripts/bench_wall.py: when the first fit ended, and the widths laid out.
    if (!measured && window.performance && performance.measure) {
      measured = true;
      performance.measure("wall-fit", { start: started, detail: { tile: tile, tried: tried } });
    }
  }

  function schedule() {
    if (!scheduled) {
      scheduled = true;
      window.requestAnimationFrame(fit);
    }
  }

  window.addEventListener("resize", schedule);
  document.addEventListener("DOMContentLoaded", schedule);
  // The grid re-read (a filter, a printer added): fit again; other swaps (the health banner)
  // leave the tiles alone.
  document.addEventListener("htmx:afterSettle", function (evt) {
    var elt = evt.detail && evt.detail.elt;
    if (elt && (elt.id === "printer-grid" || (elt.querySelector && elt.querySelector("#printer-grid")))) {
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
