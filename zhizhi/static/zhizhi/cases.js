/* Case workbenches: the grid worker's task map and GPS, and the KPI charts. Everything it needs is
   in the page (json_script blocks); nothing is loaded from outside the server. */
(function () {
  "use strict";

  // The phone page: task markers on a blank background (a tile layer only when ZHIZHI_TILE_URL is set).
  function taskMap() {
    const el = document.getElementById("task-map");
    const data = document.getElementById("task-markers");
    if (!el || !data || !window.L) return;
    const markers = JSON.parse(data.textContent);
    const map = L.map(el, { attributionControl: false });
    if (el.dataset.tiles) L.tileLayer(el.dataset.tiles, { maxZoom: 19 }).addTo(map);
    const points = [];
    markers.forEach((m) => {
      const marker = L.circleMarker([m.lat, m.lng], { radius: 8, color: "#b42318", weight: 2, fillColor: "#fff", fillOpacity: 1 });
      const link = document.createElement("a");
      link.href = m.url;
      link.textContent = m.number + " " + m.title;
      marker.bindPopup(link).addTo(map);
      points.push([m.lat, m.lng]);
    });
    if (points.length) map.fitBounds(points, { padding: [24, 24], maxZoom: 17 });
    else map.setView([30.3, 120.1], 13);
    // The worker's grids as the background (the same scoped GeoJSON as the map page).
    if (el.dataset.grids) {
      fetch(el.dataset.grids)
        .then((r) => r.json())
        .then((grids) => {
          const layer = L.geoJSON(grids, { style: { color: "#1e5aa8", weight: 1, fillOpacity: 0.08 }, interactive: false }).addTo(map);
          layer.bringToBack();
          if (!points.length && layer.getBounds().isValid()) map.fitBounds(layer.getBounds());
        })
        .catch(() => {});
    }
    el.dataset.ready = String(points.length);
  }

  // Fill every hidden lng/lat pair with the browser's position (WGS-84), if the user allows it.
  function gps() {
    const fields = document.querySelectorAll(".gps-lng");
    const status = document.getElementById("gps-status");
    if (!fields.length || !navigator.geolocation) {
      if (status) status.textContent = "无法获取位置 / location unavailable";
      return;
    }
    navigator.geolocation.getCurrentPosition(
      (pos) => {
        document.querySelectorAll(".gps-lng").forEach((f) => (f.value = pos.coords.longitude.toFixed(6)));
        document.querySelectorAll(".gps-lat").forEach((f) => (f.value = pos.coords.latitude.toFixed(6)));
        if (status) {
          status.textContent = "已定位 " + pos.coords.longitude.toFixed(5) + ", " + pos.coords.latitude.toFixed(5);
          status.dataset.ready = "1";
        }
      },
      () => {
        if (status) status.textContent = "未获得定位授权，办结时不附位置 / no location permission";
      },
      { enableHighAccuracy: true, timeout: 10000, maximumAge: 60000 }
    );
  }

  function charts() {
    const data = document.getElementById("kpi-charts");
    if (!data || !window.echarts) return;
    const c = JSON.parse(data.textContent);
    const units = document.getElementById("chart-units");
    if (units) {
      echarts.init(units).setOption({
        tooltip: { trigger: "axis" },
        legend: { data: ["受理数", "结案数", "按期结案率%"] },
        grid: { left: 40, right: 40, bottom: 80 },
        xAxis: { type: "category", data: c.units.names, axisLabel: { rotate: 30 } },
        yAxis: [{ type: "value" }, { type: "value", max: 100, axisLabel: { formatter: "{value}%" } }],
        series: [
          { name: "受理数", type: "bar", data: c.units.accepted },
          { name: "结案数", type: "bar", data: c.units.closed },
          { name: "按期结案率%", type: "line", yAxisIndex: 1, data: c.units.on_time },
        ],
      });
      units.dataset.ready = "1";
    }
    const trend = document.getElementById("chart-trend");
    if (trend) {
      echarts.init(trend).setOption({
        tooltip: { trigger: "axis" },
        legend: { data: ["受理数", "结案数", "结案率%", "按期结案率%"] },
        grid: { left: 40, right: 40 },
        xAxis: { type: "category", data: c.trend.months },
        yAxis: [{ type: "value" }, { type: "value", max: 100, axisLabel: { formatter: "{value}%" } }],
        series: [
          { name: "受理数", type: "bar", data: c.trend.accepted },
          { name: "结案数", type: "bar", data: c.trend.closed },
          { name: "结案率%", type: "line", yAxisIndex: 1, data: c.trend.close_rate },
          { name: "按期结案率%", type: "line", yAxisIndex: 1, data: c.trend.on_time_rate },
        ],
      });
      trend.dataset.ready = "1";
    }
  }

  function boot() {
    taskMap();
    gps();
    charts();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
