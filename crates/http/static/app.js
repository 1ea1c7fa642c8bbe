// Carteiro dashboard: the few things a page needs a script for. Everything
// works without it (forms post, links navigate); it adds the account
// switcher's auto-submit, confirmations before destructive posts and the
// charts (uPlot, vendored).
"use strict";
(function () {
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });
  });

  var data = document.getElementById("chart-data");
  if (!data) return;
  function draw() {
    if (typeof uPlot === "undefined") return;
    var chart = JSON.parse(data.textContent);
    var colors = ["#1f5fbf", "#16803c", "#e59a1d", "#b42318", "#7a3db8", "#0e8a8a"];
    var daily = chart.bucket >= 86400;
    document.querySelectorAll(".chart[data-series]").forEach(function (el) {
      var series = chart[el.getAttribute("data-series")] || [];
      var make = function () {
        el.textContent = "";
        var opts = {
          width: Math.max(el.clientWidth, 280),
          height: 260,
          tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
          scales: {
            x: { time: true },
            // Counts: from zero, and a scale of a few units when all are zero.
            y: { range: function (u, min, max) { return [0, Math.max(max, 4) * 1.1]; } }
          },
          axes: [{ grid: { stroke: "#eef1f5" } }, { grid: { stroke: "#eef1f5" }, size: 50 }],
          cursor: { drag: { x: false, y: false } },
          series: [{ value: daily ? "{YYYY}-{MM}-{DD}" : "{YYYY}-{MM}-{DD} {HH}:00" }].concat(series.map(function (s, i) {
            return { label: s.label, stroke: colors[i % colors.length], width: 2, points: { size: 5 } };
          }))
        };
        var values = [chart.t].concat(series.map(function (s) { return s.values; }));
        el.uplot = new uPlot(opts, values, el);
      };
      make();
      var width = el.clientWidth;
      window.addEventListener("resize", function () {
        if (Math.abs(el.clientWidth - width) > 20) { width = el.clientWidth; make(); }
      });
    });
    document.body.setAttribute("data-charts", "drawn");
  }
  if (document.readyState === "complete") draw(); else window.addEventListener("load", draw);
})();
