/* printfarm: the wall sized to its screen. Picks the tile width at which every printer fits
 * the window without scrolling (12 printers on a 4K TV: big tiles, text readable across the
 * room; 1,000 on 1080p: small ones), sets it and a matching font size as CSS variables on the
 * grid, and marks very small tiles so the stylesheet keeps only name, colour and progress.
 * Runs on load, on resize and whenever the grid is swapped or cards are added or removed.
 */
(function () {
  "use strict";

  var MIN_TILE = 48; // px: below this the wall scrolls rather than shrink further
  var MAX_TILE = 640;
  var STEP = 0.04; // the fit is within 4% of the largest tile that fits
  var scheduled = false;
  var lastTile = 0;

  function apply(grid, tile) {
    grid.style.setProperty("--tile-w", tile + "px");
    grid.style.setProperty("--tile-font", Math.max(6, Math.min(48, tile / 9.5)).toFixed(1) + "px");
    grid.classList.toggle("tiles-small", tile < 150);
    grid.classList.toggle("tiles-tiny", tile < 90);
  }

  function fitsScreen() {
    var root = document.documentElement;
    return root.scrollHeight <= window.innerHeight && root.scrollWidth <= window.innerWidth;
  }

  // A first width from one measurement: a tile's height grows with its width (the font
  // scales with it), so the wall's height grows with the square of the width.
  function estimate(grid) {
    var count = grid.querySelectorAll("article.card").length;
    var top = grid.querySelector(".cards").getBoundingClientRect().top + window.scrollY;
    var room = Math.max(1, window.innerHeight - top);
    var guess = Math.sqrt((window.innerWidth * room) / count);
    apply(grid, clamp(guess));
    var used = Math.max(1, document.documentElement.scrollHeight - top);
    return clamp(guess * Math.sqrt(room / used));
  }

  function clamp(tile) {
    return Math.max(MIN_TILE, Math.min(MAX_TILE, Math.floor(tile)));
  }

  // The largest tile at which the real layout (names wrap, text scales) needs no scrolling:
  // from the last fit (or an estimate), grow or shrink in small steps, measuring the page
  // each step — a few reflows of 1,000 tiles instead of a dozen.
  function fit() {
    scheduled = false;
    var grid = document.querySelector("#printer-grid.farm-wall");
    if (!grid || !grid.querySelector("article.card")) return;
    var tile = lastTile || estimate(grid);
    apply(grid, tile);
    if (fitsScreen()) {
      for (var i = 0; i < 40 && tile < MAX_TILE; i++) {
        var bigger = clamp(Math.max(tile + 1, tile * (1 + STEP)));
        apply(grid, bigger);
        if (!fitsScreen()) {
          apply(grid, tile);
          break;
        }
        tile = bigger;
      }
    } else {
      for (var j = 0; j < 60 && tile > MIN_TILE; j++) {
        tile = clamp(Math.min(tile - 1, tile * (1 - STEP)));
        apply(grid, tile);
        if (fitsScreen()) break;
      }
    }
    lastTile = tile;
    grid.dataset.tile = String(tile);
  }

  function schedule() {
    if (!scheduled) {
      scheduled = true;
      window.requestAnimationFrame(fit);
    }
  }

  window.addEventListener("resize", function () {
    lastTile = 0; // another screen: start from an estimate
    schedule();
  });
  document.addEventListener("DOMContentLoaded", schedule);
  // The grid re-read (a filter, a printer added): fit again; other swaps (the health banner)
  // leave the tiles alone.
  document.addEventListener("htmx:afterSettle", function (evt) {
    var elt = evt.detail && evt.detail.elt;
    if (elt && (elt.id === "printer-grid" || (elt.querySelector && elt.querySelector("#printer-grid")))) {
      lastTile = 0; // other printers, another count: start from an estimate
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
