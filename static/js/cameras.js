// Camera snapshots (cards, the camera wall, the printer page): refreshed through our server
// (printers/camera_views.py), never from the camera itself; only while on screen and the tab
// is visible, and at most MAX_IN_FLIGHT at a time, the least recently refreshed first. A
// browser opens ~6 connections per host: 100 cameras refreshed at once, or 100 live streams,
// would leave none for the page itself.
(() => {
  "use strict";

  const MAX_IN_FLIGHT = 4;
  const CARD_INTERVAL = 5000; // ms between refreshes of a card's snapshot
  const WALL_INTERVAL = 3000; // on the camera wall
  const TICK = 250;

  const cameras = new Map(); // snapshot URL -> {at, loading, shown}
  const visible = new Set(); // tracked <img>s on screen
  let inFlight = 0;

  const observer =
    "IntersectionObserver" in window
      ? new IntersectionObserver(
          (entries) => {
            for (const e of entries) {
              if (e.isIntersecting) visible.add(e.target);
              else visible.delete(e.target);
            }
            pump();
          },
          { rootMargin: "100px" },
        )
      : null;

  function camera(src) {
    let c = cameras.get(src);
    if (!c) {
      c = { at: 0, loading: false, shown: "" };
      cameras.set(src, c);
    }
    return c;
  }

  function intervalOf(img) {
    const own = Number(img.dataset.cameraInterval);
    if (own > 0) return own;
    return img.closest("[data-camera-wall]") ? WALL_INTERVAL : CARD_INTERVAL;
  }

  function track(img) {
    if (img.dataset.cameraTracked) return;
    img.dataset.cameraTracked = "1";
    // A card swapped in by a push keeps the picture its predecessor showed.
    const c = cameras.get(img.dataset.cameraSrc);
    if (c && c.shown) img.src = c.shown;
    if (observer) observer.observe(img);
    else visible.add(img);
  }

  function scan(root) {
    if (root.nodeType !== 1) return;
    if (root.matches("img[data-camera-src]")) track(root);
    root.querySelectorAll("img[data-camera-src]").forEach(track);
    root.querySelectorAll("img[data-camera-fallback]").forEach(watchStream);
    if (root.matches("img[data-camera-fallback]")) watchStream(root);
  }

  // The printer page's live stream: if our relay refuses (too many viewers, camera down),
  // refresh snapshots instead.
  function watchStream(img) {
    if (img.dataset.cameraWatched) return;
    img.dataset.cameraWatched = "1";
    img.addEventListener("error", () => {
      img.removeAttribute("src");
      img.dataset.cameraSrc = img.dataset.cameraFallback;
      img.dataset.cameraInterval = img.dataset.cameraInterval || "2000";
      track(img);
    });
  }

  function nextDue(now) {
    let best = null;
    let bestAt = Infinity;
    for (const img of visible) {
      if (!img.isConnected) {
        visible.delete(img);
        continue;
      }
      const src = img.dataset.cameraSrc;
      const c = camera(src);
      if (c.loading || now - c.at < intervalOf(img)) continue;
      if (c.at < bestAt) {
        best = src;
        bestAt = c.at;
      }
    }
    return best;
  }

  function load(src) {
    const c = camera(src);
    c.loading = true;
    inFlight += 1;
    const url = `${src}${src.includes("?") ? "&" : "?"}t=${Date.now()}`;
    const probe = new Image();
    const done = (ok) => {
      inFlight -= 1;
      c.loading = false;
      c.at = Date.now();
      if (ok) {
        c.shown = url; // the same document reuses the loaded image: no second request
        for (const img of document.querySelectorAll("img[data-camera-src]")) {
          if (img.dataset.cameraSrc === src) img.src = url;
        }
      }
      pump();
    };
    probe.onload = () => done(true);
    probe.onerror = () => done(false);
    probe.src = url;
  }

  function pump() {
    if (document.hidden) return;
    const now = Date.now();
    while (inFlight < MAX_IN_FLIGHT) {
      const src = nextDue(now);
      if (!src) break;
      load(src);
    }
  }

  function start() {
    scan(document.body);
    new MutationObserver((records) => {
      for (const r of records) r.addedNodes.forEach(scan);
    }).observe(document.body, { childList: true, subtree: true });
    document.addEventListener("visibilitychange", pump);
    setInterval(pump, TICK);
    pump();
  }

  // Tests and the benchmark read how many refreshes are in flight.
  window.printfarmCameras = { inFlight: () => inFlight, maxInFlight: MAX_IN_FLIGHT };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
