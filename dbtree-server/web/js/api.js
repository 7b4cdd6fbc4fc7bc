/**
 * The HTTP client for `/api/v1`: JSON in and out, the bearer token from local storage, and
 * errors as `ApiError` carrying the server's stable `code` and `details`, a sentence for people
 * as `message` (messages.js) and the server's own words as `serverMessage`.
 */

import { explain } from './messages.js';

const TOKEN_KEY = 'dbtree.session';

/** An answer other than 2xx. */
export class ApiError extends Error {
  constructor(status, body, retryAfterSeconds) {
    super(body?.message ?? `The server answered ${status}.`);
    this.status = status;
    this.code = body?.code ?? 'http_' + status;
    this.details = { ...(body?.details ?? {}) };
    if (retryAfterSeconds !== undefined && this.details.retryAfterSeconds === undefined) {
      this.details.retryAfterSeconds = retryAfterSeconds;
    }
    this.retryAfterSeconds = retryAfterSeconds;
    this.serverMessage = body?.message ?? null;
    const { text, detail } = explain(this);
    this.message = text;
    this.detail = detail;
  }
}

/** The signed-in session, if any. */
export const session = {
  get token() {
    try {
      return localStorage.getItem(TOKEN_KEY);
    } catch {
      return null;
    }
  },
  set(token) {
    localStorage.setItem(TOKEN_KEY, token);
    document.dispatchEvent(new CustomEvent('dbtree:session'));
  },
  clear() {
    const had = this.token !== null;
    localStorage.removeItem(TOKEN_KEY);
    if (had) document.dispatchEvent(new CustomEvent('dbtree:session'));
  },
  get signedIn() {
    return this.token !== null;
  },
};

/**
 * Calls the API. `auth` sends the session token; a 401 on such a call ends the session.
 * @returns {Promise<any>} the parsed body, or null for 204
 */
export async function api(method, path, { body, auth = false, query } = {}) {
  const url = new URL('/api/v1' + path, location.origin);
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, String(v));
  }
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (auth) {
    const token = session.token;
    if (!token) throw new ApiError(401, { code: 'unauthenticated', message: 'Please sign in first.' });
    headers.Authorization = 'Bearer ' + token;
  }
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, { code: 'network', message: 'The server cannot be reached. Check your connection.' });
  }
  if (response.status === 204) return null;
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (!response.ok) {
    const retry = Number.parseInt(response.headers.get('Retry-After') ?? '', 10);
    const error = new ApiError(response.status, parsed, Number.isFinite(retry) ? retry : undefined);
    if (auth && response.status === 401) session.clear();
    throw error;
  }
  return parsed;
}
