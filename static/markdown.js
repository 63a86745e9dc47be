/* Markdown of prompts, replies and thinking, rendered safely (design/USAGE_TRANSCRIPTS_SEARCH.md 4.3):

  1. markdown-it with raw HTML off (`html: false`): a tag in a transcript stays text; its
     validateLink already refuses javascript:, vbscript:, file: and data: links;
  2. images become their alt text and address as text: a transcript never makes the page fetch
     anything (and `img-src 'self'` would refuse it anyway, as a CSP violation);
  3. table alignment as classes, not `style` (the CSP allows no inline style);
  4. DOMPurify over the result, HTML profile only (no SVG, no MathML), no `style`, no ids or
     names that could clobber the page's, links to http(s) and mailto only, opened apart with
     no referrer;
  5. highlight.js only inside fenced code, and only when the block comes near the viewport.

The three libraries are vendored classic scripts (static/vendor/), loaded on first use, not with
the page: the dashboard itself never needs them, and compiling them was a sixth of its load.
``loadMarkdown()`` (markdown-it and DOMPurify) is awaited by the session view before it renders;
highlight.js follows when the first fenced code comes near the viewport. Should one be missing
(or not loaded yet) the text is shown as text: nothing here ever inserts unsanitised HTML.
*/

import { h } from './dom.js';

const VENDOR = {
  markdownit: new URL('./vendor/markdown-it/markdown-it.umd.min.js', import.meta.url).href,
  DOMPurify: new URL('./vendor/dompurify/purify.min.js', import.meta.url).href,
  hljs: new URL('./vendor/highlight/highlight.min.js', import.meta.url).href,
};

let md = null;
let purify = null;
let hljs = null;
const loading = new Map(); // global name -> promise of it (null if it failed to load)

/** The classic script that sets ``window[name]``, added once (script-src 'self' allows it). What
is read is what the script set once it ran, never anything found there before. */
function vendored(name) {
  let got = loading.get(name);
  if (!got) {
    got = new Promise((resolve) => {
      const el = document.createElement('script');
      el.src = VENDOR[name];
      el.addEventListener('load', () => resolve(window[name] || null));
      el.addEventListener('error', () => resolve(null));
      document.head.append(el);
    });
    loading.set(name, got);
  }
  return got;
}

let ready = null;

/** markdown-it and DOMPurify, set up once; resolves when both are loaded (or failed: text then). */
export function loadMarkdown() {
  if (!ready) {
    ready = Promise.all([vendored('markdownit'), vendored('DOMPurify')]).then(([markdownit, dompurify]) => {
      if (typeof markdownit === 'function') md = setUpMarkdown(markdownit);
      if (dompurify && typeof dompurify.sanitize === 'function') purify = setUpPurify(dompurify);
    });
  }
  return ready;
}

// How long an idle moment is waited for, at most, before the libraries are loaded anyway.
const IDLE_LOAD_TIMEOUT_MS = 3000;
let idleAsked = false;

/** :func:`loadMarkdown` once the page is idle (asked again: nothing more). */
export function loadMarkdownWhenIdle() {
  if (idleAsked) return;
  idleAsked = true;
  if ('requestIdleCallback' in window) {
    window.requestIdleCallback(() => loadMarkdown(), { timeout: IDLE_LOAD_TIMEOUT_MS });
  } else {
    setTimeout(loadMarkdown, IDLE_LOAD_TIMEOUT_MS);
  }
}

let highlighting = 'no'; // highlight.js: 'no' (not asked for), 'loading', 'done' (loaded, or failed)
const toHighlight = new Set(); // code that came near the viewport before it

function loadHighlight() {
  if (highlighting === 'no') {
    highlighting = 'loading';
    vendored('hljs').then((lib) => {
      highlighting = 'done';
      if (lib && typeof lib.highlightElement === 'function') {
        hljs = lib;
        hljs.configure({ ignoreUnescapedHTML: true });
      }
      const waiting = [...toHighlight];
      toHighlight.clear();
      if (hljs) for (const code of waiting) if (code.isConnected) highlight(code);
    });
  }
}

// Past this size a block renders as text first and as Markdown once it comes near the viewport.
const EAGER_CHARS = 4000;
// highlight.js is skipped for code longer than this (it is linear, but a 20,000-character
// minified line gains nothing from colours).
const HIGHLIGHT_MAX = 20000;

function setUpMarkdown(markdownit) {
  const md = markdownit({ html: false, linkify: false, typographer: false, breaks: true });
  md.renderer.rules.image = (tokens, idx) => {
    const token = tokens[idx];
    const alt = token.children ? token.children.map((t) => t.content).join('') : token.content;
    const src = token.attrGet('src') || '';
    return `<span class="md-image">${md.utils.escapeHtml(`[image${alt ? ': ' + alt : ''}] ${src}`)}</span>`;
  };
  md.core.ruler.push('align_as_class', (state) => {
    for (const token of state.tokens) {
      if (token.type !== 'th_open' && token.type !== 'td_open') continue;
      const style = token.attrGet('style');
      const m = style && /text-align:\s*(left|right|center)/.exec(style);
      if (token.attrs) token.attrs = token.attrs.filter(([name]) => name !== 'style');
      if (m) token.attrJoin('class', `align-${m[1]}`);
    }
  });
  return md;
}

const PURIFY = {
  USE_PROFILES: { html: true },
  FORBID_TAGS: ['style', 'img', 'form', 'input', 'button', 'textarea', 'select', 'iframe', 'object', 'embed'],
  FORBID_ATTR: ['style', 'id', 'name', 'srcset', 'action', 'formaction'],
  ALLOWED_URI_REGEXP: /^(?:https?:|mailto:)/i,
  ALLOW_DATA_ATTR: false,
  RETURN_DOM_FRAGMENT: true,
};

function setUpPurify(purify) {
  purify.addHook('afterSanitizeAttributes', (node) => {
    if (node.nodeName === 'A') {
      if (node.hasAttribute('href')) {
        node.setAttribute('target', '_blank');
        node.setAttribute('rel', 'noopener noreferrer nofollow');
      }
    }
    // Class names come from markdown-it and the rules above (language-x, align-x, md-image), nowhere else.
    if (node.hasAttribute && node.hasAttribute('class')) {
      const kept = node.getAttribute('class').split(/\s+/).filter((c) => /^(?:language-[\w+#.-]{1,40}|align-(?:left|right|center)|md-image)$/.test(c));
      if (kept.length) node.setAttribute('class', kept.join(' '));
      else node.removeAttribute('class');
    }
  });
  return purify;
}

/** The Markdown of ``text`` (already masked) as a sanitised fragment. */
function toFragment(text) {
  return purify.sanitize(md.render(text), PURIFY);
}

let observer = null;

function watch(el) {
  if (!('IntersectionObserver' in window)) {
    upgrade(el);
    return;
  }
  if (!observer) {
    observer = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        if (!entry.isIntersecting) continue;
        observer.unobserve(entry.target);
        upgrade(entry.target);
      }
    }, { rootMargin: '600px 0px' });
  }
  observer.observe(el);
}

// Blocks waiting to be rendered -> their text (the element also shows it, as text, meanwhile).
const pending = new WeakMap();

/** A block shown as text, or code not yet coloured, now rendered in full. */
function upgrade(el) {
  const text = pending.get(el);
  if (text !== undefined) {
    pending.delete(el);
    el.replaceChildren(toFragment(text));
    el.classList.remove('md-plain');
    for (const code of el.querySelectorAll('pre > code')) watch(code);
  } else if (el.nodeName === 'CODE') {
    highlight(el);
  }
}

function highlight(code) {
  if (code.dataset.highlighted || code.textContent.length > HIGHLIGHT_MAX) return;
  const lang = /(?:^|\s)language-([\w+#.-]+)/.exec(code.className);
  if (!lang) return; // untagged fences stay plain: guessing is slow and often wrong
  if (!hljs) {
    if (highlighting !== 'done') { // coloured once it comes (a failed load leaves it plain)
      toHighlight.add(code);
      loadHighlight();
    }
    return;
  }
  if (!hljs.getLanguage(lang[1])) return; // an unknown language: left plain, not guessed
  hljs.highlightElement(code);
}

/** ``text`` (already masked) as Markdown in a block element of class ``cls``. */
export function markdownBlock(text, cls) {
  if (!md || !purify) return h('div', { class: `${cls} md-plain` }, text);
  const content = h('div', { class: 'md-content' });
  if (text.length > EAGER_CHARS) {
    content.classList.add('md-plain');
    content.textContent = text;
    pending.set(content, text);
    watch(content);
  } else {
    content.append(toFragment(text));
    for (const code of content.querySelectorAll('pre > code')) watch(code);
  }
  return h('div', { class: `${cls} markdown` }, content);
}
