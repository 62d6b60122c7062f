// The web UI's shell: a router over #/page fragments, and the few helpers
// every page uses. Each page is a module whose mount(main) draws it and
// returns a function that stops it (closes its event streams). Pages learn
// of changes from the node's event streams, never by polling.
import * as overview from './pages/overview.js';
import * as search from './pages/search.js';
import * as transfers from './pages/transfers.js';
import * as library from './pages/library.js';
import * as people from './pages/people.js';
import * as network from './pages/network.js';
import * as browse from './pages/browse.js';
import * as wishes from './pages/wishes.js';
import * as settings from './pages/settings.js';

const pages = { overview, search, transfers, library, people, network, browse, wishes, settings };

// h builds an element: h('a', {href: '#', onclick: f}, 'text', child…).
// Attributes named on* become listeners; class, text and the rest are
// set as they are; null, undefined and false children are skipped.
// Strings become text nodes, never HTML.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// fill replaces el's children.
export function fill(el, ...children) {
  el.replaceChildren();
  for (const c of children.flat(Infinity)) {
    if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// APIError is a refusal from the node, with its message and status.
export class APIError extends Error {
  constructor(status, message, retryAfter) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

function toLogin() { location.assign('/ui/login'); }

// api calls the node: the browser sends the session cookie and, on a
// POST, its Origin, which the node demands.
export async function api(method, path, body) {
  const init = { method, headers: {} };
  if (method !== 'GET') {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body ?? {});
  }
  const resp = await fetch(path, init);
  if (resp.status === 401) {
    toLogin();
    throw new APIError(401, 'logged out');
  }
  const data = await resp.json().catch(() => null);
  if (!resp.ok) {
    throw new APIError(resp.status, (data && data.error) || `${resp.status} ${resp.statusText}`, resp.headers.get('Retry-After'));
  }
  return data;
}

// stream follows one of the node's server-sent event streams, calling
// handlers[event] with each event's parsed data, and returns the function
// that closes it. EventSource reconnects by itself when the connection
// drops; when it gives up (the node answered with an error, say an ended
// session), the session is checked and the login page shown if need be.
export function stream(path, handlers, onState) {
  const es = new EventSource(path);
  for (const [event, fn] of Object.entries(handlers)) es.addEventListener(event, (e) => fn(JSON.parse(e.data)));
  es.addEventListener('open', () => onState && onState(true));
  es.addEventListener('error', () => {
    onState && onState(false);
    if (es.readyState === EventSource.CLOSED) {
      fetch('/v1/profile').then((r) => { if (r.status === 401) toLogin(); });
    }
  });
  return () => es.close();
}

// toast says something short in the live region.
let toastTimer = 0;
export function toast(text) {
  const el = document.getElementById('toast');
  el.textContent = text;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.textContent = ''; }, 4000);
}

const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
export function bytes(n) {
  n = Number(n) || 0;
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return i === 0 ? `${n} B` : `${n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
}
export function rate(n) { return `${bytes(n)}/s`; }
export function when(t) {
  if (!t) return '';
  const d = new Date(t);
  return isNaN(d) || d.getFullYear() < 2000 ? '' : d.toLocaleString();
}
export function ago(t) {
  if (!t) return 'never';
  const s = Math.round((Date.now() - new Date(t)) / 1000);
  if (s < 10) return 'now';
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 129600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}
export function short(id) { return id ? id.slice(0, 10) : ''; }
export function badge(word, extra) { return h('span', { class: `badge ${word}` }, extra ?? word); }

// A page's own heading: focused on navigation, so that a keyboard or
// screen-reader user lands on the new page.
export function heading(text) { return h('h1', { tabindex: '-1' }, text); }

let stop = () => {};
function route() {
  const name = (location.hash.match(/^#\/([a-z]+)/) || [])[1] || 'overview';
  const page = pages[name] || overview;
  stop();
  const main = document.getElementById('main');
  main.replaceChildren();
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.getAttribute('href') === `#/${name}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `${name[0].toUpperCase()}${name.slice(1)} · Canopy`;
  stop = page.mount(main) || (() => {});
  const h1 = main.querySelector('h1');
  if (h1 && document.activeElement !== document.body) h1.focus();
}

document.getElementById('logout').addEventListener('click', async () => {
  await fetch('/ui/logout', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
  location.assign('/ui/login');
});
window.addEventListener('hashchange', route);
route();
