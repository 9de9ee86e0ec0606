// The one place that knows where the management API is and how to call it.
// Every page reads and acts through `api()`, with the token the user signed in with.

/** The API's base path: every route the console calls is under it. */
export const API_BASE = '/api/v1';

const TOKEN_KEY = 'signalbox.token';

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** An answer that was not 2xx: its status and the API's `{code, message}`. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * Calls `path` (under API_BASE) and returns the JSON answer.
 * `options.body` is sent as JSON; `options.query` is an object of query parameters
 * (empty values left out).
 */
export async function api(path, options = {}) {
  const url = new URL(API_BASE + path, location.origin);
  for (const [k, v] of Object.entries(options.query || {})) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, v);
  }
  const headers = { Accept: 'application/json' };
  const t = options.token === undefined ? token() : options.token;
  if (t) headers.Authorization = `Bearer ${t}`;
  let body;
  if (options.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(options.body);
  }
  let response;
  try {
    response = await fetch(url, { method: options.method || 'GET', headers, body });
  } catch (e) {
    throw new ApiError(0, 'unreachable', `the engine did not answer: ${e.message}`);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const code = (data && data.code) || `http_${response.status}`;
    const message = (data && data.message) || text || response.statusText;
    const error = new ApiError(response.status, code, message);
    if (response.status === 401) window.dispatchEvent(new CustomEvent('signalbox:unauthenticated'));
    throw error;
  }
  return data;
}

/** Path segments encoded for a URL. */
export function seg(value) {
  return encodeURIComponent(String(value));
}
