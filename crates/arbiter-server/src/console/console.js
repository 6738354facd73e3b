// Arbiter console: small, optional enhancements. Every page works without it.
(function () {
  "use strict";
  // SLA countdowns: elements with data-deadline tick every second from the
  // server's time at rendering (data-now), on the browser's monotonic clock:
  // the browser's own date may be hours off. data-frozen: the server's clock
  // is simulated and stands still, so the countdown does too.
  function tick() {
    var t = performance.now();
    document.querySelectorAll("[data-deadline][data-now]").forEach(function (el) {
      if (el.arbiterSeen === undefined) el.arbiterSeen = t;
      var elapsed = el.hasAttribute("data-frozen") ? 0 : t - el.arbiterSeen;
      var left = Number(el.getAttribute("data-deadline")) - Number(el.getAttribute("data-now")) - elapsed;
      var s = Math.abs(Math.round(left / 1000));
      var text = (s >= 3600 ? Math.floor(s / 3600) + "h" + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m" : s >= 60 ? Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s" : s + "s");
      el.textContent = left < 0 ? "overdue " + text : text;
      el.classList.toggle("overdue", left < 0);
    });
  }
  // The queue refreshes itself every 5 seconds (the server renders the rows).
  function refreshQueue() {
    var body = document.getElementById("queue-rows");
    if (!body || document.activeElement && document.activeElement.closest && document.activeElement.closest("#queue-rows") && document.hidden) return;
    fetch("/queue?rows=1", { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) return;
        var focused = document.activeElement && document.activeElement.getAttribute("data-case");
        var tmpl = document.createElement("template");
        tmpl.innerHTML = html; // server-rendered and escaped
        body.replaceChildren(tmpl.content);
        localTimes(body);
        if (focused) {
          var again = body.querySelector('[data-case="' + CSS.escape(focused) + '"]');
          if (again) again.focus();
        }
        tick();
      })
      .catch(function () {});
  }
  // Keyboard on a case: a approves, r rejects, m modifies; the rationale
  // field takes the focus (the answer is still submitted by the person).
  document.addEventListener("keydown", function (e) {
    if (e.target && /^(INPUT|TEXTAREA|SELECT)$/.test(e.target.tagName)) return;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    var choice = { a: "approve", r: "reject", m: "modify" }[e.key];
    var radio = choice && document.querySelector('input[name=decision][value="' + choice + '"]');
    if (!radio) return;
    radio.checked = true;
    radio.dispatchEvent(new Event("change", { bubbles: true }));
    var why = document.getElementById(choice === "modify" ? "args" : "rationale");
    if (why) why.focus();
    e.preventDefault();
  });
  // Keyboard: j/k move through the queue, Enter opens (native on links).
  document.addEventListener("keydown", function (e) {
    if (e.target && /^(INPUT|TEXTAREA|SELECT)$/.test(e.target.tagName)) return;
    var links = Array.prototype.slice.call(document.querySelectorAll("#queue-rows a[data-case]"));
    if (!links.length) return;
    var i = links.indexOf(document.activeElement);
    if (e.key === "j") { links[Math.min(i + 1, links.length - 1)].focus(); e.preventDefault(); }
    if (e.key === "k") { links[Math.max(i - 1, 0)].focus(); e.preventDefault(); }
  });
  // Show the arguments editor only for "modify".
  document.addEventListener("change", function (e) {
    if (e.target && e.target.name === "decision") {
      var box = document.getElementById("modify-args");
      if (box) box.hidden = e.target.value !== "modify";
    }
  });
  // Times: the page says UTC; show them in the reader's time zone, the UTC value on hover.
  function localTimes(root) {
    (root || document).querySelectorAll("time[datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (isNaN(d)) return;
      el.textContent = d.toLocaleString(undefined, { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    localTimes();
    tick();
    setInterval(tick, 1000);
    if (document.getElementById("queue-rows")) setInterval(refreshQueue, 5000);
    var first = document.querySelector("#queue-rows a[data-case]");
    if (first && document.activeElement === document.body) first.focus();
    var sel = document.querySelector("input[name=decision]:checked");
    var box = document.getElementById("modify-args");
    if (box && sel) box.hidden = sel.value !== "modify";
  });
})();
