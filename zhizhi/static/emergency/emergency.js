/* Emergency mode in the browser (no tiles needed: a blank background unless a tile URL is set).
   - Declare page: pick buildings, click a centre for a radius, or draw a polygon, on the grid map.
   - Board: the area, buildings coloured by progress, cameras opening a panel with one click; the
     counts, the per-building progress and the help list follow the live stream (SSE), no reload;
     the clock counts the golden ten minutes from the declaration. */
(function () {
  "use strict";

  function blankMap(el) {
    const map = L.map(el, { zoomSnap: 0.25, doubleClickZoom: false });
    if (el.dataset.tiles) L.tileLayer(el.dataset.tiles, { maxZoom: 19 }).addTo(map);
    return map;
  }

  // --- declare -------------------------------------------------------------------------------------
  function declarePage() {
    const el = document.getElementById("declare-map");
    if (!el || !window.L) return;
    const form = document.getElementById("declare-form");
    const map = blankMap(el);
    window.emergencyMap = map;
    const ids = document.getElementById("building-ids");
    const lngIn = document.getElementById("center-lng");
    const latIn = document.getElementById("center-lat");
    const radiusIn = document.getElementById("radius-m");
    const polyIn = document.getElementById("polygon");
    const picked = new Set(ids.value.split(",").map((s) => s.trim()).filter(Boolean));
    const markers = {};
    let circle = null;
    let vertices = [];
    let drawn = null;

    function mode() {
      const checked = form.querySelector("input[name=area_mode]:checked");
      return checked ? checked.value : "buildings";
    }
    function showMode() {
      form.querySelectorAll(".mode-help").forEach((d) => (d.hidden = d.dataset.mode !== mode()));
    }
    function paintBuilding(id) {
      const m = markers[id];
      if (!m) return;
      const on = picked.has(String(id));
      m.setStyle({ fillColor: on ? "#b42318" : "#fff", radius: on ? 7 : 5, color: on ? "#b42318" : "#1f2933" });
    }
    function syncPicked() {
      ids.value = Array.from(picked).join(",");
      document.getElementById("picked-count").textContent = picked.size ? picked.size + " 幢" : "";
    }
    function drawCircle() {
      if (circle) map.removeLayer(circle);
      circle = null;
      const lng = parseFloat(lngIn.value), lat = parseFloat(latIn.value), r = parseFloat(radiusIn.value);
      if (isFinite(lng) && isFinite(lat) && isFinite(r) && r > 0 && r < 100000) {
        circle = L.circle([lat, lng], { radius: r, color: "#b42318", weight: 2, fillOpacity: 0.12 }).addTo(map);
      }
    }
    function drawPolygon(closed) {
      if (drawn) map.removeLayer(drawn);
      drawn = null;
      if (!vertices.length) return;
      const latlngs = vertices.map(([lng, lat]) => [lat, lng]);
      drawn = closed
        ? L.polygon(latlngs, { color: "#b42318", weight: 2, fillOpacity: 0.12 }).addTo(map)
        : L.polyline(latlngs, { color: "#b42318", weight: 2, dashArray: "4 4" }).addTo(map);
    }
    function closePolygon() {
      if (vertices.length < 3) return;
      const ring = vertices.concat([vertices[0]]);
      polyIn.value = JSON.stringify({ type: "Polygon", coordinates: [ring] });
      drawPolygon(true);
    }

    form.querySelectorAll("input[name=area_mode]").forEach((r) => r.addEventListener("change", showMode));
    radiusIn.addEventListener("input", drawCircle);
    lngIn.addEventListener("input", drawCircle);
    latIn.addEventListener("input", drawCircle);
    document.getElementById("polygon-close").addEventListener("click", closePolygon);
    document.getElementById("polygon-clear").addEventListener("click", () => {
      vertices = [];
      polyIn.value = "";
      drawPolygon(false);
    });
    map.on("click", (e) => {
      const lng = +e.latlng.lng.toFixed(6), lat = +e.latlng.lat.toFixed(6);
      if (mode() === "radius") {
        lngIn.value = lng;
        latIn.value = lat;
        drawCircle();
      } else if (mode() === "polygon") {
        vertices.push([lng, lat]);
        polyIn.value = "";
        drawPolygon(false);
      }
    });
    showMode();
    Promise.all([fetch(el.dataset.grids).then((r) => r.json()), fetch(el.dataset.buildings).then((r) => r.json())]).then(
      ([grids, buildings]) => {
        const gridLayer = L.geoJSON(grids, {
          style: { color: "#1e5aa8", weight: 1, fillOpacity: 0.05 },
          onEachFeature: (f, layer) => layer.bindTooltip(f.properties.name + " · " + f.properties.community),
        });
        const bounds = gridLayer.getBounds();
        if (bounds.isValid()) map.fitBounds(bounds, { padding: [10, 10] });
        else map.setView([30.3, 120.1], 14);
        gridLayer.addTo(map);
        // Clicks on grids pass through to the map (radius centre, polygon vertex).
        gridLayer.eachLayer((l) => l.on("click", (e) => map.fire("click", e)));
        L.geoJSON(buildings, {
          pointToLayer: (f, latlng) => {
            const m = L.circleMarker(latlng, { radius: 5, color: "#1f2933", weight: 1, fillColor: "#fff", fillOpacity: 1 });
            markers[f.properties.id] = m;
            m.bindTooltip(f.properties.name + " " + f.properties.code);
            m.on("click", (e) => {
              if (mode() !== "buildings") {
                map.fire("click", e);
                return;
              }
              L.DomEvent.stopPropagation(e);
              const key = String(f.properties.id);
              if (picked.has(key)) picked.delete(key);
              else picked.add(key);
              paintBuilding(key);
              syncPicked();
            });
            return m;
          },
        }).addTo(map);
        Object.keys(markers).forEach(paintBuilding);
        syncPicked();
        drawCircle();
        if (polyIn.value) {
          try {
            const g = JSON.parse(polyIn.value);
            vertices = g.coordinates[0].slice(0, -1);
            drawPolygon(true);
          } catch (err) {
            /* the server names what is wrong with it */
          }
        }
        el.dataset.ready = "1";
      }
    );
  }

  // --- board ---------------------------------------------------------------------------------------
  function clock() {
    const el = document.getElementById("clock");
    if (!el) return;
    const golden = parseInt(el.dataset.golden, 10);
    const started = Date.now() - parseInt(el.dataset.elapsed, 10) * 1000;
    function tick() {
      const s = Math.max(0, Math.floor((Date.now() - started) / 1000));
      const mm = String(Math.floor(s / 60)).padStart(2, "0"), ss = String(s % 60).padStart(2, "0");
      el.textContent = mm + ":" + ss;
      el.classList.toggle("over", s > golden);
    }
    tick();
    if (el.dataset.running) setInterval(tick, 1000);
  }

  function boardPage() {
    const board = document.getElementById("board");
    if (!board) return;
    clock();
    const incident = parseInt(board.dataset.incident, 10);
    const mapEl = document.getElementById("board-map");
    const data = JSON.parse(mapEl.dataset.map);
    const buildingMarkers = {};
    const cameras = {};
    if (window.L) {
      const map = blankMap(mapEl);
      window.emergencyMap = map;
      // The view first: Leaflet's vector renderer needs it before any layer is added.
      const area = L.geoJSON(data.area, { style: { color: "#b42318", weight: 2, fillOpacity: 0.1 } });
      if (area.getBounds().isValid()) map.fitBounds(area.getBounds(), { padding: [20, 20] });
      else map.setView([30.3, 120.1], 15);
      area.addTo(map);
      data.buildings.forEach((b) => {
        buildingMarkers[b.id] = L.circleMarker([b.lat, b.lng], { radius: 7, weight: 1, color: "#1f2933", fillOpacity: 1 })
          .bindTooltip(b.name)
          .addTo(map);
        colour(b.id, b.done, b.households);
      });
      data.cameras.forEach((c) => {
        cameras[c.id] = c;
        const icon = L.divIcon({ className: "camera-icon", html: "摄", iconSize: [22, 22] });
        L.marker([c.lat, c.lng], { icon: icon, title: c.name }).on("click", () => openCamera(c.id)).addTo(map);
      });
      mapEl.dataset.ready = "1";
    }
    function colour(id, done, total) {
      const m = buildingMarkers[id];
      if (!m) return;
      m.setStyle({ fillColor: total && done >= total ? "#067647" : done ? "#d97706" : "#b42318" });
    }
    function openCamera(id) {
      const c = cameras[id];
      const panel = document.getElementById("camera-panel");
      document.getElementById("camera-name").textContent = c.name + " (" + c.code + ")";
      const img = document.getElementById("camera-snapshot");
      img.hidden = !c.snapshot_url;
      if (c.snapshot_url) img.src = c.snapshot_url;
      const link = document.getElementById("camera-stream");
      link.hidden = !c.stream_url;
      link.href = c.stream_url || "#";
      link.textContent = c.stream_url || "";
      panel.hidden = false;
      panel.dataset.camera = String(id);
    }
    document.querySelectorAll(".camera-open").forEach((b) => b.addEventListener("click", () => openCamera(b.dataset.camera)));
    const close = document.getElementById("camera-close");
    if (close) close.addEventListener("click", () => (document.getElementById("camera-panel").hidden = true));

    function set(id, value) {
      const el = document.getElementById(id);
      if (el && value !== undefined) el.textContent = value;
    }
    const source = new EventSource(board.dataset.events);
    source.addEventListener("open", () => (board.dataset.live = "open"));
    source.addEventListener("error", () => (board.dataset.live = "retrying"));
    source.addEventListener("emergency", (e) => {
      const d = JSON.parse(e.data);
      if (d.incident !== incident) return;
      if (d.type === "marked") {
        set("hh-done", d.households_done);
        set("hh-total", d.households_total);
        set("v-done", d.vulnerable_done);
        set("help-count", d.needs_help);
        const bar = document.getElementById("hh-bar");
        if (bar) bar.value = d.households_done;
        if (d.building) {
          const row = document.getElementById("b-" + d.building.id);
          if (row) {
            row.querySelector(".done").textContent = d.building.done;
            const total = parseInt(row.dataset.total, 10);
            row.classList.toggle("row-done", d.building.done >= total);
            colour(d.building.id, d.building.done, total);
          }
        }
      }
      if (d.type === "marked" || d.type === "help_resolved") {
        htmx.ajax("GET", board.dataset.help, { target: "#help-list", swap: "innerHTML" });
      }
      board.dataset.lastEvent = e.lastEventId;
    });
    // Read receipts of this incident's instructions, as staff open them in their inbox.
    source.addEventListener("broadcast", (e) => {
      const d = JSON.parse(e.data);
      if (d.event !== "read" || d.incident_ref !== "emergency.incident:" + incident) return;
      const cell = document.querySelector("#bc-" + d.id + " .read");
      if (cell) cell.textContent = d.read;
    });
    window.emergencySource = source;
  }

  function boot() {
    declarePage();
    boardPage();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
