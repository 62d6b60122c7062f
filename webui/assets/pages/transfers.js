// Transfers: every download job with its progress, rate, sources and how
// each was reached (direct or relayed), with pause, resume, cancel and
// retry; finished jobs below as history; then what this node uploads and
// who waits in its upload queue. Live: GET /v1/downloads/events sends every
// job at once, then each change; GET /v1/uploads/events the uploads at
// once, then each change (a running upload's bytes, each second).
import { h, fill, api, stream, heading, bytes, rate, when, ago, short, badge, toast } from '../app.js';

const finished = (d) => d.state === 'done' || d.state === 'failed';

export function mount(main) {
  const active = h('ul', { class: 'plain', id: 'active' });
  const history = h('ul', { class: 'plain', id: 'history' });
  const live = h('p', { class: 'muted', id: 'transfers-live' }, 'Connecting to the node…');
  const uploads = h('div', { id: 'uploads' }, h('p', { class: 'muted' }, 'Asking the node…'));
  // Download by content ID, as canopy get ID does: the node finds the
  // sources (a file nobody offers is refused at once).
  const getID = h('input', { id: 'get-id', type: 'text', required: true, pattern: '[0-9a-fA-F]{64}', spellcheck: 'false',
    placeholder: 'content ID (64 hex digits)', 'aria-label': 'Content ID to download' });
  const getForm = h('form', { id: 'get-form', class: 'row' }, getID, h('button', { type: 'submit' }, 'Download'));
  getForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const d = await api('POST', '/v1/downloads', { id: getID.value.trim().toLowerCase() });
      getForm.reset();
      toast(d.existing ? `Already download #${d.id}` : `Queued as download #${d.id}: ${d.name}`);
    } catch (err) { toast(`Download: ${err.message}`); }
  });
  main.append(heading('Transfers'), live,
    h('section', { class: 'card' }, h('h2', {}, 'Downloads'), active, getForm),
    h('section', { class: 'card' }, h('h2', {}, 'History'), history),
    h('section', { class: 'card' }, h('h2', {}, 'Uploads'), uploads));
  const jobs = new Map();
  const draw = () => {
    const all = [...jobs.values()];
    const now = all.filter((d) => !finished(d)).sort((a, b) => a.id - b.id);
    const old = all.filter(finished).sort((a, b) => new Date(b.finished || b.updated) - new Date(a.finished || a.updated));
    fill(active, now.length ? now.map(item) : h('li', { class: 'muted' }, 'No downloads running. Find files on the Search page.'));
    fill(history, old.length ? old.map(item) : h('li', { class: 'muted' }, 'Nothing finished yet.'));
  };
  draw();
  const stopJobs = stream('/v1/downloads/events', { download: (d) => { jobs.set(d.id, d); draw(); } },
    (up) => { live.textContent = up ? 'Live.' : 'Reconnecting to the node…'; });
  // The rate of an upload is what it sent since the last event.
  const last = new Map();
  const stopUploads = stream('/v1/uploads/events', { uploads: (u) => fill(uploads, renderUploads(u, last)) });
  return () => { stopJobs(); stopUploads(); };
}

const who = (x) => (x.contact ? `${x.contact} (${short(x.peer)})` : short(x.peer));

function renderUploads(u, last) {
  const now = Date.now();
  const seen = new Map();
  const rows = u.active.map((a) => {
    const key = `${a.peer}/${a.content}`;
    const prev = last.get(key);
    const r = prev && now > prev.at ? ((a.sent - prev.sent) * 1000) / (now - prev.at) : 0;
    seen.set(key, { sent: a.sent, at: now });
    return h('tr', { 'data-peer': a.peer, 'data-content': a.content },
      h('td', {}, who(a)), h('td', {}, a.name), h('td', { class: 'num' }, `${bytes(a.sent)} of ${bytes(a.size)}`),
      h('td', { class: 'num' }, r > 0 ? rate(r) : ''), h('td', {}, badge(a.path), a.local ? ` ${a.local}→${a.remote}` : ''),
      h('td', {}, ago(a.started)));
  });
  last.clear();
  for (const [k, v] of seen) last.set(k, v);
  return [
    h('p', { id: 'upload-slots' }, `${u.active.length} of ${u.slots} upload slots in use (at most ${u.per_peer} per peer); `,
      `${u.queue.length} waiting. Served since the node started: ${bytes(u.uploaded_direct)} direct, ${bytes(u.uploaded_relayed)} relayed.`),
    u.active.length === 0 ? h('p', { class: 'muted' }, 'Nobody is downloading from you now.')
      : h('div', { class: 'scroll' }, h('table', { id: 'upload-list' },
        h('thead', {}, h('tr', {}, h('th', {}, 'To'), h('th', {}, 'File'), h('th', { class: 'num' }, 'Sent'),
          h('th', { class: 'num' }, 'Rate'), h('th', {}, 'Path'), h('th', {}, 'Started'))),
        h('tbody', {}, rows))),
    u.queue.length === 0 ? null : [h('h3', {}, 'Waiting for a slot'),
      h('div', { class: 'scroll' }, h('table', { id: 'upload-queue' },
        h('thead', {}, h('tr', {}, h('th', { class: 'num' }, '#'), h('th', {}, 'Who'), h('th', {}, 'Content'), h('th', {}, 'Waiting since'))),
        h('tbody', {}, u.queue.map((q) => h('tr', { 'data-peer': q.peer },
          h('td', { class: 'num' }, q.position), h('td', {}, who(q)), h('td', { class: 'mono' }, q.content.slice(0, 16)),
          h('td', {}, ago(q.since)))))))],
  ];
}

function act(d, action, label) {
  return h('button', {
    type: 'button', class: `quiet act-${action}`, 'aria-label': `${label} ${d.name}`,
    onclick: async (e) => {
      e.target.disabled = true;
      try {
        await api('POST', `/v1/downloads/${d.id}/${action}`);
      } catch (err) {
        toast(`${label}: ${err.message}`);
        e.target.disabled = false;
      }
    },
  }, label);
}

function item(d) {
  const pct = d.size > 0 ? Math.floor((100 * d.have) / d.size) : 0;
  const srcs = d.sources || [];
  const direct = srcs.filter((s) => s.path === 'direct').length;
  const relayed = srcs.filter((s) => s.path === 'relayed').length;
  const actions = [];
  if (['queued', 'connecting', 'downloading', 'verifying'].includes(d.state)) actions.push(act(d, 'pause', 'Pause'));
  if (d.state === 'paused') actions.push(act(d, 'resume', 'Resume'));
  if (d.state === 'failed') actions.push(act(d, 'retry', 'Retry'));
  if (d.state !== 'done' && d.state !== 'failed') actions.push(act(d, 'cancel', 'Cancel'));
  return h('li', { class: 'item job', 'data-id': d.id, 'data-state': d.state },
    h('span', { class: 'title' }, `#${d.id} ${d.name}`),
    badge(d.state),
    d.reason ? h('span', { class: 'error' }, d.reason) : null,
    h('span', { class: 'meta' }, h('progress', { max: 100, value: pct, 'aria-label': `${d.name}: ${pct}%` }), ` ${pct}% of ${bytes(d.size)}`),
    d.rate > 0 ? h('span', { class: 'meta' }, rate(d.rate)) : null,
    h('span', { class: 'meta' }, `${srcs.length} source${srcs.length === 1 ? '' : 's'}: ${direct} direct, ${relayed} relayed`),
    h('span', { class: 'actions' }, actions),
    h('details', {}, h('summary', {}, 'Details'),
      h('dl', { class: 'facts' },
        h('dt', {}, 'File'), h('dd', { class: 'mono' }, d.path || d.part || d.out_dir),
        h('dt', {}, 'Content'), h('dd', { class: 'mono' }, d.content),
        h('dt', {}, 'Pieces'), h('dd', {}, `${d.pieces} of ${d.piece_count}`),
        h('dt', {}, 'Fetched'), h('dd', {}, `${bytes(d.fetched)}${d.refetched ? `, ${bytes(d.refetched)} again` : ''}`),
        h('dt', {}, 'Queued'), h('dd', {}, when(d.created)),
        d.finished ? [h('dt', {}, 'Finished'), h('dd', {}, when(d.finished))] : null),
      srcs.length ? h('ul', {}, srcs.map((s) => h('li', {},
        h('span', { class: 'mono' }, short(s.node)), ' ',
        s.path ? badge(s.path) : badge('queued', 'not connected'),
        s.local ? ` ${s.local}→${s.remote}` : '',
        s.connect_ms ? `, connected in ${Math.round(s.connect_ms)} ms` : '',
        `, ${bytes(s.bytes)}`,
        s.bad ? h('span', { class: 'error' }, ' sent bad data') : '',
        s.error ? h('span', { class: 'error' }, ` ${s.error}`) : ''))) : null));
}
