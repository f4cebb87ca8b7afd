// A time-series chart (uPlot) in an element with role="img" and an accessible name, resized with
// its box so it stays readable from 390 px up.
"use strict";
(function (ns) {
  const { html, useEffect, useRef } = htmPreact;
  const COLOURS = ["#1e88e5", "#e53935", "#43a047", "#fb8c00", "#8e24aa", "#00897b"];

  // Tick labels with as many decimals as the tick step needs: uPlot's default rounds sub-cent
  // costs to `0, 0, 0`. Steps are 1, 2 or 5 × 10^k, so -log10(step) decimals tell them apart.
  ns.tickLabels = function tickLabels(splits, prefix = "") {
    const step = splits.length > 1 ? Math.abs(splits[1] - splits[0]) : Math.abs(splits[0] || 1);
    const decimals = step > 0 && step < 1 ? Math.min(12, Math.ceil(-Math.log10(step) - 1e-9)) : 0;
    return splits.map((v) => `${prefix}${v.toFixed(decimals)}`);
  };

  // Totals in the chart's accessible name: sub-unit sums (costs) keep six significant digits.
  ns.shortNumber = function shortNumber(v) {
    const text = Math.abs(v) >= 1 || v === 0 ? v.toFixed(4) : v.toPrecision(6);
    return text.includes("e") ? text : text.replace(/\.?0+$/, "");
  };

  ns.Chart = function Chart({ title, times, series, unit = "" }) {
    const box = useRef(null);
    useEffect(() => {
      const element = box.current;
      if (!element || !window.uPlot) return undefined;
      const width = () => Math.max(240, element.clientWidth || 300);
      const options = {
        width: width(), height: 200,
        series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: COLOURS[i % COLOURS.length], width: 2 }))],
        axes: [{ stroke: "currentColor" }, {
          stroke: "currentColor", size: 80, values: (_u, splits) => ns.tickLabels(splits, unit),
        }],
        legend: { show: true },
      };
      const plot = new uPlot(options, [times, ...series.map((s) => s.values)], element);
      const observer = new ResizeObserver(() => plot.setSize({ width: width(), height: 200 }));
      observer.observe(element);
      return () => { observer.disconnect(); plot.destroy(); };
    }, [times, series]);
    const summary = series.map((s) => `${s.label}: ${ns.shortNumber(s.values.reduce((a, b) => a + (b || 0), 0))}`).join(", ");
    return html`<figure>
      <figcaption><strong>${title}</strong></figcaption>
      <div class="chart" role="img" aria-label=${`${title} over time (${summary})`} ref=${box}></div>
    </figure>`;
  };
})(window.aigw);
