// The board, live: "updated N s ago", a new board when a new evaluation is published.
// Nothing here asks anything of anyone but this service.
(function () {
  "use strict";
  var body = document.body;
  var fa = body.dataset.lang === "fa";
  var latin = body.dataset.latin === "1";
  var refresh = (parseFloat(body.dataset.refresh) || 15) * 1000;
  function digits(text) {
    if (!fa || latin) return text;
    return String(text).replace(/[0-9]/g, function (d) { return "۰۱۲۳۴۵۶۷۸۹"[d]; });
  }
  function ago(seconds) {
    var s = Math.max(0, Math.round(seconds));
    var t = s < 60 ? s + (fa ? " ثانیه" : " s") : s < 3600 ? Math.floor(s / 60) + (fa ? " دقیقه" : " min")
      : Math.floor(s / 3600) + (fa ? " ساعت" : " h");
    return digits(fa ? t + " پیش" : t + " ago");
  }
  function tick() {
    var el = document.getElementById("ago");
    if (!el) return;
    var age = Date.now() / 1000 - parseFloat(el.dataset.at);
    el.textContent = ago(age);
    var staleAfter = parseFloat(body.dataset.staleAfter) || 120;
    el.classList.toggle("stale", age > staleAfter);
    if (age > staleAfter && !document.getElementById("health")) {
      var b = document.createElement("div");
      b.id = "health"; b.className = "banner health-stale"; b.setAttribute("role", "alert");
      b.dataset.health = "stale";
      b.textContent = fa ? "⚠ داده‌ها کهنه‌اند: ارزیابی تازه‌ای نرسیده است." : "⚠ The data is stale: no new evaluation.";
      var header = document.querySelector("header");
      header.parentNode.insertBefore(b, header.nextSibling);
    }
  }
  function swap() {
    fetch(location.href, {headers: {"Accept": "text/html"}, cache: "no-store"}).then(function (r) {
      return r.ok ? r.text() : null;
    }).then(function (text) {
      if (!text) return;
      var doc = new DOMParser().parseFromString(text, "text/html");
      var fresh = doc.getElementById("board");
      if (!fresh) return;
      document.getElementById("board").replaceWith(fresh);
      body.dataset.evaluated = doc.body.dataset.evaluated;
      tick();
    }).catch(function () {});
  }
  function poll() {
    fetch("/api/v1/summary", {cache: "no-store"}).then(function (r) { return r.ok ? r.json() : null; })
      .then(function (doc) {
        if (!doc || !doc.evaluated_at) return;
        var at = Date.parse(doc.evaluated_at) / 1000;
        if (Math.abs(at - parseFloat(body.dataset.evaluated || "0")) > 0.5) swap();
      }).catch(function () {});
  }
  // Open remediation actions (GET /api/v1/actions), by site; a county's action shows on each of its sites. Text
  // from the API is set as text, never as markup.
  function actionLine(a, lateWord) {
    var span = document.createElement("span");
    span.className = a.overdue ? "action late" : "action";
    span.dataset.action = a.id;
    var id = document.createElement("b");
    id.dir = "ltr"; id.textContent = a.id;
    span.appendChild(id);
    span.appendChild(document.createTextNode(" " + a.owner + " — " + (a.note || a.id) + " (" + a.due_text + ")"));
    if (a.overdue && lateWord) {
      var late = document.createElement("b");
      late.className = "overdue"; late.textContent = lateWord;
      span.appendChild(document.createTextNode(" ")); span.appendChild(late);
    }
    return span;
  }
  function owners() {
    var cells = document.querySelectorAll("[data-owner-for]");
    if (!cells.length) return;
    fetch("/api/v1/actions?state=open", {cache: "no-store"}).then(function (r) { return r.ok ? r.json() : null; })
      .then(function (doc) {
        var list = doc && doc.actions;
        if (!Array.isArray(list)) return;
        var bySite = {}, byCounty = {};
        list.forEach(function (a) {
          if (!a || a.state !== "open") return;
          if (a.site) (bySite[a.site] = bySite[a.site] || []).push(a);
          else if (a.county) (byCounty[a.county] = byCounty[a.county] || []).push(a);
        });
        cells.forEach(function (cell) {
          var row = cell.closest("[data-county]");
          var county = row ? row.dataset.county : "";
          var got = (bySite[cell.dataset.ownerFor] || []).concat(byCounty[county] || []);
          var target = cell.querySelector(".acts");
          if (!target) {  // the site page: one line of text
            cell.textContent = got.map(function (a) {
              return a.owner + " — " + (a.note || a.id) + " (" + a.due_text + ")";
            }).join("; ");
            return;
          }
          target.replaceChildren.apply(target, got.map(function (a) { return actionLine(a, cell.dataset.late); }));
        });
      }).catch(function () {});
  }
  tick(); owners();
  setInterval(tick, 1000);
  setInterval(poll, refresh);
  setInterval(owners, refresh);  // an action opened or closed shows without waiting for an evaluation
})();
