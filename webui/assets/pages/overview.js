// Overview: the node's role and why (the promotion checks, as canopy
// status prints them), its NAT and reachability, its supernodes, the ring
// (as a supernode), what it shares and its transfer rates. Live: the
// status stream and the download stream.
import { h, fill, api, stream, heading, bytes, rate, when, short, badge, toast } from '../app.js';

// checking is set while a NAT check asked for on this page runs (the card
// is drawn again by every status event meanwhile).
let checking = false;

// natCheck runs the check canopy natcheck runs: STUN through the attached
// supernodes, then the verdict; the status stream brings the result to the
// card, and the answer is said at once.
async function natCheck() {
  // By ID each time: a status event may have drawn the card again.
  const button = (label) => {
    const b = document.getElementById('natcheck');
    if (b) { b.disabled = checking; b.textContent = label; }
  };
  checking = true;
  button('Checking…');
  try {
    const n = await api('POST', '/v1/natcheck');
    toast(`NAT: ${n.kind}${n.public ? `, public address ${n.public}` : ''}; reachable: ${n.reachability?.verdict || 'unknown'}`);
  } catch (e) {
    toast(`NAT check: ${e.message}`);
  } finally {
    checking = false;
    button('Check again');
  }
}

export function mount(main) {
  const body = h('div', { id: 'overview' }, h('p', { class: 'muted' }, 'Waiting for the node…'));
  const rates = h('p', { id: 'rates' }, 'No transfers running.');
  main.append(heading('Overview'), body, h('section', { class: 'card' }, h('h2', {}, 'Transfers now'), rates));

  const jobs = new Map();
  const stopJobs = stream('/v1/downloads/events', { download: (d) => {
    jobs.set(d.id, d);
    const running = [...jobs.values()].filter((j) => j.rate > 0 || ['connecting', 'downloading', 'verifying'].includes(j.state));
    const total = running.reduce((s, j) => s + (j.rate || 0), 0);
    fill(rates, running.length === 0 ? 'No transfers running.'
      : `${running.length} download${running.length > 1 ? 's' : ''} running at ${rate(total)} in all. `,
    h('a', { href: '#/transfers' }, 'Transfers'));
  } });
  const stopStatus = stream('/v1/status/events', { status: (st) => fill(body, render(st)) });
  return () => { stopJobs(); stopStatus(); };
}

function render(st) {
  const p = st.promotion || {};
  const nat = st.nat || {};
  const reach = p.reachability || nat.reachability || {};
  const role = h('section', { class: 'card', id: 'role' },
    h('h2', {}, 'Role: ', h('span', { id: 'role-name' }, st.role)),
    h('p', {}, p.summary || ''),
    h('ul', { class: 'plain checks' }, (p.checks || []).map((c) => h('li', {}, c))),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Consent'), h('dd', {}, p.consent || ''),
      h('dt', {}, 'Decided'), h('dd', {}, when(p.decided_at) || 'not yet'),
      h('dt', {}, 'Policy'), h('dd', {}, st.policy || ''),
      h('dt', {}, 'Node'), h('dd', { class: 'mono' }, st.id),
      h('dt', {}, 'Control'), h('dd', { class: 'mono' }, st.control),
      h('dt', {}, 'Up for'), h('dd', {}, st.uptime),
      h('dt', {}, 'Version'), h('dd', {}, st.version)),
    (p.switches || []).length ? h('details', {}, h('summary', {}, `${p.switches.length} role changes`),
      h('ul', {}, p.switches.map((s) => h('li', {}, `${when(s.at)}: ${s.to} (${s.reason})`)))) : null);
  const natCard = h('section', { class: 'card', id: 'nat' },
    h('h2', {}, 'NAT and reachability'),
    h('dl', { class: 'facts' },
      h('dt', {}, 'NAT'), h('dd', {}, nat.kind || 'unknown', nat.error ? h('span', { class: 'muted' }, ` (${nat.error})`) : ''),
      h('dt', {}, 'Mapping'), h('dd', {}, nat.mapping || ''),
      h('dt', {}, 'Filtering'), h('dd', {}, nat.filtering || ''),
      h('dt', {}, 'Public address'), h('dd', { class: 'mono' }, nat.public || ''),
      h('dt', {}, 'Port mapping'), h('dd', {}, nat.port_map || ''),
      h('dt', {}, 'Reachable'), h('dd', {}, reach.verdict || 'unknown', ` (${reach.probes_received || 0} dial-backs received)`)),
    evidence('Reachability evidence', reach.evidence),
    evidence('NAT evidence', nat.evidence),
    h('p', { class: 'row' },
      h('button', { type: 'button', id: 'natcheck', class: 'quiet', disabled: checking, onclick: natCheck },
        checking ? 'Checking…' : 'Check again'),
      h('span', { class: 'muted', id: 'nat-checked' }, nat.checked_at && when(nat.checked_at) ? `Last checked ${when(nat.checked_at)}.` : 'Not checked yet.')));
  const sns = st.supernodes || [];
  const attached = h('section', { class: 'card', id: 'attached' },
    h('h2', {}, `Supernodes attached (${sns.length})`),
    sns.length === 0 ? h('p', { class: 'warn' }, 'Not attached to any supernode: searches and downloads wait for one.')
      : h('ul', { class: 'plain' }, sns.map((a) => h('li', { class: 'item' },
        h('span', { class: 'title mono' }, short(a.id)),
        h('span', { class: 'meta mono' }, a.control),
        h('span', { class: 'meta' }, `${a.files} of our files indexed since ${when(a.since)}`),
        a.index_error ? h('span', { class: 'error' }, a.index_error) : null))));
  const shared = h('section', { class: 'card', id: 'shared' },
    h('h2', {}, 'Sharing'),
    h('p', {}, `${st.shared_files} files, ${bytes(st.shared_bytes)}. `, h('a', { href: '#/library' }, 'Library')));
  const cards = [role, natCard, attached, shared];
  if (st.role === 'supernode') {
    const ring = st.ring || [];
    cards.push(h('section', { class: 'card', id: 'ring' },
      h('h2', {}, `Ring (${ring.length} supernodes)`),
      h('p', {}, `${st.leaves} leaves attached here, ${st.index_files} files in this supernode's index.`),
      ringTable(ring)));
  }
  return h('div', { class: 'grid' }, cards);
}

function evidence(title, list) {
  if (!list || list.length === 0) return null;
  return h('details', {}, h('summary', {}, title), h('ul', {}, list.map((e) => h('li', {}, e))));
}

export function ringTable(ring) {
  return h('div', { class: 'scroll' }, h('table', {},
    h('thead', {}, h('tr', {}, h('th', {}, 'Supernode'), h('th', {}, 'Control'), h('th', { class: 'num' }, 'Leaves'),
      h('th', { class: 'num' }, 'Free slots'), h('th', { class: 'num' }, 'Load'), h('th', {}, 'Link'))),
    h('tbody', {}, ring.map((m) => h('tr', {},
      h('td', { class: 'mono' }, short(m.id), m.self ? ' (this node)' : ''),
      h('td', { class: 'mono' }, m.control),
      h('td', { class: 'num' }, m.leaves), h('td', { class: 'num' }, m.free_slots), h('td', { class: 'num' }, m.load),
      h('td', {}, m.self ? '' : m.linked ? badge('online', 'linked') : badge('away', 'not linked')))))));
}
