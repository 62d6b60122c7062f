// Browse: what one peer shares with this node (#/browse/NODE-ID), as
// `canopy browse` lists it: its folders with who may see each, its files,
// and a download button on each. The peer decides what this node may see
// (everyone's folders to anyone; contacts' and trusted folders by its own
// roster), so the list is asked for when the page opens and again with the
// refresh button: a browse is a request to the peer, not a stream.
import { h, fill, api, heading, bytes, short, toast, badge } from '../app.js';

export function mount(main) {
  const id = (location.hash.match(/^#\/browse\/([0-9a-z]+)/i) || [])[1] || '';
  const input = h('input', { id: 'browse-node', type: 'text', required: true, value: id, placeholder: 'node ID', 'aria-label': 'Node ID to browse' });
  const form = h('form', { id: 'browse-form', class: 'row' }, input, h('button', { type: 'submit' }, id ? 'Refresh' : 'Browse'));
  const body = h('div', { id: 'browse' });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const want = input.value.trim();
    if (want === id) load(body, id); else location.hash = `#/browse/${want}`;
  });
  main.append(heading(id ? `Browse ${short(id)}` : 'Browse a peer'), form, body);
  if (id) load(body, id);
  else fill(body, h('p', { class: 'muted' }, "A peer's node ID is on the People and Network pages and in search results."));
  return () => {};
}

async function load(body, id) {
  fill(body, h('p', { class: 'muted' }, 'Asking the peer…'));
  let r;
  try {
    r = await api('GET', `/v1/browse/${encodeURIComponent(id)}`);
  } catch (e) {
    fill(body, h('p', { class: 'error', id: 'browse-error' }, e.message));
    return;
  }
  fill(body,
    h('p', { class: 'muted' }, `${r.files.length} files in ${r.folders.length} folders, reached ${r.path || 'directly'} in ${Math.round(r.elapsed_ms)} ms.`,
      r.truncated ? ' The peer shares more: the first are listed.' : ''),
    h('ul', { class: 'plain', id: 'browse-folders' }, r.folders.map((f) => h('li', { class: 'item' },
      h('span', { class: 'title' }, f.name), badge(f.visibility)))),
    h('div', { class: 'scroll' }, h('table', { id: 'browse-files' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Folder'), h('th', {}, 'File'), h('th', { class: 'num' }, 'Size'), h('th', {}, ''))),
      h('tbody', {}, r.files.map((f) => h('tr', { 'data-id': f.id },
        h('td', {}, f.folder), h('td', {}, f.path), h('td', { class: 'num' }, bytes(f.size)),
        h('td', {}, f.have ? badge('online', 'have it') : download(f))))))));
}

function download(f) {
  const name = f.path.split('/').pop();
  const btn = h('button', { type: 'button', class: 'download', 'aria-label': `Download ${name}` }, 'Download');
  btn.addEventListener('click', async () => {
    btn.disabled = true;
    try {
      const d = await api('POST', '/v1/downloads', { id: f.id, name });
      toast(d.existing ? `Already downloading as #${d.id}` : `Queued as download #${d.id}`);
    } catch (e) {
      btn.disabled = false;
      toast(`Download: ${e.message}`);
    }
  });
  return btn;
}
