/* Homewatch alert board: ageing timers, title/favicon badge, the duty sound, the
   live-connection banner, and replay of missed alerts after a reconnect. */
(function () {
  "use strict";
  var body = document.body;
  var countdown = document.getElementById("countdown");
  if (countdown) {
    // The escalation's next step, counted down against the server's clock.
    var offset = Number(body.dataset.nowMs) - Date.now();
    var words = document.getElementById("texts").dataset;
    window.setInterval(function () {
      var s = Math.max(0, Math.floor((Number(countdown.dataset.nextMs) - Date.now() - offset) / 1000));
      countdown.textContent = Math.floor(s / 60) + " " + words.minutes + " " + (s % 60) + " " + words.seconds;
    }, 1000);
  }
  if (body.dataset.page !== "board") { return; }
  var texts = document.getElementById("texts").dataset;
  var skew = Number(body.dataset.nowMs) - Date.now();
  var amber = Number(body.dataset.amber) * 1000;
  var red = Number(body.dataset.red) * 1000;
  var lastId = Number(body.dataset.lastId || 0);
  var lastMessageAt = Date.now();
  var lostAt = null;
  var audio = null;
  var dutyOn = false;
  var lastBeep = 0;

  // A reconnect made by the htmx extension opens a fresh EventSource, which sends no
  // Last-Event-ID: carry the newest id we saw in the URL instead.
  if (window.htmx) {
    window.htmx.createEventSource = function (url) {
      var fresh = url.replace(/([?&])after=\d*/, "$1after=" + lastId);
      return new EventSource(fresh, { withCredentials: true });
    };
  }

  function duration(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    s = s % 60;
    if (d) { return d + " " + texts.days + " " + h + " " + texts.hours; }
    if (h) { return h + " " + texts.hours + " " + m + " " + texts.minutes; }
    if (m) { return m + " " + texts.minutes + " " + s + " " + texts.seconds; }
    return s + " " + texts.seconds;
  }

  function openRows() { return document.querySelectorAll('.alert-row[data-status="open"]'); }

  function tick() {
    var now = Date.now() + skew;
    openRows().forEach(function (row) {
      var waited = now - Number(row.dataset.raisedMs);
      var label = row.querySelector(".age");
      if (label) { label.textContent = texts.unanswered + " " + duration(waited); }
      row.classList.toggle("age-red", waited >= red);
      row.classList.toggle("age-amber", waited >= amber && waited < red);
    });
    badge();
    liveWatch();
    ring();
  }

  function badge() {
    var n = openRows().length;
    document.title = (n ? "(" + n + ") " : "") + texts.title;
    var icon = document.getElementById("favicon");
    var svg = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><circle cx="16" cy="16" r="15" fill="' +
      (n ? "#c4001d" : "#1d6b2f") + '"/><text x="16" y="22" font-size="18" text-anchor="middle" fill="#fff" font-family="sans-serif">' +
      (n > 9 ? "9+" : n) + "</text></svg>";
    var href = "data:image/svg+xml," + encodeURIComponent(svg);
    if (icon.getAttribute("href") !== href) { icon.setAttribute("href", href); }
  }

  // ---- live connection -------------------------------------------------------------
  var banner = document.getElementById("live-banner");
  var seconds = document.getElementById("lost-seconds");
  function markLost(since) {
    if (lostAt === null) { lostAt = since; }
  }
  function liveWatch() {
    // The server sends something at least every 5 s; silence for 12 s is a dead link
    // even when the browser has not noticed yet.
    if (Date.now() - lastMessageAt > 12000) { markLost(lastMessageAt); }
    if (lostAt === null) { banner.hidden = true; return; }
    banner.hidden = false;
    seconds.textContent = Math.floor((Date.now() - lostAt) / 1000);
  }
  body.addEventListener("htmx:sseError", function () { markLost(Date.now()); liveWatch(); });
  body.addEventListener("htmx:sseOpen", function () { lastMessageAt = Date.now(); lostAt = null; liveWatch(); });
  body.addEventListener("htmx:sseMessage", function (event) {
    lastMessageAt = Date.now();
    lostAt = null;
    var message = event.detail;
    if (message && message.type === "alert" && message.lastEventId) {
      lastId = Math.max(lastId, Number(message.lastEventId));
      var log = document.getElementById("announce");
      while (log.children.length > 5) { log.removeChild(log.lastElementChild); }
    }
    tick();
  });

  // ---- sound -----------------------------------------------------------------------
  // One pattern per severity, repeated until every alert of it is taken.
  var patterns = {
    emergency: { every: 2500, beeps: [[988, 0, 0.18], [988, 0.25, 0.18], [988, 0.5, 0.18]] },
    wellbeing: { every: 6000, beeps: [[660, 0, 0.3], [523, 0.4, 0.3]] },
    technical: { every: 20000, beeps: [[440, 0, 0.25]] }
  };
  function ensureAudio() {
    if (!audio) {
      var Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) { return null; }
      audio = new Ctx();
    }
    if (audio.state === "suspended") { audio.resume(); }
    return audio;
  }
  function play(severity) {
    var ctx = ensureAudio();
    body.dataset.lastSound = severity;
    if (!ctx) { return; }
    patterns[severity].beeps.forEach(function (b) {
      var osc = ctx.createOscillator(), gain = ctx.createGain();
      osc.frequency.value = b[0];
      osc.type = "square";
      gain.gain.value = 0.2;
      osc.connect(gain); gain.connect(ctx.destination);
      osc.start(ctx.currentTime + b[1]); osc.stop(ctx.currentTime + b[1] + b[2]);
    });
  }
  function worstOpen() {
    var order = ["emergency", "wellbeing", "technical"];
    var groups = Array.prototype.map.call(openRows(), function (row) { return row.dataset.group; });
    for (var i = 0; i < order.length; i++) { if (groups.indexOf(order[i]) >= 0) { return order[i]; } }
    return null;
  }
  function ring() {
    var worst = worstOpen();
    body.dataset.ringing = dutyOn && worst ? worst : "";
    if (!dutyOn || !worst) { return; }
    if (Date.now() - lastBeep >= patterns[worst].every) { lastBeep = Date.now(); play(worst); }
  }
  document.getElementById("start-duty").addEventListener("click", function () {
    ensureAudio();
    dutyOn = true;
    this.hidden = true;
    document.getElementById("duty-on").hidden = false;
    tick();
  });
  document.getElementById("test-sound").addEventListener("click", function () { play("emergency"); });

  tick();
  window.setInterval(tick, 1000);
})();
