/* printfarm: the colour theme, applied before the first paint (loaded without defer).
 * "light" / "dark" from the theme switch (topbar.js) sit in localStorage; none means the
 * system's preference (printfarm.css: prefers-color-scheme). Also marks <html> "js" so the
 * CSS collapses the top bar only where the menu button can open it again. */
(function () {
  "use strict";
  var root = document.documentElement;
  root.classList.add("js");
  try {
    var theme = window.localStorage.getItem("printfarm-theme");
    if (theme === "light" || theme === "dark") root.setAttribute("data-theme", theme);
  } catch (e) {
    /* storage refused (private mode): the system's theme */
  }
})();
