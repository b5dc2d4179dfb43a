// A kit page's charts: one uPlot chart per sensor and per actuator, fed by the data API
// (GET /kits/{id}/data), which serves an actuator's levels under its key like a sensor's readings.
// An actuator's chart is drawn on a fixed 0-100 % scale, its raw levels as steps (a level holds
// until the kit reports another).
//
// The page renders the controls and an empty <figure> per series (`data-sensor` holds its key, a
// sensor's or an actuator's; an actuator's also has `data-actuator`); this script fetches the shown
// range with `resolution=auto` (the API picks raw readings, hourly or daily rollups so a series
// stays under about 2,000 points), follows `Link: rel="next"` pages of raw readings, and draws.
// Tests and the benchmark read the state it exposes as data attributes: `#charts[data-state]`
// (loading | drawn | error), `#charts[data-loads]` (finished loads so far), and per figure
// `data-state` (loading | drawn | empty | error) and `data-point-count` (points drawn); each
// figure also holds its uPlot chart as `figure.uplot`.
//
// Times are shown in the viewer's own time zone (static/dashboard/local-time.js), named on every
// chart's time axis and with every time in the legend; the address, the API and CSV stay in UTC.
"use strict";

(() => {
  const config = JSON.parse(document.getElementById("kit-chart-config").textContent);
  const PRESET_SECONDS = { hour: 3600, day: 86400, week: 7 * 86400, month: 30 * 86400, year: 365 * 86400 };
  const PRESET_NAMES = {
    hour: "Last hour", day: "Last day", week: "Last week", month: "Last month", year: "Last year", custom: "Custom range",
  };
  const MAX_PAGES = 100; // a guard against a runaway chain of `next` links
  const CHART_HEIGHT = 240;
  const LINE = "#2f7d43";

  const chartsBox = document.getElementById("charts");
  const statusLine = document.getElementById("chart-status");
  const csvLink = document.getElementById("csv-download");
  const form = document.getElementById("range-form");
  const customFields = document.getElementById("range-custom-fields");
  const fromInput = document.getElementById("range-from");
  const toInput = document.getElementById("range-to");
  const figures = new Map([...chartsBox.querySelectorAll("figure[data-sensor]")].map((f) => [f.dataset.sensor, f]));
  const charts = new Map(); // sensor key -> {plot, rollup, onDrawn}
  // What is charted, in page order: the sensors, then the actuators.
  const SERIES = config.sensors.concat(config.actuators || []);
  const LEVEL_RANGE = [0, 100];

  let range = config.range; // {preset} or {preset: "custom", from, to}
  let latestLoad = 0; // a newer load supersedes one still in flight
  let refreshTimer = null;

  // ---- time and numbers ------------------------------------------------------------------
  const { zone, formatDateTime } = window.AstroPlantTime;
  const isoUtc = (date) => date.toISOString().replace(/\.\d{3}Z$/, "Z");
  // <input type="datetime-local"> has no zone: the custom range is typed in the viewer's zone
  // (which Date reads such a value in) and kept in the address in UTC.
  const inputToIso = (value) => {
    const date = value ? new Date(value) : null;
    return date && !Number.isNaN(date.getTime()) ? isoUtc(date) : null;
  };
  const pad = (n) => String(n).padStart(2, "0");
  const isoToInput = (iso) => {
    const d = new Date(iso);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
  };
  const formatTime = (seconds) => formatDateTime(new Date(seconds * 1000), { seconds: true });
  const dayFormat = new Intl.DateTimeFormat("en-GB", { day: "numeric", month: "short" });
  const monthFormat = new Intl.DateTimeFormat("en-GB", { month: "short", year: "numeric" });
  const clockFormat = new Intl.DateTimeFormat("en-GB", { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  const numberFormat = new Intl.NumberFormat("en-GB", { maximumFractionDigits: 2 });
  const TIME_AXIS_LABEL = `Time (${zone})`;

  // Time-axis labels in the viewer's zone on a 24-hour clock, with the day under the first tick
  // of each day.
  function timeAxisValues(u, splits, axisIndex, space, increment) {
    let previousDay = null;
    return splits.map((t) => {
      const date = new Date(t * 1000);
      if (increment >= 28 * 86400) return monthFormat.format(date);
      const day = dayFormat.format(date);
      if (increment >= 86400) return day;
      const label = day === previousDay ? clockFormat.format(date) : `${clockFormat.format(date)}\n${day}`;
      previousDay = day;
      return label;
    });
  }
  const formatNumber = (v) => (v == null ? "–" : numberFormat.format(v));

  function shownWindow() {
    if (range.preset === "custom") return { from: range.from, to: range.to };
    const to = new Date();
    return { from: isoUtc(new Date(to.getTime() - PRESET_SECONDS[range.preset] * 1000)), to: isoUtc(to) };
  }

  // ---- the data API ------------------------------------------------------------------------
  function apiUrl(window, extra) {
    return `${config.dataUrl}?${new URLSearchParams({ from: window.from, to: window.to, ...extra })}`;
  }

  function nextLink(header) {
    const match = header && header.match(/<([^>]+)>\s*;\s*rel="?next"?/);
    return match ? match[1] : null;
  }

  async function errorMessage(response) {
    try {
      const body = await response.json();
      if (body.detail) return body.detail;
    } catch (_) {
      // not JSON: fall through to the status line
    }
    return `the server answered ${response.status} ${response.statusText}`;
  }

  // Every page of the range: {series: {sensor: points}, resolution: "raw" | "1h" | "1d" | null}.
  async function fetchRange(window) {
    const series = {};
    let resolution = null;
    let url = apiUrl(window, { resolution: "auto" });
    for (let page = 0; url && page < MAX_PAGES; page += 1) {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(await errorMessage(response));
      const body = await response.json();
      for (const [sensor, points] of Object.entries(body)) {
        series[sensor] = (series[sensor] || []).concat(points);
      }
      resolution = response.headers.get("X-Resolution") || resolution;
      url = nextLink(response.headers.get("Link"));
    }
    return { series, resolution };
  }

  // ---- drawing -------------------------------------------------------------------------------
  // Columns for uPlot: times in seconds, values, and min/max for rollup points. A gap of more
  // than three usual steps (the kit was off) gets a null so the line breaks instead of lying.
  function columns(points, rollup) {
    const xs = [], values = [], mins = [], maxs = [];
    const times = points.map((p) => Date.parse(p.timestamp) / 1000);
    const steps = times.slice(1).map((t, i) => t - times[i]).sort((a, b) => a - b);
    const usualStep = steps.length ? steps[Math.floor(steps.length / 2)] : Infinity;
    points.forEach((point, i) => {
      if (i > 0 && times[i] - times[i - 1] > 3 * usualStep) {
        xs.push((times[i] + times[i - 1]) / 2);
        values.push(null); mins.push(null); maxs.push(null);
      }
      xs.push(times[i]);
      values.push(point.value);
      mins.push(rollup ? point.min : null);
      maxs.push(rollup ? point.max : null);
    });
    return rollup ? [xs, values, mins, maxs] : [xs, values];
  }

  const RESOLUTION_TEXT = { raw: "every reading", "1h": "hourly min, mean and max", "1d": "daily min, mean and max" };

  // The API says which resolution `auto` chose (X-Resolution); without it, the points tell.
  function resolutionOf(said, points) {
    if (said) return said;
    if (points.length < 2 || points[0].min === undefined) return "raw";
    const spanSeconds = (Date.parse(points[points.length - 1].timestamp) - Date.parse(points[0].timestamp)) / 1000;
    return spanSeconds / (points.length - 1) >= 0.9 * 86400 ? "1d" : "1h";
  }

  function chartOptions(sensor, width, rollup) {
    const withUnit = (v) => (v == null ? "–" : `${formatNumber(v)} ${sensor.unit}`);
    const main = { label: rollup ? "Mean" : sensor.label, stroke: LINE, width: 2, value: (u, v) => withUnit(v), points: { show: false } };
    // An actuator's level holds until the kit reports the next one: steps, not slopes.
    if (sensor.actuator && !rollup) main.paths = uPlot.paths.stepped({ align: 1 });
    const series = [{ label: "Time", value: (u, t) => (t == null ? "–" : formatTime(t)) }, main];
    if (rollup) {
      series.push(
        { label: "Min", stroke: "rgba(47,125,67,0.45)", width: 1, value: (u, v) => withUnit(v), points: { show: false } },
        { label: "Max", stroke: "rgba(47,125,67,0.45)", width: 1, value: (u, v) => withUnit(v), points: { show: false } },
      );
    }
    const axis = { stroke: "#4d544b", grid: { stroke: "#e4e7e0" }, ticks: { stroke: "#cfd4ca" } };
    return {
      width,
      height: CHART_HEIGHT,
      // uPlot places its ticks in the browser's own zone unless told another: the viewer's.
      scales: sensor.actuator ? { x: { time: true }, y: { range: LEVEL_RANGE } } : { x: { time: true } },
      series,
      bands: rollup ? [{ series: [3, 2], fill: "rgba(47,125,67,0.14)" }] : [],
      axes: [
        { ...axis, values: timeAxisValues, label: TIME_AXIS_LABEL, labelSize: 20, labelFont: "12px system-ui, sans-serif" },
        { ...axis, label: `${sensor.label} (${sensor.unit})`, labelSize: 22, size: 58, values: (u, splits) => splits.map(formatNumber) },
      ],
      cursor: { points: { size: 8 }, drag: { x: false, y: false } },
      legend: { live: true },
      hooks: {
        draw: [(u) => {
          const chart = [...charts.values()].find((c) => c.plot === u);
          if (chart && chart.onDrawn) { const done = chart.onDrawn; chart.onDrawn = null; done(); }
        }],
      },
    };
  }

  function plotWidth(figure) {
    return Math.max(200, figure.querySelector(".chart-plot").clientWidth);
  }

  // Draws (or redraws) one sensor's chart and resolves once uPlot has painted it.
  function draw(sensor, points) {
    const figure = figures.get(sensor.key);
    const note = figure.querySelector(".chart-note");
    if (points.length === 0) {
      figure.dataset.pointCount = "0";
      const existing = charts.get(sensor.key);
      if (existing) { existing.plot.destroy(); charts.delete(sensor.key); figure.uplot = null; }
      figure.dataset.state = "empty";
      note.textContent = "No readings in this range. Pick a longer range, or check that the kit is on.";
      return Promise.resolve();
    }
    const rollup = points[0].min !== undefined;
    const data = columns(points, rollup);
    note.textContent = "";
    return new Promise((resolve) => {
      let chart = charts.get(sensor.key);
      if (chart && chart.rollup === rollup) {
        chart.onDrawn = resolve;
        chart.plot.setData(data);
      } else {
        if (chart) chart.plot.destroy();
        chart = { plot: null, rollup, onDrawn: resolve };
        charts.set(sensor.key, chart);
        chart.plot = new uPlot(chartOptions(sensor, plotWidth(figure), rollup), data, figure.querySelector(".chart-plot"));
        figure.uplot = chart.plot;
      }
    }).then(() => {
      // What the chart holds, not what was fetched: the points a person actually sees.
      const plot = charts.get(sensor.key).plot;
      figure.dataset.pointCount = String(plot.data[1].filter((v) => v != null).length);
      figure.dataset.axisLabel = plot.axes[1].label; // drawn on the canvas, so told here too
      figure.dataset.timeAxisLabel = plot.axes[0].label;
      figure.dataset.state = "drawn";
    });
  }

  // ---- one load of the shown range -----------------------------------------------------------
  async function load({ quiet = false } = {}) {
    const thisLoad = ++latestLoad;
    clearTimeout(refreshTimer);
    const window = shownWindow();
    chartsBox.dataset.state = "loading";
    chartsBox.setAttribute("aria-busy", "true");
    if (!quiet) statusLine.textContent = `Loading ${PRESET_NAMES[range.preset].toLowerCase()}…`;
    statusLine.classList.remove("error");
    csvLink.href = apiUrl(window, { format: "csv" });
    try {
      const { series, resolution: said } = await fetchRange(window);
      if (thisLoad !== latestLoad) return; // the user picked another range meanwhile
      await Promise.all(SERIES.map((sensor) => draw(sensor, series[sensor.key] || [])));
      const counts = SERIES.map((s) => (series[s.key] || []).length);
      const sample = SERIES.map((s) => series[s.key] || []).find((p) => p.length > 0) || [];
      const resolution = resolutionOf(said, sample);
      const period = `${formatTime(Date.parse(window.from) / 1000)} to ${formatTime(Date.parse(window.to) / 1000)}`;
      statusLine.textContent = sample.length
        ? `${PRESET_NAMES[range.preset]}, ${period}: ${RESOLUTION_TEXT[resolution] || resolution}, up to ${numberFormat.format(Math.max(...counts))} points per chart.`
        : `${PRESET_NAMES[range.preset]}, ${period}: no readings in this range.`;
      chartsBox.dataset.resolution = resolution;
      chartsBox.dataset.state = "drawn";
      chartsBox.dataset.from = window.from;
      chartsBox.dataset.to = window.to;
      // Milliseconds since navigation started: what benchmarks/dashboard_bench.py reports.
      chartsBox.dataset.drawnAtMs = String(Math.round(performance.now()));
    } catch (error) {
      if (thisLoad !== latestLoad) return;
      chartsBox.dataset.state = "error";
      figures.forEach((figure) => { figure.dataset.state = "error"; });
      statusLine.textContent = `Could not load the readings: ${error.message}`;
      statusLine.classList.add("error");
    } finally {
      if (thisLoad === latestLoad) {
        chartsBox.removeAttribute("aria-busy");
        chartsBox.dataset.loads = String(Number(chartsBox.dataset.loads) + 1);
        scheduleRefresh();
      }
    }
  }

  // The last hour keeps itself current; longer ranges change too slowly to be worth it.
  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    if (range.preset !== "hour") return;
    refreshTimer = setTimeout(() => {
      if (document.hidden) scheduleRefresh();
      else load({ quiet: true });
    }, config.refreshSeconds * 1000);
  }

  // ---- the controls --------------------------------------------------------------------------
  function rememberRangeInAddress() {
    const params = new URLSearchParams({ range: range.preset });
    if (range.preset === "custom") { params.set("from", range.from); params.set("to", range.to); }
    history.replaceState(null, "", `?${params}`);
  }

  function showCustomFields(show) {
    customFields.hidden = !show;
  }

  form.addEventListener("change", (event) => {
    if (event.target.name !== "range") return;
    const preset = event.target.value;
    if (preset === "custom") {
      // Start the custom range from what is on screen, so it is a small edit away.
      const window = shownWindow();
      fromInput.value = isoToInput(window.from);
      toInput.value = isoToInput(window.to);
      showCustomFields(true);
      fromInput.focus();
      return;
    }
    showCustomFields(false);
    range = { preset };
    rememberRangeInAddress();
    load();
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const from = inputToIso(fromInput.value);
    const to = inputToIso(toInput.value);
    if (!from || !to || Number.isNaN(Date.parse(from)) || Number.isNaN(Date.parse(to))) {
      statusLine.textContent = "Give both a start and an end time for the custom range.";
      statusLine.classList.add("error");
      return;
    }
    if (Date.parse(from) >= Date.parse(to)) {
      statusLine.textContent = "The start of the range must come before its end.";
      statusLine.classList.add("error");
      return;
    }
    form.querySelector("#range-custom").checked = true;
    range = { preset: "custom", from, to };
    rememberRangeInAddress();
    load();
  });

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && range.preset === "hour") load({ quiet: true });
  });

  let resizeFrame = 0;
  new ResizeObserver(() => {
    cancelAnimationFrame(resizeFrame);
    resizeFrame = requestAnimationFrame(() => {
      charts.forEach((chart, key) => chart.plot.setSize({ width: plotWidth(figures.get(key)), height: CHART_HEIGHT }));
    });
  }).observe(chartsBox);

  // The page renders the custom range in UTC; shown here in the viewer's zone, which its inputs take.
  if (range.preset === "custom") {
    fromInput.value = isoToInput(range.from);
    toInput.value = isoToInput(range.to);
  }
  showCustomFields(range.preset === "custom");
  load();
})();
