// Network: the supernodes this node is attached to, the ring as GET
// /v1/network reports it (each member's leaves, load and files, and the
// totals), and the contacts online now, with the supernodes that hold their
// presence. Live: the status stream (the ring is asked for again when the
// status changes, at most every 5 s: on a leaf it is a question to its
// supernode) and the people event stream.
import { h, fill, api, stream, heading, when, short, badge } from '../app.js';
import { ringTable } from './overview.js';
import { name } from './people.js';

export function mount(main) {
  const sns = h('div', { id: 'net-supernodes' }, h('p', { class: 'muted' }, 'Waiting for the node…'));
  const ring = h('div', { id: 'net-ring' }, h('p', { class: 'muted' }, 'Asking the ring…'));
  const online = h('ul', { class: 'plain', id: 'net-online' });
  main.append(heading('Network'),
    h('section', { class: 'card' }, h('h2', {}, 'Supernodes'), sns),
    h('section', { class: 'card' }, h('h2', {}, 'The ring'), ring),
    h('section', { class: 'card' }, h('h2', {}, 'Contacts online'), online));
  const contacts = new Map();
  const drawOnline = () => {
    const on = [...contacts.values()].filter((c) => c.online);
    fill(online, on.length === 0 ? h('li', { class: 'muted' }, 'No contact is online.')
      : on.map((c) => h('li', { class: 'item', 'data-id': c.id }, h('span', { class: 'title' }, name(c)), badge(c.status),
        h('span', { class: 'meta' }, (c.where || []).length ? `presence held by ${(c.where || []).map(short).join(', ')}` : ''),
        h('a', { class: 'browse', href: `#/browse/${c.id}`, 'aria-label': `Browse ${name(c)}'s files` }, 'Browse'))));
  };
  let asked = 0;
  const askRing = async () => {
    if (Date.now() - asked < 5000) return;
    asked = Date.now();
    try { fill(ring, renderRing(await api('GET', '/v1/network'))); } catch (e) { fill(ring, h('p', { class: 'error' }, e.message)); }
  };
  const stopStatus = stream('/v1/status/events', { status: (st) => { fill(sns, render(st)); askRing(); } });
  const stopPeople = stream('/v1/events', {
    presence: (e) => { contacts.set(e.contact.id, e.contact); drawOnline(); },
    contact: (e) => {
      if (e.contact.state === 'removed') contacts.delete(e.contact.id); else contacts.set(e.contact.id, e.contact);
      drawOnline();
    },
  });
  api('GET', '/v1/contacts').then((cs) => {
    for (const c of cs || []) if (!contacts.has(c.id)) contacts.set(c.id, c);
    drawOnline();
  });
  drawOnline();
  return () => { stopStatus(); stopPeople(); };
}

function render(st) {
  const att = st.supernodes || [];
  const out = [
    h('h3', {}, `Attached (${att.length})`),
    att.length === 0 ? h('p', { class: 'warn' }, 'None: this node is not attached to the network.')
      : h('ul', { class: 'plain' }, att.map((a) => h('li', { class: 'item' }, h('span', { class: 'title mono' }, short(a.id)),
        h('span', { class: 'meta mono' }, a.control), h('span', { class: 'meta' }, `since ${when(a.since)}`)))),
  ];
  if (st.role === 'supernode') {
    out.push(h('h3', {}, `Links to the ring (${(st.ring || []).length})`), ringTable(st.ring || []));
  } else {
    out.push(h('p', { class: 'muted' }, 'This node is a leaf: it sees the ring through its supernodes, which route its searches across it.'));
  }
  return out;
}

function renderRing(n) {
  const t = n.totals;
  return [
    h('p', {}, `${t.supernodes} supernodes, ${t.leaves} leaves, ${t.files} files indexed; as ${short(n.from)} reports it.`),
    h('div', { class: 'scroll' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Supernode'), h('th', { class: 'num' }, 'Leaves'), h('th', { class: 'num' }, 'Free slots'),
        h('th', { class: 'num' }, 'Load %'), h('th', { class: 'num' }, 'Files'), h('th', {}, 'Version'), h('th', {}, ''))),
      h('tbody', {}, (n.supernodes || []).map((m) => h('tr', { 'data-id': m.id },
        h('td', { class: 'mono' }, short(m.id)), h('td', { class: 'num' }, m.leaves), h('td', { class: 'num' }, m.slots),
        h('td', { class: 'num' }, m.load), h('td', { class: 'num' }, m.files), h('td', {}, m.version || ''),
        h('td', {}, m.self ? 'this node' : m.attached ? 'attached' : '')))))),
  ];
}
