/* The event stream of SPEC section 4 over one EventSource, and nothing more.
 *
 * openEventStream(url, {open, message, fail}) opens it; message(type, data, id) gets
 * each message parsed, with its event id (undefined when it has none). The first error
 * closes it and calls fail() once: the browser's own retry would ignore our backoff, so
 * retrying is transport.js's business. close() ends it without calling anything.
 */

// Every type the server names (an EventSource hears only the types it listens to).
const TYPES = [
  'init', 'refresh', 'session-created', 'session-updated', 'session-deleted', 'keepalive',
  'host-status', 'feed-status',
];

export function openEventStream(url, { open, message, fail }) {
  const source = new EventSource(url);
  let done = false;
  const finish = () => {
    if (done) return false;
    done = true;
    source.close();
    return true;
  };
  source.addEventListener('open', () => {
    if (!done) open();
  });
  for (const type of TYPES) {
    source.addEventListener(type, (event) => {
      if (done) return;
      let data;
      try {
        data = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      message(type, data, event.lastEventId || undefined);
    });
  }
  source.addEventListener('error', () => {
    if (finish()) fail();
  });
  return { close: finish };
}
