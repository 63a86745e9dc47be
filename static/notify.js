/* Desktop notifications (opt-in): a session waits for you, or finished its turn.
 *
 * One notification per transition per browser: only the tab that holds the stream
 * (feed.js calls setLeading) raises them; the others' stores see the same changes. The
 * switch is shared by every tab (localStorage, followed through 'storage' events).
 */

import { $, setAttr, setHidden } from './dom.js';
import { flash } from './banner.js';
import { baseName, keyOf, projectKey, statusOf } from './format.js';
import { maskSecrets } from './mask.js';

const NOTIFY_KEY = 'helm-monitor.notify';
let notifyOn = false;
let leading = true;
let onOpen = () => {};
const button = $('notify');

/** Whether this tab raises the notifications (it holds the stream, or it is on its own). */
export function setLeading(on) {
  leading = Boolean(on);
}

export function setupNotifications(open) {
  onOpen = open;
  if (!('Notification' in window)) return;
  setHidden(button, false);
  notifyOn = Notification.permission === 'granted' && localStorage.getItem(NOTIFY_KEY) === 'on';
  renderNotifyButton();
  button.addEventListener('click', async () => {
    if (notifyOn) {
      notifyOn = false;
      localStorage.setItem(NOTIFY_KEY, 'off');
    } else {
      let permission = Notification.permission;
      if (permission === 'default') permission = await Notification.requestPermission();
      notifyOn = permission === 'granted';
      localStorage.setItem(NOTIFY_KEY, notifyOn ? 'on' : 'off');
      if (permission === 'denied') flash('error', 'Notifications are blocked for this site in the browser settings.');
    }
    renderNotifyButton();
  });
  // Turned on or off in another tab.
  window.addEventListener('storage', (event) => {
    if (event.key !== NOTIFY_KEY) return;
    notifyOn = Notification.permission === 'granted' && event.newValue === 'on';
    renderNotifyButton();
  });
}

function renderNotifyButton() {
  button.setAttribute('aria-pressed', notifyOn ? 'true' : 'false');
  setAttr(button, 'title', notifyOn
    ? 'Notifications on: click to turn them off'
    : 'Notify me when a session waits for me or finishes its turn');
}

function noticeTransition(previous, session) {
  if (!notifyOn || !leading) return;
  const before = statusOf(previous);
  const after = statusOf(session);
  let text = '';
  if (after === 'waiting' && before !== 'waiting') text = 'is waiting for you';
  else if (before === 'busy' && after === 'idle') text = 'finished its turn';
  if (!text) return;
  try {
    const note = new Notification(`${baseName(projectKey(session))} ${text}`, {
      body: maskSecrets(session.title || 'Untitled session'),
      tag: `helm-${keyOf(session)}`,
      icon: document.querySelector('link[rel="icon"]').href,
    });
    note.addEventListener('click', () => {
      window.focus();
      onOpen(keyOf(session));
      note.close();
    });
  } catch (err) {
    // Some browsers only allow notifications from a service worker; nothing to do.
  }
}

/** A store change: notify of the transitions it holds. */
export function update(change) {
  if (!notifyOn || !leading) return;
  for (const { session, previous } of change.changed) if (previous) noticeTransition(previous, session);
}
