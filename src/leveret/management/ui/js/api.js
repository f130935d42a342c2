// The management API (/api/..., RabbitMQ's paths) with the logged-in user's Basic credentials.
// The credentials live in sessionStorage: a reload keeps the login, closing the tab ends it.

const KEY = "leveret.credentials";

let credentials = sessionStorage.getItem(KEY);
let unauthorized = () => {};

/** An answer other than 2xx: status, RabbitMQ's error and reason. */
export class ApiError extends Error {
  constructor(status, error, reason, method = "", path = "") {
    super(reason || error || `HTTP ${status}`);
    this.status = status;
    this.error = error;
    this.reason = reason;
    this.method = method;
    this.path = path;
  }
}

function base64Utf8(text) {
  let bin = "";
  for (const byte of new TextEncoder().encode(text)) bin += String.fromCharCode(byte);
  return btoa(bin);
}

export function setCredentials(user, password) {
  credentials = base64Utf8(`${user}:${password}`);
  sessionStorage.setItem(KEY, credentials);
}

export function clearCredentials() {
  credentials = null;
  sessionStorage.removeItem(KEY);
}

export function loggedIn() {
  return credentials !== null;
}

/** Called with the ApiError when the API refuses the stored credentials (401). */
export function onUnauthorized(fn) {
  unauthorized = fn;
}

/** A path segment: names may hold any character ("/" is the default vhost). */
export const enc = encodeURIComponent;

/** A readable sentence for an error (RabbitMQ's reason; a known meaning for the status). */
export function describe(err) {
  if (!(err instanceof ApiError)) return String(err && err.message ? err.message : err);
  if (err.status === 0) return err.reason;
  if (err.status === 405 && !err.reason) {
    return `Not allowed: this broker does not accept ${err.method} /api${err.path}.`;
  }
  const reason = err.reason || err.error || "";
  const status = {
    400: "Bad request", 401: "Not authorised", 404: "Not found", 405: "Not allowed",
    409: "Conflict", 413: "Too large", 500: "Server error", 503: "Unavailable",
  }[err.status] || `HTTP ${err.status}`;
  return reason ? `${status}: ${reason}` : status;
}

/**
 * request("GET", "/queues/%2F/q") -> the decoded JSON (null for an empty body).
 * ``body`` is sent as JSON unless it is a string; ``raw`` returns the Response.
 */
export async function request(method, path, { body, headers = {}, raw = false } = {}) {
  const init = {
    method,
    headers: { ...headers },
    // no browser-managed credentials: a 401 must not pop the browser's own login dialog
    credentials: "omit",
    cache: "no-store",
  };
  if (credentials) init.headers.Authorization = `Basic ${credentials}`;
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let resp;
  try {
    resp = await fetch(`api${path}`, init);
  } catch (e) {
    throw new ApiError(0, "network", `The broker did not answer (${e.message}).`);
  }
  if (!resp.ok) {
    let error = "";
    let reason = "";
    const text = await resp.text();
    try {
      const data = JSON.parse(text);
      error = data.error || "";
      reason = data.reason || "";
    } catch {
      reason = text.trim();
    }
    const err = new ApiError(resp.status, error, reason, method, path);
    // 401 is also RabbitMQ's answer to a user without the tag a path needs ("Not
    // administrator user"): only a refused login ends the session
    if (resp.status === 401 && credentials && !/^Not \w+ user$/.test(reason)) unauthorized(err);
    throw err;
  }
  if (raw) return resp;
  const text = await resp.text();
  return text ? JSON.parse(text) : null;
}

export const get = (path) => request("GET", path);
export const put = (path, body) => request("PUT", path, { body: body ?? {} });
export const post = (path, body) => request("POST", path, { body: body ?? {} });
export const del = (path, headers) => request("DELETE", path, { headers });

/** Check credentials without storing them: the user (whoami) or an ApiError. */
export async function tryLogin(user, password) {
  const resp = await fetch("api/whoami", {
    headers: { Authorization: `Basic ${base64Utf8(`${user}:${password}`)}` },
    credentials: "omit",
    cache: "no-store",
  }).catch((e) => {
    throw new ApiError(0, "network", `The broker did not answer (${e.message}).`);
  });
  const text = await resp.text();
  let data = {};
  try {
    data = JSON.parse(text);
  } catch {
    data = {};
  }
  if (!resp.ok) throw new ApiError(resp.status, data.error, data.reason || "Login failed");
  return data;
}
