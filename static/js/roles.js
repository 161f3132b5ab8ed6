/* printfarm: roles, users and tokens in the browser.
 *
 * - Says why when the server refuses an htmx request for the user's role (HTTP 403): htmx
 *   swaps nothing on a 4xx, so a refused click would look like a dead button. The 403 page
 *   (templates/403.html) carries its reason in [data-denied]; it is shown where the click
 *   happened: in the printer card's result line, at the top of the queue, or else in a
 *   banner at the top of the page. A 503 "database busy" ([data-busy]) is shown the same way.
 * - [data-copy="#input"] buttons copy a shown-once token or password.
 * - form[data-confirm] asks first (an inline onsubmit would need a laxer CSP).
 */
(function () {
  "use strict";

  var TOAST_MS = 8000;

  function reasonOf(xhr) {
    var text = "";
    try {
      var doc = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
      var el = doc.querySelector("[data-denied], [data-busy]");
      text = el ? el.textContent : "";
    } catch (e) { /* not HTML: use the fallback below */ }
    text = text.replace(/\s+/g, " ").trim();
    if (!text && xhr.status === 503) return "The database is busy, try again in a moment.";
    // No reason: a CSRF refusal, say (an old page after logging in again elsewhere).
    return text || "Refused (HTTP 403): reload the page; if it happens again, ask an admin about your role.";
  }

  function inCard(elt, text) {
    var card = elt && elt.closest ? elt.closest(".card") : null;
    if (!card) return false;
    var line = card.querySelector(".card-result");
    if (!line) {
      line = document.createElement("p");
      line.setAttribute("role", "status");
      card.appendChild(line);
    }
    line.className = "card-result err";
    line.textContent = text;
    return true;
  }

  function inQueue(elt, text) {
    var body = elt && elt.closest ? elt.closest("#queue-body") : null;
    if (!body) return false;
    var list = document.createElement("ul");
    list.className = "messages";
    list.setAttribute("role", "alert");
    var item = document.createElement("li");
    item.className = "message message-error";
    item.textContent = text;
    list.appendChild(item);
    body.insertBefore(list, body.firstChild); // the next poll of the queue redraws it away
    return true;
  }

  function toast(text) {
    var box = document.getElementById("role-toast");
    if (!box) {
      box = document.createElement("div");
      box.id = "role-toast";
      box.className = "role-toast";
      box.setAttribute("role", "alert");
      box.addEventListener("click", function () { box.hidden = true; });
      document.body.appendChild(box);
    }
    box.textContent = text;
    box.hidden = false;
    clearTimeout(box.timer);
    box.timer = setTimeout(function () { box.hidden = true; }, TOAST_MS);
  }

  document.addEventListener("htmx:responseError", function (evt) {
    var xhr = evt.detail && evt.detail.xhr;
    // 503: the database was busy (printfarm/ops/busy.py); its message goes where a refusal's does.
    if (!xhr || (xhr.status !== 403 && xhr.status !== 503)) return;
    var text = reasonOf(xhr);
    var elt = evt.detail.requestConfig ? evt.detail.requestConfig.elt : evt.detail.elt;
    if (!inCard(elt, text) && !inQueue(elt, text)) toast(text);
  });

  document.addEventListener("submit", function (evt) {
    var question = evt.target.dataset ? evt.target.dataset.confirm : "";
    if (question && !window.confirm(question)) evt.preventDefault();
  });

  document.addEventListener("click", function (evt) {
    var button = evt.target.closest ? evt.target.closest("[data-copy]") : null;
    if (!button) return;
    var input = document.querySelector(button.dataset.copy);
    if (!input) return;
    input.select();
    function copied() {
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = "Copy"; }, 2000);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(copied, function () { document.execCommand("copy"); copied(); });
    } else {
      document.execCommand("copy"); // plain http on a LAN: no clipboard API
      copied();
    }
  });
})();
