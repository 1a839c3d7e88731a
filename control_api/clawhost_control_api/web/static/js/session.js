// The page's access token, held in memory only (never localStorage or sessionStorage).
//
// The refresh token stays in an HttpOnly cookie no script can read. POST /session/token, with the CSRF token the
// page carries in <meta name="csrf-token">, answers an access token for the browser's session; this module keeps
// it until shortly before it expires and asks again. authorizedFetch adds it as a bearer token and, when the API
// answers 401 (the token expired or the session changed), fetches a new one and retries once.

const TOKEN_PATH = "/session/token";

export class NotSignedInError extends Error {
  constructor() {
    super("not signed in");
    this.name = "NotSignedInError";
  }
}

let cached = null; // {token, renewAt}
let pending = null; // one request at a time, shared by every caller of this page

export function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

async function requestToken() {
  const response = await fetch(TOKEN_PATH, {
    method: "POST",
    credentials: "same-origin",
    cache: "no-store",
    headers: { "X-CSRF-Token": csrfToken() },
  });
  if (response.status === 401) {
    cached = null;
    return null;
  }
  if (!response.ok) {
    throw new Error(`the session service answered ${response.status}`);
  }
  const body = await response.json();
  const lifetime = body.expires_in * 1000;
  // Renew a little early, so a request never leaves with a token about to expire.
  cached = { token: body.access_token, renewAt: Date.now() + lifetime - Math.min(30000, lifetime / 4) };
  return cached.token;
}

// The access token, or null when this browser is not signed in.
export async function accessToken({ renew = false } = {}) {
  if (!renew && cached && Date.now() < cached.renewAt) {
    return cached.token;
  }
  if (!pending) {
    pending = requestToken().finally(() => {
      pending = null;
    });
  }
  return pending;
}

// fetch() with the access token; throws NotSignedInError when there is no session to take one from.
export async function authorizedFetch(url, init = {}) {
  const attempt = async (token) => {
    const headers = new Headers(init.headers || {});
    headers.set("Authorization", `Bearer ${token}`);
    return fetch(url, { ...init, headers, credentials: "same-origin" });
  };
  let token = await accessToken();
  if (token === null) {
    throw new NotSignedInError();
  }
  let response = await attempt(token);
  if (response.status === 401) {
    token = await accessToken({ renew: true });
    if (token === null) {
      throw new NotSignedInError();
    }
    response = await attempt(token);
  }
  return response;
}

// Where to send a person who must sign in first, and back here afterwards.
export function loginUrl() {
  return `/login?next=${encodeURIComponent(location.pathname + location.search)}`;
}
