/* printfarm: selecting printers on the dashboard or the wall for one action on all of them.
 *
 * "Select" shows a checkbox on every card; shift-click selects the range from the last box
 * clicked; "Select all shown" takes every card on the page (what the filters and search left).
 * The selection is kept here, by printer id, so cards replaced by live pushes or a re-read
 * grid keep their tick. A destructive action (its <option data-destructive>) first lists
 * the printers it will reach. The answer, a line per printer, replaces #bulk-results.
 */
(function () {
  "use strict";

  var selecting = false;
  var selected = new Set();
  var lastClicked = null;

  function cards() {
    return Array.prototype.slice.call(document.querySelectorAll("#printer-grid article.card"));
  }

  function pkOf(card) {
    return card.id.replace("printer-card-", "");
  }

  function nameOf(pk) {
    var link = document.querySelector("#printer-card-" + pk + " .card-name");
    return link ? link.textContent.trim() : "printer " + pk;
  }

  function bar() {
    return document.querySelector("[data-bulk-bar]");
  }

  // Group-by-tag shows a printer once per tag: every copy carries the same tick.
  // `only`: just these cards (a push's), not the whole page.
  function refresh(only) {
    var toggle = document.querySelector("[data-bulk-toggle]");
    if (toggle) {
      toggle.setAttribute("aria-pressed", selecting ? "true" : "false");
      toggle.textContent = selecting ? "Done selecting" : "Select";
    }
    var b = bar();
    if (b) b.hidden = !selecting;
    document.body.classList.toggle("selecting", selecting);
    (only || cards()).forEach(function (card) {
      var box = card.querySelector("input.card-select");
      if (!selecting) {
        if (box) box.parentNode.remove();
        return;
      }
      if (!box) {
        var label = document.createElement("label");
        label.className = "card-select-label";
        box = document.createElement("input");
        box.type = "checkbox";
        box.className = "card-select";
        box.dataset.pk = pkOf(card);
        box.setAttribute("aria-label", "Select " + nameOf(box.dataset.pk));
        label.appendChild(box);
        var head = card.querySelector(".card-head") || card;
        head.insertBefore(label, head.firstChild);
      }
      box.checked = selected.has(box.dataset.pk);
      card.classList.toggle("card-selected", box.checked);
    });
    var count = document.querySelector("[data-bulk-count]");
    if (count) count.textContent = selected.size + " selected";
  }

  function setRange(from, to, on) {
    var order = cards().map(pkOf);
    var a = order.indexOf(from);
    var b = order.indexOf(to);
    if (a < 0 || b < 0) return;
    for (var i = Math.min(a, b); i <= Math.max(a, b); i++) {
      if (on) selected.add(order[i]);
      else selected.delete(order[i]);
    }
  }

  document.addEventListener("click", function (evt) {
    var target = evt.target;
    if (target.closest("[data-bulk-toggle]")) {
      selecting = !selecting;
      refresh();
      return;
    }
    if (target.matches && target.matches("input.card-select")) {
      var pk = target.dataset.pk;
      if (evt.shiftKey && lastClicked) setRange(lastClicked, pk, target.checked);
      else if (target.checked) selected.add(pk);
      else selected.delete(pk);
      lastClicked = pk;
      refresh();
      return;
    }
    if (target.closest("[data-bulk-all]")) {
      cards().forEach(function (card) { selected.add(pkOf(card)); });
      refresh();
    } else if (target.closest("[data-bulk-none]")) {
      selected.clear();
      refresh();
    } else if (target.closest("[data-bulk-go]")) {
      apply(target.closest("[data-bulk-go]"));
    }
  });

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (e) {
      return "";
    }
  }

  function apply(button) {
    var select = document.querySelector("[data-bulk-action]");
    if (!select || !selected.size) {
      showResult('<div id="bulk-results" class="bulk-results has-failures" role="status"><p>Select at least one printer.</p></div>');
      return;
    }
    var option = select.options[select.selectedIndex];
    var ids = Array.from(selected);
    if (option.hasAttribute("data-destructive")) {
      var names = ids.map(nameOf);
      var listed = names.slice(0, 30).join("\n") + (names.length > 30 ? "\n… and " + (names.length - 30) + " more" : "");
      if (!window.confirm(option.textContent + " on " + ids.length + " printer(s)?\n\n" + listed)) return;
    }
    var body = new URLSearchParams();
    body.append("action", option.value);
    ids.forEach(function (pk) { body.append("printer", pk); });
    button.disabled = true;
    fetch(button.dataset.url, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), "HX-Request": "true" },
    })
      .then(function (response) {
        return response.text().then(function (text) {
          if (response.ok) return text;
          return '<div id="bulk-results" class="bulk-results has-failures" role="status"><p></p></div>'.replace(
            "<p></p>", "<p>" + escapeHtml(text || response.statusText) + "</p>");
        });
      })
      .catch(function () {
        return '<div id="bulk-results" class="bulk-results has-failures" role="status"><p>The server did not answer: nothing may have been sent. Try again.</p></div>';
      })
      .then(function (html) {
        button.disabled = false;
        showResult(html);
      });
  }

  function escapeHtml(text) {
    var div = document.createElement("div");
    div.textContent = text;
    return div.innerHTML;
  }

  function showResult(html) {
    var old = document.getElementById("bulk-results");
    if (!old) return;
    var holder = document.createElement("div");
    holder.innerHTML = html;
    var fresh = holder.firstElementChild;
    if (fresh) {
      old.replaceWith(fresh);
      fresh.hidden = false;
    }
  }

  // Cards replaced by pushes or a re-read grid get their checkbox and tick back.
  document.addEventListener("htmx:afterSettle", function () { if (selecting) refresh(); });
  document.addEventListener("printfarm:pushed", function (evt) { if (selecting) refresh(evt.detail.cards); });
})();
