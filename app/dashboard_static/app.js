// The dashboard shell: hash routes (bookmarkable, reloadable), the navigation bar, sign-in.
"use strict";
(function (ns) {
  const { html, render, useState, useEffect } = htmPreact;

  // `#/logs?gateway=x&provider=openai` → { page: "logs", id: undefined, params }
  function parseRoute() {
    const [path, search] = (location.hash.replace(/^#/, "") || "/overview").split("?");
    const [page, id] = path.replace(/^\//, "").split("/");
    return { page: page || "overview", id: id ? decodeURIComponent(id) : undefined, params: new URLSearchParams(search || "") };
  }

  ns.navigate = function (page, params, id) {
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null && v !== "") query.set(k, v);
    const text = query.toString();
    location.hash = `#/${page}${id ? `/${encodeURIComponent(id)}` : ""}${text ? `?${text}` : ""}`;
  };
  ns.routeParams = () => Object.fromEntries(parseRoute().params);

  const PAGES = [
    ["overview", "Overview"], ["logs", "Logs"], ["gateways", "Gateways"], ["tokens", "Tokens"], ["keys", "Provider keys"],
  ];

  function SignIn({ onSignedIn }) {
    const [error, setError] = useState(null);
    const [busy, setBusy] = useState(false);
    async function submit(event) {
      event.preventDefault();
      const form = new FormData(event.target);
      const session = { account: String(form.get("account")).trim(), token: String(form.get("token")).trim() };
      setBusy(true);
      setError(null);
      try {
        await ns.api("/ai-gateway/gateways", { query: { per_page: 1 }, session });
        ns.session.set(session.account, session.token);
        onSignedIn();
      } catch (e) {
        setError(e.message);
      } finally {
        setBusy(false);
      }
    }
    return html`<main class="container"><article>
      <h1>Sign in</h1>
      <form onSubmit=${submit}>
        <label for="account">Account</label>
        <input id="account" name="account" required autocomplete="username" />
        <label for="token">Token</label>
        <input id="token" name="token" type="password" required autocomplete="current-password" />
        ${error && html`<p role="alert" class="error-text">${error}</p>`}
        <button type="submit" aria-busy=${busy}>Sign in</button>
      </form>
    </article></main>`;
  }

  function Shell({ route, onSignOut }) {
    const session = ns.session.get();
    const Page = {
      overview: ns.Overview, logs: route.id ? ns.LogDetail : ns.Logs, gateways: ns.Gateways,
      tokens: ns.Tokens, keys: ns.ProviderKeys,
    }[route.page] || ns.Overview;
    const keep = route.params.get("gateway");
    return html`<header class="container">
        <nav class="top" aria-label="Main">
          <ul><li><strong>aigw</strong></li></ul>
          <ul>${PAGES.map(([page, name]) => html`<li>
            <a href=${`#/${page}${keep ? `?gateway=${encodeURIComponent(keep)}` : ""}`}
               aria-current=${route.page === page ? "page" : undefined}>${name}</a></li>`)}
          </ul>
          <ul><li><small>${session.account}</small></li>
            <li><button class="secondary outline" onClick=${onSignOut}>Sign out</button></li></ul>
        </nav>
      </header>
      <main class="container"><${Page} route=${route} key=${location.hash} /></main>`;
  }

  function App() {
    const [route, setRoute] = useState(parseRoute());
    const [signedIn, setSignedIn] = useState(!!ns.session.get());
    useEffect(() => {
      const changed = () => setRoute(parseRoute());
      window.addEventListener("hashchange", changed);
      return () => window.removeEventListener("hashchange", changed);
    }, []);
    if (!signedIn) return html`<${SignIn} onSignedIn=${() => setSignedIn(true)} />`;
    return html`<${Shell} route=${route} onSignOut=${() => { ns.session.clear(); setSignedIn(false); }} />`;
  }

  render(html`<${App} />`, document.getElementById("app"));
})(window.aigw);
