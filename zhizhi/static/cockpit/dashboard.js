/* The role dashboards: small 30-day trend lines (ECharts) for the indicators that carry data-trend. */
(function () {
  "use strict";
  function draw(node) {
    fetch(node.dataset.trend, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : []))
      .then((rows) => {
        const chart = echarts.init(node, null, { renderer: "canvas" });
        chart.setOption({
          grid: { left: 40, right: 8, top: 8, bottom: 20 },
          tooltip: { trigger: "axis" },
          xAxis: { type: "category", data: rows.map((r) => r.day.slice(5)), boundaryGap: false },
          yAxis: { type: "value", scale: true },
          series: [{ type: "line", name: node.dataset.name, data: rows.map((r) => r.value), smooth: true, showSymbol: false, areaStyle: { opacity: 0.12 } }],
        });
        window.addEventListener("resize", () => chart.resize());
        node.dataset.points = String(rows.length);
      });
  }
  function boot() {
    if (!window.echarts) return;
    document.querySelectorAll(".db-chart[data-trend]").forEach(draw);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
