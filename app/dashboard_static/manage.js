// Gateways, Tokens and Provider keys: the management pages (writes need a token with `edit`).
"use strict";
(function (ns) {
  const { html, useState, useEffect } = htmPreact;
  const Problem = ({ error }) => error && html`<p role="alert" class="error-text">${error}</p>`;

  function useList(path, deps) {
    const [rows, setRows] = useState(null);
    const [error, setError] = useState(null);
    const reload = () => ns.api(path, { query: { per_page: 50 } })
      .then((d) => { setRows(d.result); setError(null); }).catch((e) => setError(e.message));
    useEffect(() => { reload(); }, deps || []);
    return { rows, error, setError, reload };
  }

  // Every gateway setting the management API accepts, as [field, label, kind, choices].
  const SETTINGS = [
    ["authentication", "Authentication", "bool"], ["collect_logs", "Collect logs", "bool"],
    ["cache_ttl", "Cache TTL (s)", "int"], ["cache_invalidate_on_update", "Invalidate cache on update", "bool"],
    ["rate_limiting_limit", "Rate limit (requests)", "int"], ["rate_limiting_interval", "Rate limit interval (s)", "int"],
    ["rate_limiting_technique", "Rate limit technique", "choice", ["fixed", "sliding"]],
    ["log_management", "Log limit (rows)", "int"],
    ["log_management_strategy", "When the log limit is reached", "choice", ["", "STOP_INSERTING", "DELETE_OLDEST"]],
    ["retry_max_attempts", "Retry attempts", "int"], ["retry_delay", "Retry delay (ms)", "int"],
    ["retry_backoff", "Retry backoff", "choice", ["", "constant", "linear", "exponential"]],
  ];

  // Settings with a structure of their own, edited as the API's JSON (docs/observability.md,
  // docs/dlp.md, docs/spend-limits.md); an empty field leaves the setting out.
  const JSON_SETTINGS = [
    ["otel", "OpenTelemetry exporters (JSON)", '[{"url": "https://collector.example/v1/traces", "content_type": "json"}]'],
    ["dlp", "DLP (JSON)", '{"enabled": true, "action": "FLAG", "profiles": ["email", "phone"]}'],
    ["spend_limits", "Spend limits (JSON)", '{"enabled": true, "rules": [{"id": "daily", "limitType": "cost", "limit": 5, "window": 86400}]}'],
  ];

  function settingsFrom(form) {
    const body = {};
    for (const [field, , kind] of SETTINGS) {
      const value = form.get(field);
      if (kind === "bool") body[field] = value === "on";
      else if (kind === "int") body[field] = value === "" || value === null ? null : Number(value);
      else body[field] = value || null;
    }
    if (body.rate_limiting_technique === null) body.rate_limiting_technique = "fixed";
    for (const field of ["cache_ttl", "rate_limiting_limit", "rate_limiting_interval"]) if (body[field] === null) body[field] = 0;
    for (const [field, label] of JSON_SETTINGS) {
      const text = String(form.get(field) || "").trim();
      if (!text) continue;
      try { body[field] = JSON.parse(text); } catch { throw new Error(`${label}: not valid JSON`); }
    }
    return body;
  }

  function SettingsFields({ gateway }) {
    return html`<div class="filters">${SETTINGS.map(([field, label, kind, choices]) => {
      const value = gateway ? gateway[field] : undefined;
      if (kind === "bool") return html`<label><input type="checkbox" name=${field} checked=${!!value} /> ${label}</label>`;
      if (kind === "int") return html`<label>${label}<input type="number" min="0" name=${field} value=${value ?? ""} /></label>`;
      return html`<label>${label}<select name=${field} value=${value || ""}>
        ${choices.map((c) => html`<option value=${c}>${c || "—"}</option>`)}</select></label>`;
    })}</div>
    ${JSON_SETTINGS.map(([field, label, example]) => html`<label>${label}
      <textarea name=${field} rows="2" placeholder=${example}>${gateway && gateway[field] ? JSON.stringify(gateway[field]) : ""}</textarea></label>`)}`;
  }

  ns.Gateways = function Gateways() {
    const list = useList("/ai-gateway/gateways");
    const [editing, setEditing] = useState(null);
    async function create(event) {
      event.preventDefault();
      const form = new FormData(event.target);
      try {
        await ns.api("/ai-gateway/gateways", { method: "POST", body: { id: String(form.get("id")).trim(), ...settingsFrom(form) } });
        event.target.reset();
        list.reload();
      } catch (e) { list.setError(e.message); }
    }
    async function save(event) {
      event.preventDefault();
      try {
        await ns.api(`/ai-gateway/gateways/${encodeURIComponent(editing.id)}`, { method: "PUT", body: settingsFrom(new FormData(event.target)) });
        setEditing(null);
        list.reload();
      } catch (e) { list.setError(e.message); }
    }
    async function remove(gateway) {
      if (!confirm(`Delete gateway ${gateway.id} with its logs and stored keys?`)) return;
      try { await ns.api(`/ai-gateway/gateways/${encodeURIComponent(gateway.id)}`, { method: "DELETE" }); list.reload(); }
      catch (e) { list.setError(e.message); }
    }
    return html`<h1>Gateways</h1>
      <${Problem} error=${list.error} />
      <div class="table-box"><table>
        <thead><tr><th scope="col">Gateway</th><th scope="col">Authentication</th><th scope="col">Logs</th>
          <th scope="col">Cache TTL</th><th scope="col">Rate limit</th><th scope="col">Actions</th></tr></thead>
        <tbody>${(list.rows || []).map((g) => html`<tr><td>${g.id}</td><td>${g.authentication ? "on" : "off"}</td>
          <td>${g.collect_logs ? "on" : "off"}</td><td>${g.cache_ttl}</td>
          <td>${g.rate_limiting_limit ? `${g.rate_limiting_limit}/${g.rate_limiting_interval}s` : "—"}</td>
          <td class="row-actions"><button class="secondary outline" onClick=${() => setEditing(g)}>Edit ${g.id}</button>
            <button class="secondary" onClick=${() => remove(g)}>Delete ${g.id}</button></td></tr>`)}</tbody></table></div>
      ${editing && html`<article><h2>Edit ${editing.id}</h2><form onSubmit=${save} key=${editing.id}>
        <${SettingsFields} gateway=${editing} />
        <div class="row-actions"><button type="submit">Save</button>
          <button type="button" class="secondary" onClick=${() => setEditing(null)}>Cancel</button></div></form></article>`}
      <article><h2>New gateway</h2><form onSubmit=${create}>
        <label for="new-gateway-id">Gateway ID</label>
        <input id="new-gateway-id" name="id" required pattern="[a-z0-9][a-z0-9_\\-]*" maxlength="64" />
        <${SettingsFields} gateway=${{ collect_logs: true, rate_limiting_technique: "fixed" }} />
        <button type="submit">Create gateway</button></form></article>`;
  };

  ns.Tokens = function Tokens() {
    const list = useList("/tokens");
    const [created, setCreated] = useState(null);
    async function create(event) {
      event.preventDefault();
      const form = new FormData(event.target);
      const permissions = ["run", "read", "edit"].filter((p) => form.get(p) === "on");
      const gateways = String(form.get("gateways") || "*").split(",").map((s) => s.trim()).filter(Boolean);
      try {
        const d = await ns.api("/tokens", { method: "POST", body: { name: String(form.get("name")), permissions, gateways: gateways.length ? gateways : ["*"] } });
        setCreated(d.result);
        event.target.reset();
        list.reload();
      } catch (e) { list.setError(e.message); }
    }
    async function revoke(token) {
      if (!confirm(`Revoke token ${token.name || token.id}?`)) return;
      try { await ns.api(`/tokens/${encodeURIComponent(token.id)}`, { method: "DELETE" }); list.reload(); }
      catch (e) { list.setError(e.message); }
    }
    return html`<h1>Tokens</h1>
      <${Problem} error=${list.error} />
      ${created && html`<article role="status"><p>Token <strong>${created.name}</strong> created. Copy it now: it is not shown again.</p>
        <p class="secret" aria-label="New token value">${created.value}</p>
        <button onClick=${() => navigator.clipboard && navigator.clipboard.writeText(created.value)}>Copy</button></article>`}
      <div class="table-box"><table>
        <thead><tr><th scope="col">Name</th><th scope="col">ID</th><th scope="col">Permissions</th>
          <th scope="col">Gateways</th><th scope="col">Status</th><th scope="col">Actions</th></tr></thead>
        <tbody>${(list.rows || []).map((t) => html`<tr><td>${t.name}</td><td>${t.id}</td><td>${(t.permissions || []).join(", ")}</td>
          <td>${(t.gateways || []).join(", ")}</td><td>${t.revoked_at ? "revoked" : "active"}</td>
          <td>${!t.revoked_at && html`<button class="secondary" onClick=${() => revoke(t)}>Revoke ${t.name || t.id}</button>`}</td></tr>`)}
        </tbody></table></div>
      <article><h2>New token</h2><form onSubmit=${create}>
        <label for="token-name">Name</label><input id="token-name" name="name" required maxlength="255" />
        <fieldset><legend>Permissions</legend>
          ${["run", "read", "edit"].map((p) => html`<label><input type="checkbox" name=${p} checked=${p === "run"} /> ${p}</label>`)}
        </fieldset>
        <label>Gateways (comma-separated, * for all)<input name="gateways" value="*" /></label>
        <button type="submit">Create token</button></form></article>`;
  };

  ns.ProviderKeys = function ProviderKeys() {
    const params = ns.routeParams();
    const gateway = params.gateway;
    const path = `/ai-gateway/gateways/${encodeURIComponent(gateway || "")}/provider_configs`;
    const list = useList(path, [gateway]);
    async function add(event) {
      event.preventDefault();
      const form = new FormData(event.target);
      try {
        await ns.api(path, { method: "POST", body: {
          provider_slug: String(form.get("provider")).trim(), alias: String(form.get("alias") || "default").trim() || "default",
          secret: String(form.get("secret")), default_config: form.get("default") === "on" } });
        event.target.reset();
        list.reload();
      } catch (e) { list.setError(e.message); }
    }
    async function remove(key) {
      if (!confirm(`Delete the ${key.provider_slug} key ${key.alias}?`)) return;
      try { await ns.api(`${path}/${encodeURIComponent(key.id)}`, { method: "DELETE" }); list.reload(); }
      catch (e) { list.setError(e.message); }
    }
    return html`<h1>Provider keys</h1>
      <div class="filters"><${ns.GatewaySelect} value=${gateway} onChange=${(g) => ns.navigate("keys", { gateway: g })} /></div>
      <${Problem} error=${gateway && list.error} />
      <div class="table-box"><table>
        <thead><tr><th scope="col">Provider</th><th scope="col">Alias</th><th scope="col">Key</th>
          <th scope="col">Default</th><th scope="col">Actions</th></tr></thead>
        <tbody>${(list.rows || []).map((k) => html`<tr><td>${k.provider_slug}</td><td>${k.alias}</td>
          <td class="secret">${k.secret_preview}</td><td>${k.default_config ? "yes" : ""}</td>
          <td><button class="secondary" onClick=${() => remove(k)}>Delete ${k.alias}</button></td></tr>`)}</tbody></table></div>
      <article><h2>Add a key</h2><form onSubmit=${add}>
        <div class="filters">
          <label>Provider<input name="provider" required placeholder="openai" /></label>
          <label>Alias<input name="alias" placeholder="default" /></label>
          <label>Secret<input name="secret" type="password" required autocomplete="off" /></label>
          <label><input type="checkbox" name="default" /> Default key</label>
        </div>
        <button type="submit">Add key</button></form></article>`;
  };
})(window.aigw);
