// Job page: follow the job's event stream and show its text as the model writes it. A refresh replays the
// stream from its start, and EventSource reconnects by itself with Last-Event-ID, so the text shown is
// always everything so far, without a gap or a repeat. Text is set with textContent: model output is never
// parsed as HTML here; the final, sanitised rendering comes from the server when the page reloads at the end.
(function () {
  "use strict";
  var box = document.getElementById("job");
  if (!box || !window.EventSource) return;
  var live = document.getElementById("job-live");
  var statusEl = document.getElementById("job-status");
  var queueEl = document.getElementById("queue-note");
  var noticeEl = document.getElementById("job-notice");
  var tokensEl = document.getElementById("job-tokens");
  var elapsedEl = document.getElementById("job-elapsed");
  var started = Date.now();
  var texts = {}, tokens = {}, running = false;

  function setRunning() {
    if (running) return;
    running = true;
    statusEl.textContent = box.dataset.labelRunning;
    statusEl.className = "badge status-running";
    queueEl.textContent = box.dataset.labelWriting;
  }

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
    setRunning();
  }

  function showTokens() {
    var total = 0;
    for (var k in tokens) total += tokens[k];
    if (total) tokensEl.textContent = "· " + total + " " + box.dataset.labelTokens;
  }

  var source = new EventSource(box.dataset.eventsUrl);
  source.addEventListener("delta", function (e) {
    var d = JSON.parse(e.data);
    show(d.index, (texts[d.index] || "") + d.text);
    if (d.tokens) { tokens[d.index] = d.tokens; showTokens(); }
  });
  source.addEventListener("replace", function (e) {
    var d = JSON.parse(e.data);
    show(d.index, d.text);
  });
  function end() { source.close(); window.location.reload(); }
  source.addEventListener("done", end);
  source.addEventListener("error", function (e) { if (e.data) end(); });

  // While the job waits, its place in the queue (the stream has nothing to say until it starts).
  function poll() {
    if (running) return;
    fetch(box.dataset.stateUrl, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (s) {
      if (noticeEl) {  // no worker serves the job's model: say so rather than wait in silence
        noticeEl.textContent = s.notice || "";
        noticeEl.hidden = !s.notice;
      }
      if (s.status === "queued" && s.queue_position) {
        queueEl.textContent = box.dataset.labelQueued.replace("%(n)s", s.queue_position);
      } else if (s.status === "running") {
        setRunning();
      }
    }).catch(function () { /* try again on the next tick */ });
  }
  var pollTimer = setInterval(function () { if (running) clearInterval(pollTimer); else poll(); }, 2000);
  setInterval(function () {
    elapsedEl.textContent = "(" + Math.round((Date.now() - started) / 1000) + " s)";
  }, 1000);
})();
