// Job page: follow the job's event stream and show its text as the model writes it. EventSource reconnects
// by itself with Last-Event-ID, so a dropped connection resumes without a gap or a repeat. Text is set with
// textContent: model output is never parsed as HTML. When the job ends, the page reloads to show the final,
// server-rendered result.
(function () {
  "use strict";
  var box = document.getElementById("job");
  if (!box || !window.EventSource) return;
  var live = document.getElementById("job-live");
  var statusEl = document.getElementById("job-status");
  var elapsedEl = document.getElementById("job-elapsed");
  var started = Date.now();
  var texts = {};

  function show(index, text) {
    texts[index] = text;
    var el = document.getElementById("live-" + index);
    if (!el) {
      el = document.createElement("div");
      el.id = "live-" + index;
      el.className = "output prose live";
      live.appendChild(el);
    }
    el.textContent = text;
    statusEl.textContent = "running";
    statusEl.className = "badge status-running";
  }

  var source = new EventSource(box.dataset.eventsUrl);
  source.addEventListener("delta", function (e) {
    var d = JSON.parse(e.data);
    show(d.index, (texts[d.index] || "") + d.text);
  });
  source.addEventListener("replace", function (e) {
    var d = JSON.parse(e.data);
    show(d.index, d.text);
  });
  function end() { source.close(); window.location.reload(); }
  source.addEventListener("done", end);
  source.addEventListener("error", function (e) { if (e.data) end(); });
  setInterval(function () {
    if (elapsedEl) elapsedEl.textContent = "(" + Math.round((Date.now() - started) / 1000) + " s)";
  }, 1000);
})();
