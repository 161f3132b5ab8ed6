/* printfarm: the library's uploads and the queue's drag-to-reorder.
 *
 * Uploads: files dropped on (or chosen in) [data-upload] go one request each, two at a
 * time, so every file gets its own progress bar and its own verdict; too large or of the
 * wrong type is said before sending a byte (the server checks again). The list reloads
 * when all are done. Without JS the form posts all files and the page reloads.
 *
 * Queue: rows of [data-sortable] can be dragged; the new order is posted with the CSRF
 * token htmx already sends, and the queue redraws. Polling pauses while dragging.
 */
(function () {
  "use strict";

  var PARALLEL = 2;

  function csrfToken() {
    var headers = document.body.getAttribute("hx-headers");
    try { return JSON.parse(headers)["X-CSRFToken"]; } catch (e) { return ""; }
  }

  function humanSize(bytes) {
    var units = ["bytes", "KB", "MB", "GB"];
    var i = 0;
    while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i++; }
    return (i ? bytes.toFixed(1) : bytes) + " " + units[i];
  }

  function setupUploads(form) {
    var list = form.parentElement.querySelector("[data-uploads]");
    var input = form.querySelector("input[type=file]");
    var maxBytes = Number(form.dataset.maxBytes);
    var extensions = form.dataset.extensions.split(",").map(function (e) { return e.trim().toLowerCase(); });
    var queue = [];
    var running = 0;

    function item(file) {
      var li = document.createElement("li");
      li.className = "upload-item";
      li.innerHTML = '<span class="upload-name"></span> <span class="muted upload-size"></span>' +
        '<div class="progress" role="progressbar" aria-valuemin="0" aria-valuemax="100"><span></span></div>' +
        '<span class="upload-status" data-testid="upload-status">waiting…</span>';
      li.querySelector(".upload-name").textContent = file.name;
      li.querySelector(".upload-size").textContent = humanSize(file.size);
      list.appendChild(li);
      return li;
    }

    function finish(li, ok, text) {
      li.classList.add(ok ? "ok" : "err");
      li.querySelector(".upload-status").textContent = text;
    }

    function refusal(file) {
      var name = file.name.toLowerCase();
      if (!extensions.some(function (ext) { return name.endsWith(ext); })) {
        return file.name + ": not a G-code file. Accepted: " + form.dataset.extensions + ".";
      }
      if (file.size === 0) { return file.name + ": the file is empty; nothing was stored."; }
      if (file.size > maxBytes) {
        return file.name + ": larger than the " + form.dataset.maxText + " limit; nothing was stored.";
      }
      return "";
    }

    function send(file, li) {
      running++;
      var bar = li.querySelector(".progress span");
      var status = li.querySelector(".upload-status");
      var xhr = new XMLHttpRequest();
      var body = new FormData();
      body.append("file", file, file.name);
      xhr.open("POST", form.action);
      xhr.setRequestHeader("X-CSRFToken", csrfToken());
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.onprogress = function (e) {
        if (!e.lengthComputable) { return; }
        var pct = Math.floor((100 * e.loaded) / e.total);
        bar.style.width = pct + "%";
        li.querySelector(".progress").setAttribute("aria-valuenow", pct);
        status.textContent = pct < 100 ? pct + "%" : "checking…";
      };
      xhr.onload = function () {
        var data = null;
        try { data = JSON.parse(xhr.responseText); } catch (e) { /* not JSON: a proxy's error page */ }
        if (data && data.stored && data.stored.length) {
          bar.style.width = "100%";
          finish(li, true, data.stored[0].message);
        } else if (data && data.errors && data.errors.length) {
          finish(li, false, data.errors.join(" "));
        } else if (xhr.status === 413) {
          finish(li, false, file.name + ": larger than the server accepts; nothing was stored.");
        } else if (xhr.status === 403) {
          finish(li, false, "Refused (403): your session may have ended; reload the page and log in.");
        } else {
          finish(li, false, "Upload failed (HTTP " + xhr.status + "); try again.");
        }
        done();
      };
      xhr.onerror = function () {
        finish(li, false, "The connection broke during the upload; nothing was stored. Try again.");
        done();
      };
      xhr.send(body);
    }

    function done() {
      running--;
      next();
      if (running === 0 && queue.length === 0 && window.htmx) {
        htmx.ajax("GET", form.dataset.listUrl, { target: "#file-table", swap: "outerHTML" });
      }
    }

    function next() {
      while (running < PARALLEL && queue.length) {
        var job = queue.shift();
        send(job.file, job.li);
      }
    }

    function add(files) {
      Array.prototype.forEach.call(files, function (file) {
        var li = item(file);
        var problem = refusal(file);
        if (problem) { finish(li, false, problem); return; }
        queue.push({ file: file, li: li });
      });
      next();
    }

    input.addEventListener("change", function () { add(input.files); input.value = ""; });
    ["dragenter", "dragover"].forEach(function (type) {
      form.addEventListener(type, function (e) { e.preventDefault(); form.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (type) {
      form.addEventListener(type, function (e) { e.preventDefault(); form.classList.remove("over"); });
    });
    form.addEventListener("drop", function (e) { add(e.dataTransfer.files); });
    form.addEventListener("submit", function (e) { e.preventDefault(); add(input.files); });
  }

  function setupSortable(root) {
    var dragged = null;
    root.addEventListener("dragstart", function (e) {
      dragged = e.target.closest("tr[data-job]");
      if (!dragged) { return; }
      window.printfarmDragging = true;
      dragged.classList.add("dragging");
      e.dataTransfer.effectAllowed = "move";
    });
    root.addEventListener("dragover", function (e) {
      var tbody = e.target.closest("tbody[data-sortable]");
      var over = e.target.closest("tr[data-job]");
      if (!dragged || !tbody || !over || over === dragged) { return; }
      e.preventDefault();
      var box = over.getBoundingClientRect();
      tbody.insertBefore(dragged, e.clientY < box.top + box.height / 2 ? over : over.nextSibling);
    });
    root.addEventListener("dragend", function () {
      if (!dragged) { return; }
      var tbody = dragged.closest("tbody[data-sortable]");
      dragged.classList.remove("dragging");
      dragged = null;
      window.printfarmDragging = false;
      var order = Array.prototype.map.call(tbody.querySelectorAll("tr[data-job]"), function (tr) {
        return Number(tr.dataset.job);
      });
      if (window.htmx) {
        htmx.ajax("POST", tbody.dataset.sortable, {
          target: "#queue-body", swap: "outerHTML", values: { order: JSON.stringify(order) }
        });
      }
    });
  }

  // The queue refreshes every 2 s; not in the middle of a drag (a trigger filter would need
  // eval, which the Content-Security-Policy forbids).
  document.addEventListener("htmx:beforeRequest", function (e) {
    if (window.printfarmDragging && e.detail.elt && e.detail.elt.id === "queue-body") {
      e.preventDefault();
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-upload]").forEach(setupUploads);
    setupSortable(document);
  });
})();
