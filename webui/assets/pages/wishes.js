// Wishes: standing searches whose new matches the node downloads by
// itself, as `canopy wish` lists them: each wish with its bounds, when it
// last ran and what it found (each match a download job on the Transfers
// page); a form to add one and a button to remove each. Live: GET
// /v1/wishes/events sends the wishes at once, then each change.
import { h, fill, api, stream, heading, bytes, when, ago, toast } from '../app.js';

export function mount(main) {
  const words = h('input', { id: 'wish-words', type: 'text', required: true, maxlength: '200', placeholder: 'words to look for', 'aria-label': 'Words' });
  const ext = h('input', { id: 'wish-ext', type: 'text', placeholder: 'flac,ogg', 'aria-label': 'Extensions, comma-separated' });
  const minMiB = h('input', { id: 'wish-min', type: 'number', min: '0', step: 'any', placeholder: 'min MiB', 'aria-label': 'Smallest size in MiB' });
  const maxMiB = h('input', { id: 'wish-max', type: 'number', min: '0', step: 'any', placeholder: 'max MiB', 'aria-label': 'Largest size in MiB' });
  const to = h('input', { id: 'wish-to', type: 'text', placeholder: 'download folder (default: downloads)', 'aria-label': 'Download folder' });
  const form = h('form', { id: 'wish-form', class: 'row' }, words, ext, minMiB, maxMiB, to, h('button', { type: 'submit' }, 'Add wish'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const mib = (v) => (v.value === '' ? 0 : Math.round(Number(v.value) * 1048576));
    try {
      const w = await api('POST', '/v1/wishes', {
        words: words.value, ext: ext.value.split(',').map((x) => x.trim()).filter(Boolean),
        min_size: mib(minMiB), max_size: mib(maxMiB), to: to.value.trim(),
      });
      form.reset();
      toast(`Wish ${w.id} added: it searches now, then in turn with the others`);
    } catch (err) { toast(`Wish: ${err.message}`); }
  });
  const list = h('div', { id: 'wishes' }, h('p', { class: 'muted' }, 'Asking the node…'));
  main.append(heading('Wishes'),
    h('section', { class: 'card' }, h('h2', {}, 'Add a wish'),
      h('p', { class: 'muted' }, 'Whatever matches, now or when someone shares it later, is downloaded, each file once, never one you already have.'), form),
    list);
  return stream('/v1/wishes/events', { wishes: (l) => fill(list, render(l)) });
}

function render(l) {
  const every = Math.round(l.interval_s / 60);
  return [
    h('p', { class: 'muted', id: 'wish-budget' }, `Wishes take turns: one search every ${every} min on average (at most ${l.burst} back to back)`,
      l.wishes.length > 1 ? `; with ${l.wishes.length} wishes, each runs about every ${every * l.wishes.length} min.` : '.'),
    l.wishes.length === 0 ? h('p', { class: 'muted' }, 'No wishes yet.')
      : h('ul', { class: 'plain' }, l.wishes.map(item)),
  ];
}

function item(w) {
  const bounds = [];
  if (w.min_size) bounds.push(`≥ ${bytes(w.min_size)}`);
  if (w.max_size) bounds.push(`≤ ${bytes(w.max_size)}`);
  if (w.ext && w.ext.length) bounds.push(w.ext.join(', '));
  const remove = h('button', { type: 'button', class: 'quiet danger remove', 'aria-label': `Remove the wish ${w.words}` }, 'Remove');
  remove.addEventListener('click', async () => {
    remove.disabled = true;
    try {
      await api('POST', `/v1/wishes/${w.id}/remove`);
      toast(`Wish ${w.id} removed; its downloads go on`);
    } catch (err) { toast(`Remove: ${err.message}`); remove.disabled = false; }
  });
  return h('li', { class: 'card wish', 'data-id': w.id },
    h('div', { class: 'item' },
      h('span', { class: 'title' }, `“${w.words}”`),
      bounds.length ? h('span', { class: 'meta' }, bounds.join(' · ')) : null,
      h('span', { class: 'meta mono' }, `→ ${w.to}`),
      h('span', { class: 'meta' }, w.last_run ? `ran ${ago(w.last_run)}, ${w.runs} time${w.runs === 1 ? '' : 's'}` : 'not run yet'),
      h('span', { class: 'actions' }, remove)),
    w.last_error ? h('p', { class: 'error' }, w.last_error) : null,
    w.found.length === 0 ? h('p', { class: 'muted' }, 'Nothing found yet.')
      : h('table', { class: 'found' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Found'), h('th', { class: 'num' }, 'Size'), h('th', {}, 'When'), h('th', {}, ''))),
        h('tbody', {}, w.found.map((f) => h('tr', { 'data-content': f.content },
          h('td', {}, f.name), h('td', { class: 'num' }, bytes(f.size)), h('td', {}, when(f.at)),
          h('td', {}, h('a', { href: '#/transfers' }, `download #${f.job}`)))))));
}
