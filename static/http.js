/* JSON requests to the API: same-origin credentials, no caching, errors as HttpError. */

export class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function fetchJSON(url, options) {
  const response = await fetch(url, Object.assign({
    credentials: 'same-origin',
    cache: 'no-store',
    headers: { Accept: 'application/json' },
  }, options || {}));
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    body = null;
  }
  if (!response.ok) {
    const message = body && typeof body.error === 'string' ? body.error : `HTTP ${response.status}`;
    throw new HttpError(response.status, message);
  }
  return body;
}
