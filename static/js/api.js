/**
 * The signed-in session and the REST API: JWT from /api/token/, refreshed before it expires.
 *
 * Tokens are kept in sessionStorage (this tab only) so a reload keeps the user signed in; they
 * never go into a cookie or a URL.
 */

const STORAGE_KEY = "trading-gateway.session";
const REFRESH_MARGIN_MS = 60_000; // refresh the access token this long before it expires

export class ApiError extends Error {
  constructor(status, body) {
    super(describeError(status, body));
    this.status = status;
    this.body = body;
  }
}

/** DRF's error shapes ({"detail"}, {"field": ["..."]}, ["..."]) as one readable line. */
export function describeError(status, body) {
  if (body && typeof body === "object") {
    if (typeof body.detail === "string") return body.detail;
    const parts = Object.entries(body).map(([field, value]) => {
      const text = Array.isArray(value) ? value.join(" ") : typeof value === "object" ? JSON.stringify(value) : String(value);
      return field === "non_field_errors" ? text : withField(field, text);
    });
    if (parts.length) return parts.join("; ");
  }
  return status ? `HTTP ${status}` : "The server could not be reached";
}

/** "quantity", "quantity must be greater than 0" -> "Quantity must be greater than 0": the field named once. */
function withField(field, text) {
  const label = field.replace(/_/g, " ");
  const capital = (words) => words.charAt(0).toUpperCase() + words.slice(1);
  return text.toLowerCase().startsWith(label.toLowerCase()) ? capital(text) : `${capital(label)}: ${text}`;
}

/** The `exp` claim of a JWT in epoch ms (read only to schedule a refresh, never trusted). */
export function tokenExpiry(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(payload.padEnd(payload.length + ((4 - (payload.length % 4)) % 4), "=")));
    return typeof claims.exp === "number" ? claims.exp * 1000 : null;
  } catch {
    return null;
  }
}

async function requestJson(method, path, { body, token } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, null);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { detail: text.slice(0, 200) };
    }
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export class Session {
  constructor({ onChange = () => {} } = {}) {
    this.onChange = onChange;
    this.username = null;
    this.access = null;
    this.refresh = null;
    this._refreshTimer = null;
    this._refreshing = null;
    this._restore();
  }

  get signedIn() {
    return Boolean(this.refresh);
  }

  async login(username, password) {
    const tokens = await requestJson("POST", "/api/token/", { body: { username, password } });
    this.username = username;
    this._store(tokens);
    this.onChange(this);
  }

  logout() {
    clearTimeout(this._refreshTimer);
    this.username = this.access = this.refresh = null;
    sessionStorage.removeItem(STORAGE_KEY);
    this.onChange(this);
  }

  /**
   * A valid access token, refreshed when it is close to expiry or when `refresh` is true (the
   * server refused the current one). Null once the refresh token itself is refused: signed out.
   */
  async token({ refresh = false } = {}) {
    if (!this.signedIn) return null;
    const expiry = tokenExpiry(this.access);
    const fresh = this.access && expiry && expiry - Date.now() > REFRESH_MARGIN_MS / 4;
    if (!refresh && fresh) return this.access;
    await this.refreshNow();
    return this.access;
  }

  /** One refresh at a time; a refused refresh token signs the user out. */
  refreshNow() {
    this._refreshing ??= (async () => {
      try {
        const tokens = await requestJson("POST", "/api/token/refresh/", { body: { refresh: this.refresh } });
        this._store(tokens);
      } catch (error) {
        if (error.status === 401 || error.status === 400) this.logout();
        else throw error; // the server is unreachable: keep the session, try again later
      } finally {
        this._refreshing = null;
      }
    })();
    return this._refreshing;
  }

  /** A REST call with the access token; a 401 is retried once after a refresh. */
  async api(method, path, body) {
    const token = await this.token();
    if (!token) throw new ApiError(401, { detail: "Please sign in" });
    try {
      return await requestJson(method, path, { body, token });
    } catch (error) {
      if (error.status !== 401) throw error;
      const retried = await this.token({ refresh: true });
      if (!retried) throw error;
      return requestJson(method, path, { body, token: retried });
    }
  }

  _store({ access, refresh }) {
    this.access = access;
    if (refresh) this.refresh = refresh; // simplejwt returns a new one only when rotating
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify({ username: this.username, access: this.access, refresh: this.refresh }));
    this._scheduleRefresh();
  }

  _restore() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(STORAGE_KEY) ?? "null");
      if (saved?.refresh) {
        Object.assign(this, { username: saved.username, access: saved.access, refresh: saved.refresh });
        this._scheduleRefresh();
      }
    } catch {
      sessionStorage.removeItem(STORAGE_KEY);
    }
  }

  _scheduleRefresh() {
    clearTimeout(this._refreshTimer);
    const expiry = tokenExpiry(this.access);
    if (!expiry) return;
    const due = Math.max(1_000, expiry - Date.now() - REFRESH_MARGIN_MS);
    this._refreshTimer = setTimeout(() => {
      this.refreshNow().catch(() => this._retryRefreshLater());
    }, due);
  }

  _retryRefreshLater() {
    clearTimeout(this._refreshTimer);
    this._refreshTimer = setTimeout(() => this.refreshNow().catch(() => this._retryRefreshLater()), 10_000);
  }
}

/** The public status document (/ws/status); null when the server cannot be reached. */
export async function fetchStatus() {
  try {
    return await requestJson("GET", "/ws/status");
  } catch {
    return null;
  }
}
