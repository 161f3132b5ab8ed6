/*
 * Browser alerts (opt-in, per browser): a desktop notification and a short beep when a card
 * pushed over the live feed shows a printer newly in error or a bed newly waiting to be cleared.
 *
 * - The switch is any [data-browser-alerts] checkbox or button (the topbar bell, the
 *   notifications page); the choice is kept in localStorage, so it is this browser's alone.
 * - It reads the cards the websocket swaps in (printfarm:cardswap from farm.js: the old card
 *   and the one replacing it), so it needs no feed of its own.
 * - The sound is made with WebAudio: no audio file to fetch.
 */
(function () {
  "use strict";
  var KEY = "printfarm.browserAlerts";
  var audio = null;

  function enabled() {
    try { return window.localStorage.getItem(KEY) === "on"; } catch (e) { return false; }
  }

  function store(on) {
    try { window.localStorage.setItem(KEY, on ? "on" : "off"); } catch (e) { /* private mode */ }
  }

  function showSwitches() {
    var on = enabled();
    document.querySelectorAll("[data-browser-alerts]").forEach(function (el) {
      if (el.type === "checkbox") el.checked = on;
      else el.setAttribute("aria-pressed", on ? "true" : "false");
    });
  }

  function beep() {
    var Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return;
    audio = audio || new Context();
    var now = audio.currentTime;
    [880, 660].forEach(function (hz, i) {
      var osc = audio.createOscillator();
      var gain = audio.createGain();
      osc.frequency.value = hz;
      gain.gain.setValueAtTime(0.0001, now + i * 0.18);
      gain.gain.exponentialRampToValueAtTime(0.2, now + i * 0.18 + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, now + i * 0.18 + 0.16);
      osc.connect(gain).connect(audio.destination);
      osc.start(now + i * 0.18);
      osc.stop(now + i * 0.18 + 0.17);
    });
  }

  function raise(title, body, tag) {
    beep();
    if (window.Notification && Notification.permission === "granted") {
      new Notification(title, { body: body, tag: tag });
    }
  }

  function cardName(card) {
    var name = card.querySelector(".card-name");
    return name ? name.textContent.trim() : "A printer";
  }

  function compare(old, next) {
    var id = next.id;
    var wasError = old.classList.contains("st-error");
    var isError = next.classList.contains("st-error");
    if (isError && !wasError) {
      var message = next.querySelector(".card-message");
      raise("Printer error: " + cardName(next), message ? message.textContent.trim() : "", id + "-error");
    }
    if (next.querySelector(".card-bed") && !old.querySelector(".card-bed")) {
      raise("Bed needs clearing: " + cardName(next), "The print is done: clear the bed for the next job.", id + "-bed");
    }
  }

  document.addEventListener("printfarm:cardswap", function (evt) {
    if (!enabled()) return;
    var old = evt.detail.old;
    var next = evt.detail.next;
    if (old.classList.contains("card") && next.classList.contains("card")) compare(old, next);
  });

  document.addEventListener("change", function (evt) {
    if (evt.target.matches && evt.target.matches("input[type=checkbox][data-browser-alerts]")) {
      turn(evt.target.checked);
    }
  });

  document.addEventListener("click", function (evt) {
    var button = evt.target.closest ? evt.target.closest("button[data-browser-alerts]") : null;
    if (button) turn(!enabled());
  });

  function turn(on) {
    store(on);
    if (on) {
      beep(); // a click is the user gesture browsers want before they play sound
      if (window.Notification && Notification.permission === "default") Notification.requestPermission();
    }
    showSwitches();
  }

  document.addEventListener("DOMContentLoaded", showSwitches);
})();
