// The enterprise page's revenue and tax chart (data from the json_script block "ent-series").
(function () {
  function draw() {
    var el = document.getElementById("ent-chart");
    var data = document.getElementById("ent-series");
    if (!el || !data || !window.echarts) return;
    var s = JSON.parse(data.textContent);
    var en = document.documentElement.lang === "en";
    var chart = window.echarts.init(el);
    chart.setOption({
      tooltip: { trigger: "axis" },
      legend: { data: [en ? "Revenue" : "营收", en ? "Tax" : "纳税"] },
      grid: { left: 48, right: 48, top: 32, bottom: 28 },
      xAxis: { type: "category", data: s.months },
      yAxis: [{ type: "value", name: en ? "Revenue" : "营收" }, { type: "value", name: en ? "Tax" : "纳税" }],
      series: [
        { name: en ? "Revenue" : "营收", type: "line", smooth: true, data: s.revenue },
        {
          name: en ? "Tax" : "纳税", type: "bar", yAxisIndex: 1,
          // A month whose tax went elsewhere is drawn grey.
          data: s.tax.map(function (v, i) { return { value: v, itemStyle: s.here[i] ? {} : { color: "#bbb" } }; })
        }
      ]
    });
    window.addEventListener("resize", function () { chart.resize(); });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
