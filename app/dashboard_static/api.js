// The management API, as the dashboard calls it: the token from sessionStorage as a Bearer token,
// v4 envelopes unwrapped, and an API error thrown with the API's own message.
"use strict";
window.aigw = window.aigw || {};
(function (ns) {
  const KEY = "aigw.session";

  ns.session = {
    get() {
      try { return JSON.parse(sessionStorage.getItem(KEY) || "null"); } catch { return null; }
    },
    set(account, token) { sessionStorage.setItem(KEY, JSON.stringify({ account, token })); },
    clear() { sessionStorage.removeItem(KEY); },
  };

  class ApiError extends Error {}
  ns.ApiError = ApiError;

  // `path` is below /client/v4/accounts/{account}; query values that are arrays repeat the name.
  ns.api = async function api(path, { method = "GET", query, body, session } = {}) {
    const current = session || ns.session.get();
    if (!current) throw new ApiError("Not signed in");
    const url = new URL(`/client/v4/accounts/${encodeURIComponent(current.account)}${path}`, location.origin);
    for (const [name, value] of Object.entries(query || {})) {
      if (value === undefined || value === null || value === "") continue;
      for (const item of Array.isArray(value) ? value : [value]) url.searchParams.append(name, String(item));
    }
    const headers = { Authorization: `Bearer ${current.token}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    let document = null;
    try { document = await response.json(); } catch { /* not JSON */ }
    if (!response.ok || (document && document.success === false)) {
      const errors = (document && document.errors) || [];
      const message = errors.map((e) => e.message).join("; ") || `HTTP ${response.status}`;
      const error = new ApiError(message);
      error.status = response.status;
      throw error;
    }
    return document;
  };

  // The logs API's `filters`, as JSON in one parameter (one of the forms it accepts).
  ns.filtersParam = function (filters) {
    return filters.length ? JSON.stringify(filters) : undefined;
  };
})(window.aigw);
