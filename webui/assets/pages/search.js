// Search: hits appear as the node streams them (POST /v1/search/stream,
// one JSON object per line), one entry per file (content ID): a file
// reported again by another supernode replaces its entry, with the sources
// merged. Filters narrow what is shown; a download button queues a job.
import { h, fill, api, heading, bytes, short, toast, APIError } from '../app.js';

const kinds = {
  audio: ['mp3', 'flac', 'ogg', 'opus', 'wav', 'm4a', 'aac'],
  video: ['mp4', 'mkv', 'webm', 'avi', 'mov'],
  image: ['jpg', 'jpeg', 'png', 'gif', 'webp', 'svg'],
  document: ['txt', 'pdf', 'md', 'epub', 'doc', 'docx', 'odt', 'html'],
  archive: ['zip', 'tar', 'gz', 'xz', 'zst', '7z', 'iso'],
};
export function kindOf(name) {
  const ext = (name.match(/\.([^.]+)$/) || [])[1]?.toLowerCase() || '';
  for (const [k, list] of Object.entries(kinds)) if (list.includes(ext)) return k;
  return 'other';
}

let last = { words: '', hits: new Map(), summary: '' }; // kept across page changes

export function mount(main) {
  const words = h('input', { id: 'words', name: 'words', type: 'search', required: true, value: last.words, autocomplete: 'off' });
  const go = h('button', { type: 'submit', id: 'search-go' }, 'Search');
  const form = h('form', { class: 'row', id: 'search-form', role: 'search' },
    h('label', { class: 'grow', for: 'words' }, 'Words', words), go);
  const fname = h('input', { id: 'f-name', type: 'text', autocomplete: 'off' });
  const fkind = h('select', { id: 'f-kind' }, h('option', { value: '' }, 'any'),
    Object.keys(kinds).concat('other').map((k) => h('option', { value: k }, k)));
  const fsrc = h('input', { id: 'f-sources', type: 'number', min: '0', value: '0', inputmode: 'numeric' });
  const fsize = h('input', { id: 'f-size', type: 'number', min: '0', value: '', inputmode: 'numeric', placeholder: 'MiB' });
  const filters = h('form', { class: 'row', id: 'filters', 'aria-label': 'Filters' },
    h('label', { for: 'f-name' }, 'Name contains', fname),
    h('label', { for: 'f-kind' }, 'Type', fkind),
    h('label', { for: 'f-sources' }, 'At least sources', fsrc),
    h('label', { for: 'f-size' }, 'At least MiB', fsize));
  const state = h('p', { id: 'search-state', role: 'status', 'aria-live': 'polite' }, last.summary);
  const list = h('ul', { class: 'plain', id: 'hits' });
  main.append(heading('Search'), h('section', { class: 'card' }, form, filters, state), h('section', { class: 'card' }, list));

  let ctl = null;
  const draw = () => {
    const name = fname.value.trim().toLowerCase();
    const minSrc = Number(fsrc.value) || 0;
    const minSize = (Number(fsize.value) || 0) * 1048576;
    const shown = [...last.hits.values()]
      .filter((x) => (!name || x.name.toLowerCase().includes(name)) && (!fkind.value || kindOf(x.name) === fkind.value)
        && x.sources >= minSrc && x.size >= minSize)
      .sort((a, b) => b.sources - a.sources || a.name.localeCompare(b.name));
    fill(list, shown.map(hitItem));
    if (last.hits.size > 0 && shown.length < last.hits.size) {
      list.append(h('li', { class: 'muted' }, `${last.hits.size - shown.length} more hidden by the filters`));
    }
  };
  for (const el of [fname, fkind, fsrc, fsize]) el.addEventListener('input', draw);
  filters.addEventListener('submit', (e) => e.preventDefault());
  draw();

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (ctl) ctl.abort();
    ctl = new AbortController();
    const mine = ctl;
    last = { words: words.value.trim(), hits: new Map(), summary: '' };
    list.removeAttribute('data-first-hit-ms');
    list.removeAttribute('data-first-hit-node-ms');
    list.removeAttribute('data-done');
    draw();
    const t0 = performance.now();
    let first = -1;
    const say = (s) => { last.summary = s; state.textContent = s; };
    say('Searching…');
    try {
      const resp = await fetch('/v1/search/stream', {
        method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ words: last.words }), signal: mine.signal,
      });
      if (!resp.ok) {
        const body = await resp.json().catch(() => ({}));
        if (resp.status === 401) { location.assign('/ui/login'); return; }
        throw new APIError(resp.status, body.error || `${resp.status}`, resp.headers.get('Retry-After'));
      }
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (!line.trim()) continue;
          const ev = JSON.parse(line);
          if (ev.event === 'hit') {
            last.hits.set(ev.hit.id, ev.hit);
            draw();
            if (first < 0) {
              first = performance.now() - t0;
              list.setAttribute('data-first-hit-ms', first.toFixed(1));
              // The node's own time to the same hit, for comparison.
              list.setAttribute('data-first-hit-node-ms', Number(ev.elapsed_ms).toFixed(1));
            }
            say(`Searching… ${last.hits.size} files so far (first after ${Math.round(first)} ms).`);
          } else if (ev.event === 'done') {
            const n = ev.result.hits.length;
            for (const x of ev.result.hits) last.hits.set(x.id, x);
            draw();
            say(n === 0 ? `Nothing found for “${last.words}”.`
              : `${n} file${n > 1 ? 's' : ''} in ${Math.round(ev.elapsed_ms)} ms; the first reached this page after ${Math.round(first)} ms.`);
            list.setAttribute('data-done', '1');
          } else if (ev.event === 'error') {
            say(`The search failed: ${ev.error}`);
            list.setAttribute('data-done', '1');
          }
        }
      }
    } catch (e) {
      if (mine.signal.aborted) return;
      if (e.status === 429) say(`The supernodes asked to slow down: try again in ${e.retryAfter || 'a few'} s.`);
      else if (e.status === 502) say(`No supernode to ask yet: ${e.message}`);
      else say(`The search failed: ${e.message}`);
      list.setAttribute('data-done', '1');
    }
  });
  if (!last.words) words.focus();
  return () => { if (ctl) ctl.abort(); };
}

function hitItem(x) {
  const btn = h('button', { type: 'button', class: 'download', 'data-id': x.id, 'aria-label': `Download ${x.name}` }, 'Download');
  if (x.sources === 0) {
    btn.disabled = true;
    btn.title = 'Only this node has it';
  }
  btn.addEventListener('click', async () => {
    btn.disabled = true;
    try {
      const d = await api('POST', '/v1/downloads', { id: x.id, name: x.name });
      toast(d.existing ? `Already downloading as #${d.id}` : `Queued as download #${d.id}`);
      btn.replaceWith(h('a', { href: '#/transfers', class: 'queued' }, `Download #${d.id}: see Transfers`));
    } catch (e) {
      btn.disabled = false;
      toast(`Not queued: ${e.message}`);
    }
  });
  return h('li', { class: 'item hit', 'data-id': x.id },
    h('span', { class: 'title' }, x.name),
    h('span', { class: 'meta' }, bytes(x.size)),
    h('span', { class: 'meta' }, kindOf(x.name)),
    h('span', { class: 'meta sources' }, `${x.sources} source${x.sources === 1 ? '' : 's'}`),
    x.local ? h('span', { class: 'badge' }, 'you share it') : null,
    btn,
    h('details', {}, h('summary', {}, 'Details'),
      h('p', { class: 'mono' }, x.id),
      h('ul', {}, (x.source_nodes || []).map((s) => h('li', { class: 'mono' }, short(s))))));
}
