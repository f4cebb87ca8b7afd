// Overview, Logs and Log detail: read-only pages over the analytics and logs APIs.
"use strict";
(function (ns) {
  const { html, useState, useEffect, useRef } = htmPreact;
  const RANGES = { "1h": 3600e3, "24h": 86400e3, "7d": 7 * 86400e3 };
  const PER_PAGE = 50;

  function useGateways() {
    const [gateways, setGateways] = useState(null);
    useEffect(() => {
      ns.api("/ai-gateway/gateways", { query: { per_page: 100 } })
        .then((d) => setGateways(d.result.map((g) => g.id)))
        .catch(() => setGateways([]));
    }, []);
    return gateways;
  }
  ns.useGateways = useGateways;

  ns.GatewaySelect = function GatewaySelect({ value, onChange }) {
    const gateways = useGateways();
    useEffect(() => {
      if (gateways && gateways.length && !value) onChange(gateways[0]);
    }, [gateways]);
    return html`<label>Gateway
      <select value=${value || ""} onChange=${(e) => onChange(e.target.value)}>
        ${(gateways || []).map((id) => html`<option value=${id}>${id}</option>`)}
      </select></label>`;
  };

  const money = (v) => (v == null ? "" : `$${Number(v).toFixed(6).replace(/0+$/, "").replace(/\.$/, "")}`);
  const Problem = ({ error }) => error && html`<p role="alert" class="error-text">${error}</p>`;

  function rangeOf(params) {
    const end = params.end ? new Date(params.end) : new Date();
    const span = RANGES[params.range || "24h"] || RANGES["24h"];
    // Hourly charts start on a whole hour: their first bucket is then complete, and the server
    // answers whole hours from its hourly summary instead of reading every row.
    const hour = 3600e3;
    const start = params.start ? new Date(params.start)
      : new Date(span > hour ? Math.floor((end - span) / hour) * hour : end - span);
    // Without a chosen end the server's own clock ends the range ("now" on the server), so a
    // browser clock behind it cannot cut the current hour short.
    return { start: start.toISOString(), end: params.end ? end.toISOString() : undefined };
  }

  ns.Overview = function Overview() {
    const params = ns.routeParams();
    const [data, setData] = useState(null);
    const [groups, setGroups] = useState({});
    const [error, setError] = useState(null);
    const set = (change) => ns.navigate("overview", { ...params, ...change });
    useEffect(() => {
      if (!params.gateway) return;
      const { start, end } = rangeOf(params);
      const base = `/ai-gateway/gateways/${encodeURIComponent(params.gateway)}/analytics`;
      const query = { start_date: start, end_date: end };
      // Two queries, not three: a grouped answer carries the totals and buckets as well.
      for (const by of ["provider", "model"]) {
        ns.api(base, { query: { ...query, group_by: by } })
          .then((d) => {
            if (by === "provider") setData(d.result);
            setGroups((g) => ({ ...g, [by]: d.result.groups || [] }));
          })
          .catch((e) => { if (by === "provider") setError(e.message); });
      }
    }, [params.gateway, params.range, params.start, params.end]);
    const buckets = data ? data.buckets : [];
    const times = buckets.map((b) => Date.parse(b.start) / 1000);
    const series = (label, key) => ({ label, values: buckets.map((b) => b[key] || 0) });
    const totals = data ? data.totals : null;
    return html`<h1>Overview</h1>
      <div class="filters">
        <${ns.GatewaySelect} value=${params.gateway} onChange=${(gateway) => set({ gateway })} />
        <label>Time range
          <select value=${params.range || "24h"} onChange=${(e) => set({ range: e.target.value, start: "", end: "" })}>
            <option value="1h">Last hour</option><option value="24h">Last 24 hours</option>
            <option value="7d">Last 7 days</option><option value="custom">Custom</option>
          </select></label>
        ${params.range === "custom" && html`
          <label>From<input type="datetime-local" value=${params.start || ""} onChange=${(e) => set({ start: e.target.value })} /></label>
          <label>To<input type="datetime-local" value=${params.end || ""} onChange=${(e) => set({ end: e.target.value })} /></label>`}
      </div>
      <${Problem} error=${error} />
      ${totals && html`<section class="totals" aria-label="Totals">
        <article>Requests<strong>${totals.requests}</strong></article>
        <article>Errors<strong>${totals.errors}</strong></article>
        <article>Tokens in<strong>${totals.tokens_in}</strong></article>
        <article>Tokens out<strong>${totals.tokens_out}</strong></article>
        <article>Cost<strong>${money(totals.cost)}</strong></article>
        <article>Cache hit ratio<strong>${(totals.cache_hit_ratio * 100).toFixed(1)}%</strong></article>
      </section>
      <section class="charts">
        <${ns.Chart} title="Requests" times=${times} series=${[series("requests", "requests")]} />
        <${ns.Chart} title="Errors" times=${times} series=${[series("errors", "errors")]} />
        <${ns.Chart} title="Tokens" times=${times} series=${[series("in", "tokens_in"), series("out", "tokens_out")]} />
        <${ns.Chart} title="Cost" unit="$" times=${times} series=${[series("USD", "cost")]} />
        <${ns.Chart} title="Latency" times=${times} series=${[series("p50 ms", "duration_p50"), series("p95 ms", "duration_p95")]} />
      </section>
      ${["provider", "model"].map((by) => html`<h2>By ${by}</h2><div class="table-box"><table>
        <thead><tr><th scope="col">${by}</th><th scope="col">Requests</th><th scope="col">Errors</th>
          <th scope="col">Tokens in</th><th scope="col">Tokens out</th><th scope="col">Cost</th></tr></thead>
        <tbody>${(groups[by] || []).map((g) => html`<tr><td>${g.key}</td><td>${g.requests}</td><td>${g.errors}</td>
          <td>${g.tokens_in}</td><td>${g.tokens_out}</td><td>${money(g.cost)}</td></tr>`)}</tbody></table></div>`)}`}`;
  };

  // Filters of the page's URL as the logs API's `filters` and plain parameters.
  function logQuery(params) {
    const filters = [];
    const eq = (key, value) => filters.push({ key, operator: "eq", value: [value] });
    if (params.provider) eq("provider", params.provider);
    if (params.model) eq("model", params.model);
    if (params.success) eq("success", params.success === "true");
    if (params.cached) eq("cached", params.cached === "true");
    if (params.meta && params.meta.includes("=")) {
      const [key, ...rest] = params.meta.split("=");
      eq("metadata.key", key.trim());
      eq("metadata.value", rest.join("=").trim());
    }
    const query = { per_page: PER_PAGE, page: params.page || 1, order_by: "created_at", order_by_direction: "desc" };
    if (params.range && RANGES[params.range]) query.start_date = new Date(Date.now() - RANGES[params.range]).toISOString();
    return { ...query, filters: ns.filtersParam(filters) };
  }

  ns.Logs = function Logs() {
    const params = ns.routeParams();
    const [page, setPage] = useState(null);
    const [error, setError] = useState(null);
    const live = params.live === "1";
    const set = (change) => ns.navigate("logs", { ...params, page: "", ...change });
    useEffect(() => {
      if (!params.gateway) return undefined;
      const path = `/ai-gateway/gateways/${encodeURIComponent(params.gateway)}/logs`;
      const load = () => ns.api(path, { query: logQuery(params) })
        .then((d) => { setPage(d); setError(null); }).catch((e) => setError(e.message));
      load();
      const timer = live ? setInterval(load, 1000) : null;
      return () => timer && clearInterval(timer);
    }, [location.hash]);
    const text = (name, label) => html`<label>${label}
      <input name=${name} value=${params[name] || ""} onChange=${(e) => set({ [name]: e.target.value.trim() })} /></label>`;
    const yesNo = (name, label) => html`<label>${label}
      <select value=${params[name] || ""} onChange=${(e) => set({ [name]: e.target.value })}>
        <option value="">Any</option><option value="true">Yes</option><option value="false">No</option></select></label>`;
    const info = page && page.result_info;
    const current = Number(params.page || 1);
    const open = (log) => ns.navigate("logs", { gateway: params.gateway }, log.id);
    return html`<h1>Logs</h1>
      <div class="filters">
        <${ns.GatewaySelect} value=${params.gateway} onChange=${(gateway) => set({ gateway })} />
        ${text("provider", "Provider")} ${text("model", "Model")}
        ${yesNo("success", "Success")} ${yesNo("cached", "Cached")}
        ${text("meta", "Metadata (key=value)")}
        <label>Time range<select value=${params.range || ""} onChange=${(e) => set({ range: e.target.value })}>
          <option value="">All</option><option value="1h">Last hour</option><option value="24h">Last 24 hours</option>
          <option value="7d">Last 7 days</option></select></label>
        <label><input type="checkbox" role="switch" aria-label="Live" checked=${live}
          onChange=${(e) => set({ live: e.target.checked ? "1" : "", page: "" })} /> Live</label>
      </div>
      <${Problem} error=${error} />
      <div class="table-box"><table>
        <thead><tr>${["Time", "Status", "Provider", "Model", "Tokens in", "Tokens out", "Cost", "Duration", "Cache", "Type"]
          .map((h) => html`<th scope="col">${h}</th>`)}</tr></thead>
        <tbody>${(page ? page.result : []).map((log) => html`<tr class="clickable" onClick=${() => open(log)}>
          <td><a href=${`#/logs/${encodeURIComponent(log.id)}?gateway=${encodeURIComponent(params.gateway)}`}
            onClick=${(e) => e.stopPropagation()}>${new Date(log.created_at).toLocaleString()}</a></td>
          <td>${log.status_code ?? "error"}${log.success ? "" : " ✗"}</td><td>${log.provider}</td><td>${log.model}</td>
          <td>${log.tokens_in ?? ""}</td><td>${log.tokens_out ?? ""}</td><td>${money(log.cost)}</td>
          <td>${log.duration} ms</td><td>${log.cached ? "HIT" : "MISS"}</td><td>${log.request_type}</td></tr>`)}
        </tbody></table></div>
      ${info && html`<nav aria-label="Pages" class="row-actions">
        <button class="secondary" disabled=${current <= 1} onClick=${() => set({ page: current - 1 })}>Previous</button>
        <span>Page ${current}${info.total_count != null ? ` of ${Math.max(1, Math.ceil(info.total_count / PER_PAGE))}` : ""}</span>
        <button class="secondary" disabled=${(page.result || []).length < PER_PAGE} onClick=${() => set({ page: current + 1 })}>Next</button>
      </nav>`}`;
  };

  function pretty(text) {
    if (text == null) return null;
    if (typeof text === "object") return JSON.stringify(text, null, 2);
    try { return JSON.stringify(JSON.parse(text), null, 2); } catch { return text; }
  }

  ns.LogDetail = function LogDetail({ route }) {
    const params = ns.routeParams();
    const [log, setLog] = useState(null);
    const [error, setError] = useState(null);
    const [saved, setSaved] = useState(null);
    const path = `/ai-gateway/gateways/${encodeURIComponent(params.gateway || "")}/logs/${encodeURIComponent(route.id)}`;
    useEffect(() => { ns.api(path).then((d) => setLog(d.result)).catch((e) => setError(e.message)); }, [path]);
    async function feedback(value) {
      try {
        const d = await ns.api(path, { method: "PATCH", body: { feedback: value } });
        setLog(d.result);
        setSaved(value === 1 ? "Thumbs up recorded" : "Thumbs down recorded");
      } catch (e) { setError(e.message); }
    }
    const body = (title, text, complete) => html`<h2>${title}${complete === false ? " (truncated)" : ""}</h2>
      ${text == null ? html`<p>Not stored.</p>` : html`<pre class="body" tabindex="0">${pretty(text)}</pre>`}`;
    const skip = new Set(["request_head", "response_head", "metadata", "dlp"]);
    return html`<p><a href=${`#/logs?gateway=${encodeURIComponent(params.gateway || "")}`}>← Logs</a></p>
      <h1>Log ${route.id}</h1>
      <${Problem} error=${error} />
      ${log && html`<div class="row-actions" role="group" aria-label="Feedback">
          <button aria-pressed=${log.feedback === 1} onClick=${() => feedback(1)}>Thumbs up</button>
          <button class="secondary" aria-pressed=${log.feedback === -1} onClick=${() => feedback(-1)}>Thumbs down</button>
          ${saved && html`<span role="status">${saved}</span>`}
        </div>
        <dl class="fields">${Object.entries(log).filter(([k]) => !skip.has(k)).map(([k, v]) => html`<dt>${k}</dt>
          <dd>${v === null || v === undefined ? "—" : typeof v === "object" ? JSON.stringify(v) : String(v)}</dd>`)}</dl>
        <h2>Metadata</h2><pre class="body">${pretty(log.metadata) || "—"}</pre>
        <h2>DLP findings</h2>${log.dlp ? html`<pre class="body">${pretty(log.dlp)}</pre>` : html`<p>None.</p>`}
        ${body("Request", log.request_head, log.request_head_complete)}
        ${body("Response", log.response_head, log.response_head_complete)}`}`;
  };
})(window.aigw);
