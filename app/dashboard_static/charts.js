// A time-series chart (uPlot) in an element with role="img" and an accessible name, resized with
// its box so it stays readable from 390 px up.
"use strict";
(function (ns) {
  const { html, useEffect, useRef } = htmPreact;
  const COLOURS = ["#1e88e5", "#e53935", "#43a047", "#fb8c00", "#8e24aa", "#00897b"];

  ns.Chart = function Chart({ title, times, series }) {
    const box = useRef(null);
    useEffect(() => {
      const element = box.current;
      if (!element || !window.uPlot) return undefined;
      const width = () => Math.max(240, element.clientWidth || 300);
      const options = {
        width: width(), height: 200,
        series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: COLOURS[i % COLOURS.length], width: 2 }))],
        axes: [{ stroke: "currentColor" }, { stroke: "currentColor", size: 60 }],
        legend: { show: true },
      };
      const plot = new uPlot(options, [times, ...series.map((s) => s.values)], element);
      const observer = new ResizeObserver(() => plot.setSize({ width: width(), height: 200 }));
      observer.observe(element);
      return () => { observer.disconnect(); plot.destroy(); };
    }, [times, series]);
    const summary = series.map((s) => `${s.label}: ${s.values.reduce((a, b) => a + (b || 0), 0).toFixed(4).replace(/\.?0+$/, "")}`).join(", ");
    return html`<figure>
      <figcaption><strong>${title}</strong></figcaption>
      <div class="chart" role="img" aria-label=${`${title} over time (${summary})`} ref=${box}></div>
    </figure>`;
  };
})(window.aigw);
