/* The cockpit big screen. The page renders the board once; this script then keeps it live:
   - an EventSource on /cockpit/stream/ (cases, alarms, indicator changes under this region);
   - each event is appended to the feed, and the board JSON is re-fetched once the events settle
     (debounced, so a burst of events costs one request);
   - the selected indicator colours the map (children of the region) and drives the 30-day trend
     and the ranking of the children; clicking an area or a ranking bar opens its own board. */
(function () {
  "use strict";
  const body = document.body;
  const REGION = body.dataset.region;
  const DEBOUNCE_MS = 1000;
  const FEED_MAX = 60;
  const labels = JSON.parse(document.getElementById("labels-data").textContent);
  let board = JSON.parse(document.getElementById("board-data").textContent);
  let scene = body.dataset.scene || "";
  let selected = new URLSearchParams(location.search).get("ind") || "";
  let refreshTimer = null;
  let refreshes = 0;
  let map = null;
  let areaLayer = null;
  let trendChart = null;
  let rankingChart = null;

  // --- helpers ------------------------------------------------------------------------------
  function fmt(v) {
    if (v === null || v === undefined || v === "") return "—";
    const n = Number(v);
    if (!isFinite(n)) return String(v);
    return Math.abs(n) >= 1000 || Number.isInteger(n) ? n.toLocaleString("zh-CN", { maximumFractionDigits: 0 }) : n.toFixed(n < 10 ? 2 : 1);
  }
  // Times in the street's time zone (the server's TIME_ZONE), whatever the display's clock says.
  const TZ = body.dataset.tz || undefined;
  const parts = (d, opts) => {
    const out = {};
    new Intl.DateTimeFormat("zh-CN", { timeZone: TZ, hour12: false, ...opts }).formatToParts(d).forEach((p) => (out[p.type] = p.value));
    return out;
  };
  function shortTime(iso) {
    const d = iso ? new Date(iso) : new Date();
    if (isNaN(d)) return "";
    const p = parts(d, { month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
    return p.month + "-" + p.day + " " + p.hour + ":" + p.minute;
  }
  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function indicator(code) {
    return board.indicators.find((i) => i.code === code);
  }
  function drillUrl(id) {
    const url = body.dataset.drill.replace(/\/0\/$/, "/" + id + "/");
    const q = new URLSearchParams();
    if (scene) q.set("scene", scene);
    if (selected) q.set("ind", selected);
    const qs = q.toString();
    return qs ? url + "?" + qs : url;
  }
  function api(url, params) {
    const q = new URLSearchParams(params);
    return fetch(url + (url.includes("?") ? "&" : "?") + q.toString(), { credentials: "same-origin", headers: { Accept: "application/json" } }).then((r) => {
      if (!r.ok) throw new Error(url + ": " + r.status);
      return r.json();
    });
  }

  // --- key numbers ----------------------------------------------------------------------------
  function renderTiles(previous) {
    const box = document.getElementById("tiles");
    box.textContent = "";
    if (!board.indicators.length) box.appendChild(el("p", "sc-empty", "尚未配置指标"));
    board.indicators.forEach((i) => {
      const tile = el("button", "tile st-" + (i.status || "none"));
      tile.type = "button";
      tile.dataset.code = i.code;
      tile.dataset.value = i.value === null || i.value === undefined ? "" : String(i.value);
      tile.title = i.target !== null && i.target !== undefined ? "目标 " + fmt(i.target) : "";
      tile.appendChild(el("span", "t-name", i.name));
      const value = el("span", "t-value");
      value.appendChild(el("b", "", fmt(i.value)));
      value.appendChild(el("small", "", i.unit || ""));
      tile.appendChild(value);
      const arrow = i.trend === "up" ? "▲" : i.trend === "down" ? "▼" : "—";
      tile.appendChild(el("span", "t-trend tr-" + (i.trend || "flat"), arrow + " 前值 " + fmt(i.previous)));
      if (i.code === selected) tile.classList.add("on");
      if (previous && previous[i.code] !== undefined && previous[i.code] !== i.value) tile.classList.add("flash");
      tile.addEventListener("click", () => select(i.code));
      box.appendChild(tile);
    });
  }

  // --- map ------------------------------------------------------------------------------------
  const RAMP = ["#0c4a6e", "#0369a1", "#0284c7", "#0ea5e9", "#38bdf8", "#7dd3fc"];
  function childValues() {
    const out = {};
    (board.children || []).forEach((c) => {
      out[c.id] = c.values ? c.values[selected] : undefined;
    });
    return out;
  }
  function colourScale(values) {
    const nums = Object.values(values).filter((v) => v !== null && v !== undefined).map(Number);
    const lo = nums.length ? Math.min(...nums) : 0;
    const hi = nums.length ? Math.max(...nums) : 0;
    const ind = indicator(selected);
    const better = !ind || ind.higher_is_better !== false;
    return {
      lo,
      hi,
      colour(v) {
        if (v === null || v === undefined) return "#1e293b";
        let t = hi > lo ? (Number(v) - lo) / (hi - lo) : 0.5;
        if (!better) t = 1 - t;
        return RAMP[Math.min(RAMP.length - 1, Math.floor(t * RAMP.length))];
      },
    };
  }
  function paintMap() {
    if (!areaLayer) return;
    const values = childValues();
    const scale = colourScale(values);
    areaLayer.eachLayer((layer) => {
      const p = layer.feature.properties;
      const v = values[p.id];
      layer.setStyle({ color: "#38bdf8", weight: 1, fillColor: scale.colour(v), fillOpacity: 0.75 });
      layer.setTooltipContent(p.name + (selected ? "：" + fmt(v) : ""));
    });
    const ind = indicator(selected);
    document.getElementById("map-indicator").textContent = ind ? ind.name : "";
    const legend = document.getElementById("map-legend");
    legend.textContent = "";
    if (ind) {
      legend.appendChild(el("span", "", fmt(scale.lo)));
      RAMP.forEach((c) => {
        const sw = el("i");
        sw.style.background = c;
        legend.appendChild(sw);
      });
      legend.appendChild(el("span", "", fmt(scale.hi) + " " + (ind.unit || "")));
    }
  }
  function startMap() {
    const box = document.getElementById("sc-map");
    if (!window.L || !box) return;
    map = L.map(box, { zoomSnap: 0.25, attributionControl: false });
    if (body.dataset.tiles) L.tileLayer(body.dataset.tiles, { maxZoom: 19, opacity: 0.35 }).addTo(map);
    fetch(body.dataset.areas, { credentials: "same-origin" })
      .then((r) => r.json())
      .then((shapes) => {
        areaLayer = L.geoJSON(shapes, {
          onEachFeature: (f, layer) => {
            layer.bindTooltip(f.properties.name, { sticky: true });
            if (String(f.properties.id) !== REGION) layer.on("click", () => (location.href = drillUrl(f.properties.id)));
          },
        }).addTo(map);
        const bounds = areaLayer.getBounds();
        if (bounds.isValid()) map.fitBounds(bounds, { padding: [12, 12] });
        else map.setView([30.3, 120.1], 13);
        paintMap();
        box.dataset.ready = String(shapes.features.length);
      });
  }

  // --- charts ---------------------------------------------------------------------------------
  function chart(id) {
    const node = document.getElementById(id);
    if (!window.echarts || !node) return null;
    const c = echarts.init(node, "dark", { renderer: "canvas" });
    window.addEventListener("resize", () => c.resize());
    return c;
  }
  function loadTrend() {
    const ind = indicator(selected);
    if (!trendChart || !ind) return;
    document.getElementById("trend-title").textContent = ind.name;
    api(body.dataset.trend.replace("CODE", encodeURIComponent(selected)), { region: REGION, days: 30 }).then((rows) => {
      trendChart.setOption(
        {
          backgroundColor: "transparent",
          grid: { left: 48, right: 16, top: 16, bottom: 28 },
          tooltip: { trigger: "axis" },
          xAxis: { type: "category", data: rows.map((r) => r.day.slice(5)), boundaryGap: false },
          yAxis: { type: "value", scale: true, splitLine: { lineStyle: { color: "#1d3352" } } },
          series: [{ type: "line", name: ind.name, data: rows.map((r) => r.value), smooth: true, showSymbol: false, areaStyle: { opacity: 0.15 }, connectNulls: false }],
        },
        true
      );
      document.getElementById("trend-chart").dataset.points = String(rows.length);
    });
  }
  function loadRanking() {
    const ind = indicator(selected);
    if (!rankingChart || !ind) return;
    document.getElementById("ranking-title").textContent = ind.name;
    api(body.dataset.ranking.replace("CODE", encodeURIComponent(selected)), { region: REGION }).then((rows) => {
      const top = rows.slice(0, 15).reverse();
      rankingChart.setOption(
        {
          backgroundColor: "transparent",
          grid: { left: 110, right: 40, top: 8, bottom: 20 },
          tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
          xAxis: { type: "value", splitLine: { lineStyle: { color: "#1d3352" } } },
          // "塘河新村社区第1网格" under 塘河新村社区 reads "第1网格".
          yAxis: { type: "category", data: top.map((r) => (r.name.startsWith(board.region.name) && r.name.length > board.region.name.length ? r.name.slice(board.region.name.length) : r.name)) },
          series: [{ type: "bar", data: top.map((r) => ({ value: r.value, id: r.id })), itemStyle: { color: "#38bdf8" }, label: { show: true, position: "right" } }],
        },
        true
      );
      document.getElementById("ranking-chart").dataset.rows = String(rows.length);
    });
  }

  function select(code) {
    selected = code;
    document.querySelectorAll(".tile").forEach((t) => t.classList.toggle("on", t.dataset.code === code));
    const url = new URL(location.href);
    url.searchParams.set("ind", code);
    history.replaceState(null, "", url);
    paintMap();
    loadTrend();
    loadRanking();
  }

  // --- live -----------------------------------------------------------------------------------
  function refresh() {
    const previous = {};
    board.indicators.forEach((i) => (previous[i.code] = i.value));
    const params = { region: REGION, fresh: 1 };
    if (scene) params.scene = scene;
    return api(body.dataset.board, params).then((data) => {
      board = data;
      if (!indicator(selected) && board.indicators.length) selected = board.indicators[0].code;
      renderTiles(previous);
      paintMap();
      loadTrend();
      loadRanking();
      refreshes += 1;
      body.dataset.refreshes = String(refreshes);
    });
  }
  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, DEBOUNCE_MS);
  }
  function feedItem(channel, e) {
    if (channel === "alarm") {
      return {
        kind: "alarm",
        id: e.id,
        at: e.at,
        title: e.title || e.rule_name || "",
        label: labels.severities[e.severity] || e.severity || "",
        severity: e.severity,
        note: labels.alarm_kinds[e.kind] || e.kind || "",
        url: labels.alarm_url ? labels.alarm_url.replace(/\/0\/$/, "/" + e.id + "/") : "",
      };
    }
    if (channel === "case") {
      return {
        kind: "case",
        id: e.id,
        at: e.at,
        title: e.title,
        label: e.number,
        note: labels.actions[e.action] || e.action || labels.statuses[e.status] || "",
        url: "/cases/" + e.id + "/",
      };
    }
    return null;
  }
  function prepend(item) {
    const list = document.getElementById("feed");
    const li = el("li", "new f-" + item.kind + (item.severity ? " sev-" + item.severity : ""));
    li.dataset.kind = item.kind;
    li.dataset.id = String(item.id);
    li.appendChild(el("span", "f-at", shortTime(item.at)));
    li.appendChild(el("span", "f-label", item.label || ""));
    const a = el("a", "f-title", item.title || "");
    if (item.url) a.href = item.url;
    li.appendChild(a);
    li.appendChild(el("span", "f-status", item.note || ""));
    list.insertBefore(li, list.firstChild);
    while (list.children.length > FEED_MAX) list.removeChild(list.lastChild);
    document.getElementById("feed-count").textContent = String(list.children.length);
  }
  function listen() {
    if (!window.EventSource) return;
    const dot = document.getElementById("live-dot");
    const source = new EventSource(body.dataset.stream);
    source.onopen = () => {
      dot.className = "sc-live on";
      body.dataset.live = "open";
    };
    source.onerror = () => {
      dot.className = "sc-live off";
      body.dataset.live = "retrying";
    };
    ["alarm", "case", "cockpit"].forEach((channel) =>
      source.addEventListener(channel, (msg) => {
        let data = {};
        try {
          data = JSON.parse(msg.data);
        } catch (err) {
          return;
        }
        const item = feedItem(channel, data);
        if (item) prepend(item);
        scheduleRefresh();
      })
    );
  }

  // --- chrome ---------------------------------------------------------------------------------
  function tickClock() {
    const p = parts(new Date(), { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
    document.getElementById("sc-clock").textContent = p.year + "-" + p.month + "-" + p.day + " " + p.hour + ":" + p.minute + ":" + p.second;
  }
  function fullscreen() {
    const btn = document.getElementById("fullscreen");
    if (!document.fullscreenEnabled) {
      btn.hidden = true;
      return;
    }
    btn.addEventListener("click", () => (document.fullscreenElement ? document.exitFullscreen() : document.documentElement.requestFullscreen()));
    document.addEventListener("fullscreenchange", () => (btn.textContent = document.fullscreenElement ? "退出全屏" : "全屏"));
  }

  function boot() {
    if (!indicator(selected)) selected = board.indicators.length ? board.indicators[0].code : "";
    renderTiles(null);
    trendChart = chart("trend-chart");
    rankingChart = chart("ranking-chart");
    if (rankingChart) rankingChart.on("click", (p) => p.data && p.data.id && (location.href = drillUrl(p.data.id)));
    startMap();
    loadTrend();
    loadRanking();
    listen();
    fullscreen();
    tickClock();
    setInterval(tickClock, 1000);
    body.dataset.ready = "1";
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
