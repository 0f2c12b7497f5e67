/* A device's last 24 hours of valid readings as an ECharts line (vendored echarts.min.js). */
(function () {
  "use strict";
  function start() {
    const el = document.getElementById("sparkline");
    if (!el || !window.echarts) return;
    const series = JSON.parse(el.dataset.series || "[]");
    if (!series.length) {
      el.textContent = el.dataset.empty || "近24小时没有有效读数 / no valid readings in the last 24 h";
      el.dataset.ready = "0";
      return;
    }
    const chart = echarts.init(el);
    chart.setOption({
      animation: false,
      grid: { left: 40, right: 12, top: 12, bottom: 28 },
      tooltip: { trigger: "axis" },
      xAxis: { type: "time" },
      yAxis: { type: "value", scale: true, name: el.dataset.unit || "" },
      series: [{ type: "line", showSymbol: false, data: series, lineStyle: { width: 1.5, color: "#1e5aa8" }, areaStyle: { opacity: 0.08 } }],
    });
    window.addEventListener("resize", () => chart.resize());
    el.dataset.ready = String(series.length);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
