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
  var scheduled = false;

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

  // The largest tile at which the real layout (names wrap, text scales) needs no scrolling:
  // a binary search over the width, measuring the page each step (a dozen reflows, on load,
  // resize and when printers come or go).
  function fit() {
    scheduled = false;
    var grid = document.querySelector("#printer-grid.farm-wall");
    if (!grid || !grid.querySelector("article.card")) return;
    var lo = MIN_TILE;
    var hi = MAX_TILE;
    apply(grid, hi);
    if (!fitsScreen()) {
      while (hi - lo > 2) {
        var mid = Math.floor((lo + hi) / 2);
        apply(grid, mid);
        if (fitsScreen()) lo = mid;
        else hi = mid;
      }
      apply(grid, lo);
      hi = lo;
    }
    grid.dataset.tile = String(hi);
  }

  function schedule() {
    if (!scheduled) {
      scheduled = true;
      window.requestAnimationFrame(fit);
    }
  }

  window.addEventListener("resize", schedule);
  document.addEventListener("DOMContentLoaded", schedule);
  document.addEventListener("htmx:afterSettle", schedule);
  // A pushed card may be taller (an error's reason): search again only if the wall no longer
  // fits, so a farm of 1,000 updating every second costs one measurement per frame.
  var checking = false;
  document.addEventListener("htmx:oobAfterSwap", function () {
    if (checking || scheduled) return;
    checking = true;
    window.requestAnimationFrame(function () {
      checking = false;
      if (document.querySelector("#printer-grid.farm-wall") && !fitsScreen()) schedule();
    });
  });
  schedule();
})();
