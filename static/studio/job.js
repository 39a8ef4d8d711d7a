// Job page: follow the job's event stream and show its text as the model writes it. A refresh replays the
// stream from its start, and EventSource reconnects by itself with Last-Event-ID, so the text shown is
// always everything so far, without a gap or a repeat. Text is set with textContent: model output is never
// parsed as HTML here; the final, sanitised rendering comes from the server when the page reloads at the end.
// Candidates the checks refuse (`discard`) are greyed with the reason while others are re-written unseen
// (`status`), and the token counter follows those rounds too (`progress`). Labels come from #job's data-*.
(function () {
  "use strict";
  var box = document.getElementById("job");
  if (!box || !window.EventSource) return;
  var source = new EventSource(box.dataset.eventsUrl);

  // Cancelled while running: wait for the worker to save what was written, then show it. An end that comes
  // from the database (id db-end) means no worker will: reloading would only ask again.
  if (box.dataset.status === "cancelled") {
    var settled = function (e) {
      source.close();
      if (e.data && (e.lastEventId || "").indexOf("db-") !== 0) window.location.reload();
    };
    source.addEventListener("done", settled);
    source.addEventListener("error", settled);
    return;
  }

  var live = document.getElementById("job-live");
  var statusEl = document.getElementById("job-status");
  var queueEl = document.getElementById("queue-note");
  var noticeEl = document.getElementById("job-notice");
  var tokensEl = document.getElementById("job-tokens");
  var elapsedEl = document.getElementById("job-elapsed");
  var started = Date.now();
  var texts = {}, tokens = {}, counted = 0, running = false;

  function setRunning() {
    if (running) return;
    running = true;
    statusEl.textContent = box.dataset.labelRunning;
    statusEl.className = "badge status-running";
    queueEl.textContent = box.dataset.labelWriting;
  }

  // One live candidate: a note (why it was refused, when it was) above its text.
  function candidate(index) {
    var el = document.getElementById("live-" + index);
    if (!el) {
      el = document.createElement("div");
      el.id = "live-" + index;
      el.className = "output prose live";
      var note = document.createElement("p");
      note.className = "muted discard-note";
      note.hidden = true;
      el.appendChild(note);
      el.appendChild(document.createElement("div"));
      live.appendChild(el);
    }
    return el;
  }

  function show(index, text) {
    texts[index] = text;
    candidate(index).lastChild.textContent = text;
    setRunning();
  }

  function mark(index, reason) {
    var el = candidate(index);
    el.classList.toggle("muted", !!reason);
    el.firstChild.hidden = !reason;
    el.firstChild.textContent = reason ? box.dataset.labelDiscarded.replace("%(reason)s", reason) : "";
  }

  function showTokens() {
    var total = 0;
    for (var k in tokens) total += tokens[k];
    total = Math.max(total, counted);
    if (total) tokensEl.textContent = "· " + total + " " + box.dataset.labelTokens;
  }

  source.addEventListener("delta", function (e) {
    var d = JSON.parse(e.data);
    show(d.index, (texts[d.index] || "") + d.text);
    if (d.tokens) { tokens[d.index] = d.tokens; showTokens(); }
  });
  source.addEventListener("replace", function (e) {
    var d = JSON.parse(e.data);
    show(d.index, d.text);
    mark(d.index, "");  // a final text in its place
  });
  source.addEventListener("discard", function (e) {
    var d = JSON.parse(e.data);
    mark(d.index, d.reason);
  });
  source.addEventListener("status", function (e) {
    var d = JSON.parse(e.data);
    setRunning();
    if (d.phase === "resampling") {
      queueEl.textContent = box.dataset.labelResampling.replace("%(n)s", d.missing).replace("%(total)s", d.want);
    }
  });
  source.addEventListener("progress", function (e) {
    var d = JSON.parse(e.data);
    counted = Math.max(counted, d.tokens || 0);
    showTokens();
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
