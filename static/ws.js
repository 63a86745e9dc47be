/* The event stream over a WebSocket (SPEC section 12): the same messages, one JSON text
 * frame each ({"id", "type", "sessions", "timestamp", ...}).
 *
 * openWebSocket(url, {open, message, fail}) is the twin of sse.js's openEventStream: one
 * connection, message(type, data, id) per frame, fail() once when it closes or fails, no
 * retries of its own; close() ends it without calling anything. webSocketURL(path) is the
 * ws:// or wss:// address of a path on this page's own host (path prefix included).
 */

export const wsSupported = typeof WebSocket === 'function';

export function webSocketURL(path) {
  const url = new URL(path, location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.href;
}

export function openWebSocket(url, { open, message, fail }) {
  let done = false;
  let socket = null;
  const finish = () => {
    if (done) return false;
    done = true;
    if (socket) {
      socket.onmessage = socket.onerror = socket.onclose = null;
      if (socket.readyState === WebSocket.CONNECTING) {
        // Closing a socket still connecting logs an error: close it once it opens instead.
        socket.onopen = () => socket.close(1000);
      } else {
        socket.onopen = null;
        socket.close(1000);
      }
    }
    return true;
  };
  try {
    socket = new WebSocket(url);
  } catch (err) {
    setTimeout(() => {
      if (finish()) fail();
    }, 0);
    return { close: finish };
  }
  socket.onopen = () => {
    if (!done) open();
  };
  socket.onmessage = (event) => {
    if (done || typeof event.data !== 'string') return;
    let data;
    try {
      data = JSON.parse(event.data);
    } catch (err) {
      return;
    }
    if (!data || typeof data.type !== 'string') return;
    message(data.type, data, typeof data.id === 'string' ? data.id : undefined);
  };
  socket.onerror = socket.onclose = () => {
    if (finish()) fail();
  };
  return { close: finish };
}
