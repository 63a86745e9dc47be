/* The banner under the top bar: offline, not allowed, and short-lived error notes. */

import { $, setAttr, setHidden, setText } from './dom.js';

const el = $('banner');
let bannerKind = '';
let toastTimer = 0;

export function showBanner(kind, text) {
  bannerKind = kind;
  setText(el, text);
  setAttr(el, 'data-kind', kind);
  setHidden(el, false);
}

export function clearBanner(kind) {
  if (bannerKind && (!kind || kind === bannerKind)) {
    bannerKind = '';
    setHidden(el, true);
  }
}

export function showAuthError(status) {
  showBanner('auth', status === 401
    ? 'Not signed in: open this page once with ?token=<your token> (the server keeps you signed in with a cookie).'
    : 'Access refused (403): this host name or origin is not allowed by the server.');
}

/** A note that goes away by itself. */
export function flash(kind, text) {
  showBanner(kind, text);
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => clearBanner(kind), 6000);
}
