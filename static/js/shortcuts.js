/* printfarm: keyboard shortcuts, on every page.
 *   /  find a printer (the dashboard's search box; elsewhere the page's own, or the dashboard's)
 *   w  wall <-> cards, keeping the dashboard's filters
 *   ?  a dialog listing these
 * Keys typed into a field, or with Ctrl / Alt / Cmd held, are left alone. */
(function () {
  "use strict";

  var FOCUS_FLAG = "printfarm-find"; // "/" on a page without a search box: focus it on arrival
  var KEYS = [
    ["/", "Find a printer: name, tag, location or file"],
    ["w", "Switch between the wall and the cards"],
    ["?", "Show these shortcuts"],
    ["Esc", "Close this, or leave the search box"],
  ];
  var dialog = null;

  function typing(el) {
    if (!el || el === document.body) return false;
    var tag = el.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }

  function searchBox() {
    return document.getElementById("farm-search") || document.querySelector("main input[type=search]");
  }

  function dashboardUrl() {
    var brand = document.querySelector(".topbar .brand");
    return brand ? brand.getAttribute("href") : "/";
  }

  function find() {
    var box = searchBox();
    if (box) {
      box.focus();
      box.select();
      return;
    }
    try {
      window.sessionStorage.setItem(FOCUS_FLAG, "1");
    } catch (e) {
      /* it opens without the focus */
    }
    window.location.href = dashboardUrl();
  }

  function toggleWall() {
    // The dashboard's own toggle keeps its filters; elsewhere the menu's Wall link.
    var other = document.querySelector(".view-toggle a[data-view=other]");
    var link = other || document.querySelector("#main-nav a[href*='view=wall']");
    window.location.href = link ? link.href : dashboardUrl() + "?view=wall";
  }

  function help() {
    if (!dialog) {
      dialog = document.createElement("dialog");
      dialog.className = "kbd-help";
      dialog.id = "shortcuts-help";
      dialog.setAttribute("aria-labelledby", "shortcuts-title");
      var title = document.createElement("h2");
      title.id = "shortcuts-title";
      title.textContent = "Keyboard shortcuts";
      var list = document.createElement("dl");
      KEYS.forEach(function (pair) {
        var dt = document.createElement("dt");
        var kbd = document.createElement("kbd");
        kbd.textContent = pair[0];
        dt.appendChild(kbd);
        var dd = document.createElement("dd");
        dd.textContent = pair[1];
        list.appendChild(dt);
        list.appendChild(dd);
      });
      var form = document.createElement("form");
      form.method = "dialog";
      var close = document.createElement("button");
      close.className = "btn btn-sm";
      close.textContent = "Close";
      form.appendChild(close);
      dialog.appendChild(title);
      dialog.appendChild(list);
      dialog.appendChild(form);
      document.body.appendChild(dialog);
    }
    if (!dialog.open) dialog.showModal();
  }

  document.addEventListener("keydown", function (evt) {
    if (evt.defaultPrevented || evt.ctrlKey || evt.metaKey || evt.altKey) return;
    var target = evt.target;
    if (evt.key === "Escape" && target && target.id === "farm-search") {
      evt.preventDefault(); // chromium would also empty the box, and search for everything
      target.blur();
      return;
    }
    if (typing(target) || (dialog && dialog.open)) return;
    if (evt.key === "/") {
      evt.preventDefault(); // not into the box, nor the browser's quick find
      find();
    } else if (evt.key === "w" || evt.key === "W") {
      evt.preventDefault();
      toggleWall();
    } else if (evt.key === "?") {
      evt.preventDefault();
      help();
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    var flagged = false;
    try {
      flagged = window.sessionStorage.getItem(FOCUS_FLAG) === "1";
      window.sessionStorage.removeItem(FOCUS_FLAG);
    } catch (e) {
      /* nothing to do */
    }
    var box = flagged && document.getElementById("farm-search");
    if (box) box.focus();
  });
})();
