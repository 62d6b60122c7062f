// Settings: the node's effective configuration, as `canopy config show`
// prints it: each setting's value and whether a flag, $CANOPY_*, the config
// file or the default set it. Read-only: Canopy never rewrites the user's
// config file (its comments and order are the user's); edit it and
// restart the node.
import { h, fill, api, heading } from '../app.js';

export function mount(main) {
  const body = h('div', { id: 'settings' }, h('p', { class: 'muted' }, 'Loading…'));
  main.append(heading('Settings'), body);
  api('GET', '/v1/config').then((c) => fill(body, render(c)), (e) => fill(body, h('p', { class: 'error' }, e.message)));
}

function show(v) {
  if (Array.isArray(v)) return v.length ? v.join(', ') : '(none)';
  if (v === '' || v === null || v === undefined) return '';
  return String(v);
}

function render(c) {
  const file = c.file ? `${c.file}${c.file_found ? '' : ' (none there)'}` : 'none';
  return h('section', { class: 'card' },
    h('p', {}, 'Config file: ', h('span', { class: 'mono' }, file)),
    h('p', { class: 'muted' }, 'These are read-only here: change them in the config file, the environment or canopy up\'s flags, and restart the node.'),
    h('div', { class: 'scroll' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Setting'), h('th', {}, 'Value'), h('th', {}, 'From'))),
      h('tbody', {}, c.settings.map((s) => h('tr', { 'data-key': s.key },
        h('th', { scope: 'row', class: 'mono' }, s.key),
        h('td', { class: 'mono' }, show(s.value) || (s.default_note ? `(${s.default_note})` : '')),
        h('td', {}, s.source, s.where ? ` ${s.where}` : '')))))));
}
