/* printfarm: the top bar's menu button (phones, printfarm.css) and its theme switch. */
(function () {
  "use strict";

  var KEY = "printfarm-theme";

  function applyTheme(value) {
    var root = document.documentElement;
    try {
      if (value === "light" || value === "dark") {
        window.localStorage.setItem(KEY, value);
      } else {
        window.localStorage.removeItem(KEY);
      }
    } catch (e) {
      /* not stored: this page still changes */
    }
    if (value === "light" || value === "dark") root.setAttribute("data-theme", value);
    else root.removeAttribute("data-theme");
  }

  function init() {
    var select = document.getElementById("theme-switch");
    if (select) {
      select.value = document.documentElement.getAttribute("data-theme") || "system";
      select.addEventListener("change", function () {
        applyTheme(select.value);
      });
    }
    var toggle = document.querySelector(".nav-toggle");
    var bar = toggle && toggle.closest(".topbar");
    if (!bar) return;
    toggle.addEventListener("click", function () {
      var open = bar.classList.toggle("open");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
    });
    document.addEventListener("keydown", function (evt) {
      if (evt.key === "Escape" && bar.classList.contains("open")) {
        bar.classList.remove("open");
        toggle.setAttribute("aria-expanded", "false");
        toggle.focus();
      }
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
