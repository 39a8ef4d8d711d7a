// A training run's admin page (templates/admin/generation/prompttemplate/training_run.html): while the run is
// not final, poll its JSON every 2 seconds and set the numbers the page shows ([data-live] elements, by key;
// the server formats them), and reload the page once the run is final, to show what it left. Text is set with
// textContent only.
(function () {
  "use strict";
  var box = document.getElementById("training-run");
  if (!box || box.dataset.final === "1" || !window.fetch) return;
  var url = box.dataset.progressUrl;
  var bar = document.getElementById("training-bar");
  var timer = null;

  function show(s) {
    var live = box.querySelectorAll("[data-live]");
    for (var i = 0; i < live.length; i++) {
      var key = live[i].getAttribute("data-live");
      if (Object.prototype.hasOwnProperty.call(s, key)) live[i].textContent = String(s[key]);
      if (key === "status_label") live[i].className = "tr-status-" + s.status;
    }
    var flags = box.querySelectorAll("[data-live-flag]");
    for (var j = 0; j < flags.length; j++) flags[j].hidden = !s[flags[j].getAttribute("data-live-flag")];
    if (bar && s.total_value) {
      bar.max = s.total_value;
      bar.value = s.step_value;
      bar.textContent = s.step;
    }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (r.status === 404) { clearInterval(timer); return null; }
        if (!r.ok) throw new Error(r.status);
        return r.json();
      })
      .then(function (s) {
        if (!s) return;
        if (s.final) { clearInterval(timer); window.location.reload(); return; }
        show(s);
      })
      .catch(function () { /* try again on the next tick */ });
  }
  timer = setInterval(poll, 2000);
})();
