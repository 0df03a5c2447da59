// The admin key the dashboard presents to an edge running with edge/auth = on. It lives in
// sessionStorage (this browser tab only, gone when the tab closes), is sent only as an
// `Authorization: Bearer …` header, and is never put in a URL, the DOM or a log.

export const ADMIN_KEY_STORAGE = 'aigw.adminKey';

function storage() {
  try {
    return globalThis.sessionStorage ?? null;
  } catch {
    return null; // storage disabled (privacy settings, sandboxed frame)
  }
}

//  The stored key, or null.
export function getAdminKey() {
  try {
    const k = storage()?.getItem(ADMIN_KEY_STORAGE);
    return k ? k : null;
  } catch {
    return null;
  }
}

//  Stores `key` (trimmed) for this tab; an empty key clears it. False if it could not be stored.
export function setAdminKey(key) {
  const k = typeof key === 'string' ? key.trim() : '';
  if (!k) {
    clearAdminKey();
    return true;
  }
  try {
    const s = storage();
    if (!s) return false;
    s.setItem(ADMIN_KEY_STORAGE, k);
    return true;
  } catch {
    return false;
  }
}

export function clearAdminKey() {
  try {
    storage()?.removeItem(ADMIN_KEY_STORAGE);
  } catch {
    /* nothing stored */
  }
}

//  Request headers carrying the stored key ({} when there is none).
export function authHeaders(key = getAdminKey()) {
  return key ? { Authorization: `Bearer ${key}` } : {};
}

//  fetch() with the stored key added as Authorization (unless the caller set one).
export function authFetch(url, init = {}) {
  const headers = { ...authHeaders(), ...(init.headers || {}) };
  return fetch(url, { ...init, headers });
}

//  Is this HTTP status the edge asking for (another) key?
export const isAuthStatus = (status) => status === 401 || status === 403;

//  `text` with every occurrence of `secret` masked (a server message must not echo a key).
export function redact(text, secret) {
  if (typeof text !== 'string' || !secret) return text;
  return text.split(secret).join('•••');
}
