// Job page: poll the job until it ends, then reload so that the server renders (and escapes) the result.
(function () {
  "use strict";
  var box = document.getElementById("job");
  if (!box) return;
  var url = box.dataset.statusUrl;
  var statusEl = document.getElementById("job-status");
  var elapsedEl = document.getElementById("job-elapsed");
  var started = Date.now();
  var FINAL = ["succeeded", "failed", "cancelled"];

  function tick() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (job) {
        statusEl.textContent = job.status;
        statusEl.className = "badge status-" + job.status;
        if (FINAL.indexOf(job.status) !== -1) { window.location.reload(); return; }
        elapsedEl.textContent = "(" + Math.round((Date.now() - started) / 1000) + " s)";
        setTimeout(tick, 1000);
      })
      .catch(function () { setTimeout(tick, 3000); });
  }
  tick();
})();
