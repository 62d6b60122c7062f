// Library: the shared folders with who sees each (everyone, contacts,
// trusted; a select changes it while the node runs, as `canopy library
// share` does), a folder to add, hashing work, a rescan button and the
// files. Live: GET /v1/library/events sends the library again whenever it
// changes.
import { h, fill, api, stream, heading, bytes, when, toast } from '../app.js';

const visibilities = ['everyone', 'contacts', 'trusted'];

export function mount(main) {
  const body = h('div', { id: 'library' }, h('p', { class: 'muted' }, 'Waiting for the node…'));
  const rescan = h('button', { type: 'button', id: 'rescan' }, 'Rescan now');
  rescan.addEventListener('click', async () => {
    rescan.disabled = true;
    try {
      await api('POST', '/v1/library/rescan');
      toast('Rescan started');
    } catch (e) {
      toast(`Rescan: ${e.message}`);
    }
  });
  const dir = h('input', { id: 'share-dir', type: 'text', required: true, placeholder: '/home/me/Music', 'aria-label': 'Folder to share' });
  const vis = h('select', { id: 'share-vis', 'aria-label': 'Who sees it' }, visibilities.map((v) => h('option', { value: v }, v)));
  const add = h('form', { id: 'share-form', class: 'row' }, dir, vis, h('button', { type: 'submit' }, 'Share'));
  add.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (await setShare(dir.value.trim(), vis.value)) dir.value = '';
  });
  main.append(heading('Library'), h('p', {}, rescan), body,
    h('section', { class: 'card' }, h('h2', {}, 'Share a folder'),
      h('p', { class: 'muted' }, 'Until the node stops: the config file and flags are what a restart shares.'), add));
  return stream('/v1/library/events', { library: (l) => {
    rescan.disabled = l.scanning;
    fill(body, render(l));
  } });
}

// setShare shares dir with vis (or stops sharing it, vis "none").
async function setShare(dir, vis) {
  try {
    await api('POST', '/v1/library/shares', { dir, visibility: vis });
    toast(vis === 'none' ? `${dir} is no longer shared` : `${dir}: ${vis}`);
    return true;
  } catch (e) {
    toast(`Share: ${e.message}`);
    return false;
  }
}

function shareItem(s) {
  const sel = h('select', { class: 'visibility', 'aria-label': `Who sees ${s.dir}` },
    [...visibilities, 'none'].map((v) => h('option', { value: v, selected: v === s.visibility }, v === 'none' ? 'stop sharing' : v)));
  sel.addEventListener('change', () => setShare(s.dir, sel.value));
  return h('li', { class: 'item', 'data-dir': s.dir },
    h('span', { class: 'title mono' }, s.dir),
    h('span', { class: 'meta' }, `others see it as “${s.name}”; ${s.files} files, ${bytes(s.bytes)}`),
    s.available ? null : h('span', { class: 'badge warn' }, 'cannot be read now'),
    sel);
}

function render(l) {
  const s = l.last_scan;
  return [
    h('section', { class: 'card' }, h('h2', {}, 'Shared folders'),
      h('p', { class: 'muted', id: 'share-summary' }, `${l.public} of ${l.files} files are shared with everyone and so in the supernodes' index; the rest only with contacts or trusted contacts, who browse them.`),
      l.shares.length === 0 ? h('p', { class: 'warn' }, 'No shared folders: share one below, or start the node with --share DIR (or share = [...] in the config file).')
        : h('ul', { class: 'plain' }, l.shares.map(shareItem))),
    h('section', { class: 'card' }, h('h2', {}, 'Hashing'),
      h('p', { id: 'scan-state' }, l.scanning ? `Scanning now…${l.hashing ? ` hashing ${l.hashing}` : ''}` : 'Idle.',
        ` ${l.scans} scans since the node started; ${l.hashed_files} files (${bytes(l.hashed_bytes)}) hashed.`),
      s ? h('p', { id: 'last-scan' }, `Last scan ${when(s.at)}: ${s.added} added, ${s.changed} changed, ${s.removed} removed, ${s.hashed} hashed.`) : null,
      l.scan_error ? h('p', { class: 'error' }, l.scan_error) : null),
    h('section', { class: 'card' }, h('h2', {}, `Files (${l.files}, ${bytes(l.bytes)})`),
      h('div', { class: 'scroll' }, h('table', {},
        h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', { class: 'num' }, 'Size'), h('th', {}, 'Path'))),
        h('tbody', {}, (l.list || []).map((f) => h('tr', {}, h('td', {}, f.name), h('td', { class: 'num' }, bytes(f.size)),
          h('td', { class: 'mono' }, f.path)))))),
      l.truncated ? h('p', { class: 'muted' }, `The first ${l.list.length} are listed.`) : null),
  ];
}
