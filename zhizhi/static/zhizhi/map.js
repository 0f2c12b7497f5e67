/* The map page: grid polygons coloured by community and building points on a blank background
   (a tile layer only when ZHIZHI_TILE_URL is set). Clicking a grid loads its panel through htmx. */
(function () {
  "use strict";
  const PALETTE = ["#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2", "#65a30d", "#db2777", "#4f46e5", "#ca8a04"];
  function start() {
    const el = document.getElementById("map");
    if (!el || !window.L) return;
    const map = L.map(el, { zoomSnap: 0.25 });
    window.zhizhiMap = map;
    if (el.dataset.tiles) {
      L.tileLayer(el.dataset.tiles, { maxZoom: 19 }).addTo(map);
    }
    const colours = {};
    function colourFor(code) {
      if (!(code in colours)) colours[code] = PALETTE[Object.keys(colours).length % PALETTE.length];
      return colours[code];
    }
    let selected = null;
    Promise.all([fetch(el.dataset.grids).then((r) => r.json()), fetch(el.dataset.buildings).then((r) => r.json())]).then(
      ([grids, buildings]) => {
        const gridLayer = L.geoJSON(grids, {
          style: (f) => ({ color: colourFor(f.properties.community_code), weight: 1, fillOpacity: 0.25 }),
          onEachFeature: (f, layer) => {
            layer.bindTooltip(f.properties.name + " · " + f.properties.community);
            layer.on("click", () => {
              if (selected) gridLayer.resetStyle(selected);
              selected = layer;
              layer.setStyle({ weight: 3, fillOpacity: 0.45 });
              htmx.ajax("GET", f.properties.panel, { target: "#grid-panel", swap: "innerHTML" });
            });
          },
        }).addTo(map);
        L.geoJSON(buildings, {
          pointToLayer: (f, latlng) => L.circleMarker(latlng, { radius: 4, color: "#1f2933", weight: 1, fillColor: "#fff", fillOpacity: 1 }),
          onEachFeature: (f, layer) => layer.bindPopup('<a href="' + f.properties.url + '">' + f.properties.name + "</a><br>" + f.properties.code),
        }).addTo(map);
        const bounds = gridLayer.getBounds();
        if (bounds.isValid()) map.fitBounds(bounds, { padding: [10, 10] });
        else map.setView([30.3, 120.1], 13);
        el.dataset.ready = String(grids.features.length);
      }
    );
  }
  // The small map on a region's or a building's detail page.
  function mini() {
    const el = document.getElementById("mini-map");
    if (!el || !window.L) return;
    const map = L.map(el, { scrollWheelZoom: false, attributionControl: false });
    if (el.dataset.tiles) L.tileLayer(el.dataset.tiles, { maxZoom: 19 }).addTo(map);
    const shape = JSON.parse(el.dataset.shape);
    if (shape.type === "Point") {
      const [lng, lat] = shape.coordinates;
      L.circleMarker([lat, lng], { radius: 7, color: "#1e5aa8", fillOpacity: 0.8 }).addTo(map);
      map.setView([lat, lng], 17);
    } else {
      const layer = L.geoJSON(shape, { style: { color: "#1e5aa8", weight: 2, fillOpacity: 0.15 } }).addTo(map);
      map.fitBounds(layer.getBounds(), { padding: [8, 8] });
    }
    el.dataset.ready = "1";
  }
  function boot() {
    start();
    mini();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
