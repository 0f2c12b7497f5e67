/* Devices and active alarms on the map page (/map/): two toggleable layers over zhizhi/map.js's map.
   Devices are coloured by state; alarms by severity. Users without alert access get no layers. */
(function () {
  "use strict";
  const STATE_COLOURS = { alarm: "#b42318", online: "#16a34a", offline: "#d97706", never: "#9aa5b1", disabled: "#616e7c" };
  const SEVERITY_COLOURS = { info: "#607d8b", minor: "#ca8a04", major: "#ea580c", critical: "#b42318" };
  function esc(text) {
    const div = document.createElement("div");
    div.textContent = text == null ? "" : String(text);
    return div.innerHTML;
  }
  function start() {
    const me = document.getElementById("alerts-map-layer");
    const map = window.zhizhiMap;
    if (!me || !map || !window.L) return;
    const get = (url) => fetch(url, { credentials: "same-origin" }).then((r) => (r.ok ? r.json() : null));
    Promise.all([get(me.dataset.devices), get(me.dataset.alarms)]).then(([devices, alarms]) => {
      if (!devices || !alarms) return;
      const deviceLayer = L.geoJSON(devices, {
        pointToLayer: (f, latlng) =>
          L.circleMarker(latlng, { radius: 6, color: "#fff", weight: 1.5, fillColor: STATE_COLOURS[f.properties.state] || "#616e7c", fillOpacity: 0.95 }),
        onEachFeature: (f, layer) =>
          layer.bindPopup('<a href="' + esc(f.properties.url) + '">' + esc(f.properties.name) + "</a><br>" + esc(f.properties.kind_label) +
            " · " + esc(f.properties.last_value == null ? "—" : f.properties.last_value) + " " + esc(f.properties.unit)),
      }).addTo(map);
      const alarmLayer = L.geoJSON(alarms, {
        pointToLayer: (f, latlng) =>
          L.circleMarker(latlng, { radius: 11, color: SEVERITY_COLOURS[f.properties.severity] || "#b42318", weight: 3, fill: false, dashArray: f.properties.acknowledged ? "4 3" : null }),
        onEachFeature: (f, layer) =>
          layer.bindPopup('<a href="' + esc(f.properties.url) + '">' + esc(f.properties.title) + "</a><br>" + esc(f.properties.severity_label)),
      }).addTo(map);
      L.control.layers(null, { "设备 Devices": deviceLayer, "告警 Alarms": alarmLayer }, { collapsed: false }).addTo(map);
      me.dataset.ready = devices.features.length + "/" + alarms.features.length;
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
