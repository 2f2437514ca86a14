// Small helpers for the dashboard: htmx sends the session's CSRF token with its requests.
document.addEventListener("htmx:configRequest", (event) => {
  const meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) event.detail.headers["X-CSRF-Token"] = meta.content;
});

// Charts: each <canvas data-chart="{...}"> describes its own (Chart.js, served locally).
const PALETTE = {
  BOOKED: "#3b78c4", PLANNED: "#7a55c9", OUT_FOR_DELIVERY: "#d08a00", DELIVERED: "#2e8b57",
  FAILED: "#c0392b", RETURNED: "#a23b72", CANCELLED: "#8a8a8a",
};
const SERIES = ["#3b78c4", "#2e8b57", "#d08a00", "#c0392b", "#7a55c9", "#a23b72", "#4a9fa8", "#8a8a8a"];
function drawCharts(root) {
  if (!window.Chart) return;
  root.querySelectorAll("canvas[data-chart]").forEach((canvas) => {
    if (canvas.chart) canvas.chart.destroy();
    const spec = JSON.parse(canvas.dataset.chart);
    const datasets = spec.datasets.map((set, i) => {
      const colour = PALETTE[set.status] || SERIES[i % SERIES.length];
      return { ...set, backgroundColor: spec.type === "doughnut" ? SERIES : colour, borderColor: colour };
    });
    canvas.chart = new window.Chart(canvas, {
      type: spec.type,
      data: { labels: spec.labels, datasets },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        scales: spec.type === "doughnut" ? {} : { x: { stacked: !!spec.stacked }, y: { stacked: !!spec.stacked, beginAtZero: true } },
      },
    });
  });
}
window.addEventListener("load", () => drawCharts(document));
document.addEventListener("htmx:afterSwap", (event) => drawCharts(event.target));

// Maps: drawn by Leaflet from coordinates alone (no tile server): the area's bounds, the
// depot, and this merchant's stops in order. A `pick` map sets the form's lat/lng on click.
function drawMaps(root) {
  if (!window.L) return;
  root.querySelectorAll("[data-map]").forEach((element) => {
    if (element.map) return;
    const spec = JSON.parse(element.dataset.map);
    const map = window.L.map(element, { attributionControl: false, zoomSnap: 0.25 });
    element.map = map;
    const layers = [];
    if (spec.bounds) {
      layers.push(window.L.rectangle(spec.bounds, { color: "#51606f", weight: 1, fill: true, fillColor: "#dfe7ef", fillOpacity: 0.5, dashArray: "4 4" }).addTo(map));
    }
    if (spec.depot) {
      layers.push(window.L.circleMarker(spec.depot, { radius: 8, color: "#17212b", fillColor: "#17212b", fillOpacity: 1 }).bindTooltip("Depot").addTo(map));
    }
    const stops = spec.stops || [];
    if (stops.length && spec.depot) {
      const path = [spec.depot, ...stops.filter((s) => s.n !== null).map((s) => s.at)];
      if (path.length > 1) layers.push(window.L.polyline(path, { color: "#0b5cad", weight: 2, opacity: 0.6 }).addTo(map));
    }
    stops.forEach((stop) => {
      const marker = window.L.circleMarker(stop.at, {
        radius: stop.current ? 11 : 8, color: stop.current ? "#b3261e" : "#0b5cad",
        fillColor: stop.current ? "#b3261e" : "#fff", fillOpacity: 1, weight: 3,
      }).addTo(map);
      marker.bindTooltip(`${stop.n !== null ? stop.n + ". " : ""}${stop.label}`, { permanent: stop.current || stops.length <= 8, direction: "top" });
      layers.push(marker);
    });
    const group = window.L.featureGroup(layers);
    if (layers.length) map.fitBounds(group.getBounds().pad(0.08)); else map.setView([0, 0], 2);
    if (spec.pick) {
      let pin = null;
      const lat = document.getElementById("f-lat");
      const lng = document.getElementById("f-lng");
      const place = (latlng) => {
        if (pin) pin.setLatLng(latlng); else pin = window.L.circleMarker(latlng, { radius: 9, color: "#b3261e", fillColor: "#b3261e", fillOpacity: 1 }).addTo(map);
      };
      if (lat && lng && lat.value && lng.value) place([+lat.value, +lng.value]);
      map.on("click", (event) => {
        place(event.latlng);
        lat.value = event.latlng.lat.toFixed(5);
        lng.value = event.latlng.lng.toFixed(5);
        lat.dispatchEvent(new Event("change", { bubbles: true }));
      });
    }
  });
}
window.addEventListener("load", () => drawMaps(document));
