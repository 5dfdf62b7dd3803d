// The API client: the session (tokens or an API key), authenticated requests with token refresh,
// and the live WebSocket with reconnection.
//
// Where credentials live, and why:
// - After a login the access and refresh tokens are kept in sessionStorage: they survive a reload
//   of the tab but not closing it, and other tabs do not share them. The strict
//   Content-Security-Policy (no inline or foreign script) is what keeps script from reading them.
// - A wall screen opens /#key=wk_... : the fragment never leaves the browser (it is not sent to
//   the server, not logged, not in a Referer), and it is removed from the address bar at once.
//   The key then lives in sessionStorage like a token.
// - Browsers cannot set headers on a WebSocket, so the live stream gets the credential in its
//   query string (?token=), which the service checks before accepting the connection.

const API = "/api/v1";
const STORE_KEY = "witskit.session";
/** Refresh this many seconds before the access token expires. */
const REFRESH_MARGIN = 30;

/** Raised for a non-2xx response; status 0 means the network failed. */
export class ApiError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.detail = detail;
  }
}

class Session extends EventTarget {
  constructor() {
    super();
    this.state = null; // {kind: "token", access, refresh, expiresAt} | {kind: "key", key}
    this.refreshing = null;
    this.refreshTimer = 0;
    /** server clock - browser clock, in seconds, from the Date header of responses. */
    this.clockOffset = 0;
    this.load();
  }

  load() {
    try {
      const raw = sessionStorage.getItem(STORE_KEY);
      this.state = raw ? JSON.parse(raw) : null;
    } catch {
      this.state = null;
    }
    this.schedule();
  }

  save(state) {
    this.state = state;
    if (state) sessionStorage.setItem(STORE_KEY, JSON.stringify(state));
    else sessionStorage.removeItem(STORE_KEY);
    this.schedule();
  }

  get active() {
    return this.state !== null;
  }

  get kind() {
    return this.state ? this.state.kind : null;
  }

  /** Now on the server's clock (seconds since the epoch): ages are computed against this. */
  now() {
    return Date.now() / 1000 + this.clockOffset;
  }

  /** Takes an API key from the URL fragment (#key=wk_...), and removes it from the address bar.
   * Returns the other fragment parameters (rig, units, theme) for the caller to apply. */
  takeFragment() {
    const hash = window.location.hash.replace(/^#/, "");
    if (!hash) return {};
    const params = new URLSearchParams(hash);
    const key = params.get("key");
    const rest = Object.fromEntries([...params].filter(([name]) => name !== "key"));
    if (key) {
      if (/^wk_[A-Za-z0-9_\-]{8,200}$/.test(key)) {
        this.save({ kind: "key", key });
      }
      // Whatever happens next, the key must not stay visible or end up in a bookmark.
      history.replaceState(null, "", window.location.pathname + window.location.search);
    }
    return rest;
  }

  credential() {
    if (!this.state) return null;
    return this.state.kind === "key" ? this.state.key : this.state.access;
  }

  schedule() {
    clearTimeout(this.refreshTimer);
    const s = this.state;
    if (!s || s.kind !== "token") return;
    const wait = Math.max(1, s.expiresAt - Date.now() / 1000 - REFRESH_MARGIN);
    // Refreshing ahead of expiry keeps the WebSocket's reconnects and every request working
    // without a 401 round trip; setTimeout cannot take more than 2^31 ms.
    this.refreshTimer = setTimeout(() => {
      this.refresh().catch(() => {});
    }, Math.min(wait * 1000, 2 ** 31 - 1));
  }

  tokens(body) {
    return {
      kind: "token",
      access: body.access_token,
      refresh: body.refresh_token,
      expiresAt: Date.now() / 1000 + Number(body.expires_in || 300),
    };
  }

  async login(username, password) {
    const form = new URLSearchParams({ username, password, grant_type: "password" });
    const response = await this.raw("POST", `${API}/auth/token`, {
      body: form,
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
    });
    if (!response.ok) {
      let detail = "";
      try {
        detail = (await response.json()).detail;
      } catch {
        detail = "";
      }
      const error = new ApiError(response.status, detail);
      error.retryAfter = Number(response.headers.get("Retry-After") || 0);
      throw error;
    }
    this.save(this.tokens(await response.json()));
  }

  /** One refresh at a time; every caller waiting for it gets its outcome. */
  refresh() {
    const s = this.state;
    if (!s || s.kind !== "token") return Promise.reject(new ApiError(401, "not logged in"));
    if (!this.refreshing) {
      this.refreshing = (async () => {
        try {
          const response = await this.raw("POST", `${API}/auth/refresh`, {
            body: JSON.stringify({ refresh_token: s.refresh }),
            headers: { "Content-Type": "application/json" },
          });
          // Logged out (or in as someone else) while this was in flight: the answer is stale,
          // and saving it would bring back a session the user has just ended.
          if (this.state !== s) throw new ApiError(401, "the session ended during a refresh");
          if (!response.ok) {
            this.expire("Your session has ended. Please sign in again.");
            throw new ApiError(response.status, "session expired");
          }
          const body = await response.json();
          if (this.state !== s) throw new ApiError(401, "the session ended during a refresh");
          this.save(this.tokens(body));
        } finally {
          this.refreshing = null;
        }
      })();
    }
    return this.refreshing;
  }

  /** Forgets the credential and tells the page (which shows the sign-in form). */
  expire(message) {
    this.save(null);
    this.dispatchEvent(new CustomEvent("expired", { detail: message }));
  }

  /** Forgets the credential at once, then ends the session on the server (POST /auth/logout
   * revokes the refresh token's whole family). Best effort: the browser has forgotten the tokens
   * whether or not the service can be reached; the returned promise never rejects. */
  logout() {
    const s = this.state;
    this.save(null);
    if (!s || s.kind !== "token" || !s.refresh) return Promise.resolve();
    return this.raw("POST", `${API}/auth/logout`, {
      body: JSON.stringify({ refresh_token: s.refresh }),
      headers: { "Content-Type": "application/json" },
      keepalive: true, // finishes even if the page is closed or navigated away right after
    }).then(
      () => {},
      () => {},
    );
  }

  async raw(method, url, init = {}) {
    let response;
    try {
      response = await fetch(url, { method, credentials: "omit", cache: "no-store", ...init });
    } catch (error) {
      if (error.name === "AbortError") throw error; // cancelled by us: not a failure to report
      throw new ApiError(0, `the service cannot be reached (${error.message})`);
    }
    const date = Date.parse(response.headers.get("Date") || "");
    if (Number.isFinite(date)) {
      // The Date header has a one-second resolution; smooth it so ages do not jitter.
      const offset = date / 1000 + 0.5 - Date.now() / 1000;
      this.clockOffset = Math.abs(offset - this.clockOffset) > 2 ? offset : this.clockOffset * 0.8 + offset * 0.2;
    }
    return response;
  }

  /** An authenticated request; one refresh and retry on 401; the parsed JSON (or null). */
  async request(method, path, { query, body, signal } = {}) {
    const response = await this.authorized(method, path, { query, body, signal });
    if (response.status === 204) return null;
    return response.json();
  }

  /** An authenticated GET of a file (an export): {blob, disposition}; errors as request()'s. */
  async download(path, { query, signal } = {}) {
    const response = await this.authorized("GET", path, { query, signal, accept: "*/*" });
    return { blob: await response.blob(), disposition: response.headers.get("Content-Disposition") || "" };
  }

  /** The 2xx response of an authenticated request (one refresh and retry on 401), else ApiError. */
  async authorized(method, path, { query, body, signal, accept = "application/json" } = {}) {
    const url = new URL(`${API}${path}`, window.location.origin);
    for (const [name, value] of Object.entries(query || {})) {
      if (value === undefined || value === null) continue;
      for (const item of Array.isArray(value) ? value : [value]) url.searchParams.append(name, item);
    }
    for (let attempt = 0; ; attempt += 1) {
      const credential = this.credential();
      if (!credential) throw new ApiError(401, "not logged in");
      const headers = { Authorization: `Bearer ${credential}`, Accept: accept };
      const init = { headers, signal };
      if (body !== undefined) {
        headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(body);
      }
      const response = await this.raw(method, url, init);
      if (response.status === 401 && attempt === 0 && this.kind === "token") {
        await this.refresh();
        continue;
      }
      if (response.status === 401) {
        this.expire(
          this.kind === "key"
            ? "The API key in this screen's address was refused (revoked or expired)."
            : "Your session has ended. Please sign in again.",
        );
      }
      if (!response.ok) {
        let detail = "";
        try {
          const parsed = await response.json();
          detail = typeof parsed.detail === "string" ? parsed.detail : JSON.stringify(parsed.detail);
        } catch {
          detail = response.statusText;
        }
        throw new ApiError(response.status, detail);
      }
      return response;
    }
  }

  /** A credential for a new WebSocket: refreshed first when it is about to expire. */
  async socketCredential() {
    const s = this.state;
    if (s && s.kind === "token" && s.expiresAt - Date.now() / 1000 < REFRESH_MARGIN) {
      await this.refresh();
    }
    return this.credential();
  }
}

export const session = new Session();

export const api = {
  get: (path, query, signal) => session.request("GET", path, { query, signal }),
  post: (path, body) => session.request("POST", path, { body }),
  patch: (path, body) => session.request("PATCH", path, { body }),
  delete: (path) => session.request("DELETE", path),
  download: (path, query, signal) => session.download(path, { query, signal }),
};

/**
 * The live frames of one source, over /api/v1/live, reconnecting with backoff.
 *
 * onFrame(record) gets each decoded frame; onState(state, detail) gets "connecting", "live",
 * "waiting" (detail: seconds until the next try) and "closed". A connection that stays up
 * 15 s resets the backoff, so a flapping link does not hammer the service.
 */
export class LiveSocket {
  constructor(source, { onFrame, onState, onReconnect }) {
    this.source = source;
    this.onFrame = onFrame;
    this.onState = onState;
    this.onReconnect = onReconnect;
    this.ws = null;
    this.closed = false;
    this.failures = 0;
    this.timer = 0;
    this.stableTimer = 0;
    this.everOpen = false;
    this.open();
  }

  async open() {
    if (this.closed) return;
    this.onState("connecting");
    let credential;
    try {
      credential = await session.socketCredential();
    } catch {
      credential = null;
    }
    if (this.closed) return;
    if (!credential) {
      this.onState("closed", "not signed in");
      return;
    }
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const url = new URL(`${scheme}//${window.location.host}${API}/live`);
    url.searchParams.set("source", this.source);
    url.searchParams.set("token", credential);
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.addEventListener("open", () => {
      if (this.ws !== ws) return;
      this.onState("live");
      if (this.everOpen && this.onReconnect) this.onReconnect();
      this.everOpen = true;
      this.stableTimer = setTimeout(() => {
        this.failures = 0;
      }, 15000);
    });
    ws.addEventListener("message", (event) => {
      if (this.ws !== ws) return;
      let record;
      try {
        record = JSON.parse(event.data);
      } catch {
        return; // not ours to judge: the service sends JSON, anything else is ignored
      }
      this.onFrame(record);
    });
    ws.addEventListener("close", () => {
      if (this.ws !== ws) return;
      clearTimeout(this.stableTimer);
      this.ws = null;
      if (this.closed) return;
      this.failures += 1;
      // 1, 2, 4, ... 30 s, with jitter so a hundred screens do not reconnect in step.
      const base = Math.min(30, 2 ** Math.min(this.failures - 1, 5));
      const delay = base * (0.75 + Math.random() * 0.5);
      this.retryAt = Date.now() + delay * 1000;
      this.onState("waiting", delay);
      this.timer = setTimeout(() => this.open(), delay * 1000);
      // A refused handshake looks like any close to a browser; asking the API tells a dead
      // session (it then signs out) from a service that is away.
      if (this.failures >= 2) api.get("/auth/me").catch(() => {});
    });
  }

  /** Seconds until the next attempt (for the status line). */
  get retryIn() {
    return this.retryAt ? Math.max(0, (this.retryAt - Date.now()) / 1000) : 0;
  }

  /** Reconnect now (the user asked). */
  retry() {
    if (this.ws || this.closed) return;
    clearTimeout(this.timer);
    this.open();
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    clearTimeout(this.stableTimer);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000);
    }
    this.onState("closed");
  }
}
