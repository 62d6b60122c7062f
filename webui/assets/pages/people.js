// People: your profile, contact requests (accept or deny), contacts with
// their presence, and a chat with each message's delivery state (queued,
// stored, delivered, failed). Live: GET /v1/events brings presence
// changes, messages, message states, requests and contact changes.
import { h, fill, api, stream, heading, when, ago, short, badge, toast } from '../app.js';

export function name(c) {
  const n = c.name || c.nick;
  return n ? `${n} [${short(c.id)}]` : short(c.id);
}

const ranks = { queued: 0, stored: 1, delivered: 2, failed: 2 };
const stateRank = (m) => ranks[m.state] ?? 0;

export function mount(main) {
  const contacts = new Map();
  // seen counts the events about each contact: an answer to a request
  // made before an event must not overwrite what the event brought.
  const seen = new Map();
  const fresh = (c, before) => { if ((seen.get(c.id) || 0) === before) contacts.set(c.id, c); };
  const requests = new Map();
  let messages = [];
  let peer = null; // the contact whose conversation is open
  const unread = new Map();

  // Profile.
  const nick = h('input', { id: 'p-nick', autocomplete: 'off' });
  const status = h('select', { id: 'p-status' }, ['online', 'away', 'busy', 'invisible'].map((s) => h('option', { value: s }, s)));
  const text = h('input', { id: 'p-text', autocomplete: 'off' });
  const me = h('p', { class: 'mono', id: 'me' });
  const profile = h('form', { class: 'row', id: 'profile-form' },
    h('label', { for: 'p-nick' }, 'Nickname', nick), h('label', { for: 'p-status' }, 'Status', status),
    h('label', { class: 'grow', for: 'p-text' }, 'Status text', text), h('button', { type: 'submit' }, 'Save'));
  profile.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      showProfile(await api('POST', '/v1/profile', { nick: nick.value, status: status.value, text: text.value }));
      toast('Profile saved');
    } catch (err) { toast(`Profile: ${err.message}`); }
  });
  const showProfile = (p) => {
    nick.value = p.nick || ''; status.value = p.status; text.value = p.text || '';
    fill(me, `You are ${p.nick || 'nameless'} [${p.short}]: `, p.id);
  };

  // Requests and contacts.
  const reqList = h('ul', { class: 'plain', id: 'requests' });
  const contactList = h('ul', { class: 'plain', id: 'contacts' });
  const addID = h('input', { id: 'c-id', required: true, autocomplete: 'off', spellcheck: 'false' });
  const addName = h('input', { id: 'c-name', autocomplete: 'off' });
  const addMsg = h('input', { id: 'c-msg', autocomplete: 'off' });
  const add = h('form', { class: 'row', id: 'add-form' },
    h('label', { class: 'grow', for: 'c-id' }, 'Node ID', addID), h('label', { for: 'c-name' }, 'Your name for them', addName),
    h('label', { class: 'grow', for: 'c-msg' }, 'Message', addMsg), h('button', { type: 'submit' }, 'Send request'));
  add.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const id = addID.value.trim();
      const before = seen.get(id) || 0;
      const c = await api('POST', '/v1/contacts', { id, name: addName.value.trim(), message: addMsg.value });
      fresh(c, before);
      drawContacts();
      add.reset();
      toast(`Request sent to ${name(c)}`);
    } catch (err) { toast(`Not sent: ${err.message}`); }
  });

  // Chat.
  const chatTitle = h('h2', { id: 'chat-title' }, 'Chat');
  const chat = h('div', { class: 'chat', id: 'chat', role: 'log', 'aria-live': 'polite' });
  const line = h('input', { id: 'm-text', autocomplete: 'off', required: true, maxlength: '8192' });
  const send = h('form', { class: 'row', id: 'send-form', hidden: true },
    h('label', { class: 'grow', for: 'm-text' }, 'Message', line), h('button', { type: 'submit' }, 'Send'));
  send.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!peer) return;
    try {
      const m = await api('POST', '/v1/messages', { to: peer, text: line.value });
      upsertMessage(m);
      line.value = '';
    } catch (err) { toast(`Not sent: ${err.message}`); }
  });

  main.append(heading('People'),
    h('section', { class: 'card' }, h('h2', {}, 'You'), me, profile),
    h('div', { class: 'grid' },
      h('section', { class: 'card' }, h('h2', {}, 'Contacts'), contactList, h('h2', {}, 'Add a contact'), add),
      h('section', { class: 'card' }, h('h2', {}, 'Requests'), reqList),
      h('section', { class: 'card' }, chatTitle, chat, send)));

  const drawRequests = () => fill(reqList, requests.size === 0 ? h('li', { class: 'muted' }, 'No requests waiting.')
    : [...requests.values()].map((r) => h('li', { class: 'item request', 'data-id': r.id },
      h('span', { class: 'title' }, r.nick ? `${r.nick} [${r.short}]` : r.short),
      r.text ? h('span', {}, `“${r.text}”`) : null,
      h('span', { class: 'meta' }, `${ago(r.last)}${r.count > 1 ? `, ${r.count} times` : ''}`),
      h('span', { class: 'actions' },
        h('button', { type: 'button', class: 'accept', onclick: () => answer(r, 'accept') }, 'Accept'),
        h('button', { type: 'button', class: 'quiet deny', onclick: () => answer(r, 'deny') }, 'Deny')))));
  const answer = async (r, what) => {
    const before = seen.get(r.id) || 0;
    try {
      const c = await api('POST', `/v1/contacts/${r.id}/${what}`);
      requests.delete(r.id);
      if (what === 'accept') fresh(c, before);
      drawRequests(); drawContacts();
    } catch (err) { toast(`${what}: ${err.message}`); }
  };
  const drawContacts = () => fill(contactList, contacts.size === 0 ? h('li', { class: 'muted' }, 'No contacts yet.')
    : [...contacts.values()].sort((a, b) => name(a).localeCompare(name(b))).map((c) => h('li', { class: 'item contact', 'data-id': c.id, 'data-status': c.status },
      h('span', { class: 'title' }, name(c)),
      c.state === 'contact' ? badge(c.status) : badge('queued', c.state),
      c.text ? h('span', { class: 'meta' }, c.text) : null,
      h('span', { class: 'meta' }, c.online ? 'online now' : `seen ${ago(c.last_seen)}`),
      unread.get(c.id) ? h('span', { class: 'badge online' }, `${unread.get(c.id)} new`) : null,
      c.state === 'contact' ? h('button', { type: 'button', class: 'quiet open-chat', 'aria-label': `Chat with ${name(c)}`, onclick: () => open(c.id) }, 'Chat') : null,
      c.state === 'contact' ? h('a', { class: 'browse', href: `#/browse/${c.id}`, 'aria-label': `Browse ${name(c)}'s files` }, 'Browse') : null,
      manage(c))));
  // manage is a contact's settings: trust (what they may browse and
  // fetch; blocked: nothing, and their hits hidden), appearing offline to
  // them, and removing them. The open state survives redraws.
  const opened = new Set();
  const manage = (c) => {
    const act = async (path, body, done) => {
      const before = seen.get(c.id) || 0;
      try {
        const got = await api('POST', `/v1/contacts/${c.id}/${path}`, body);
        if (path === 'remove') { contacts.delete(c.id); if (peer === c.id) { peer = null; drawChat(); } } else fresh(got, before);
        drawContacts();
        toast(done);
      } catch (err) { toast(`${name(c)}: ${err.message}`); drawContacts(); }
    };
    const trust = h('select', { class: 'trust', 'aria-label': `Trust of ${name(c)}` },
      [['contact', 'contact: sees what you share with contacts'], ['trusted', 'trusted: sees everything you share'],
        ['blocked', 'blocked: sees nothing, hits hidden']].map(([v, label]) => h('option', { value: v, selected: v === c.trust }, label)));
    trust.addEventListener('change', () => act('trust', { trust: trust.value }, `${name(c)} is ${trust.value} now`));
    const hide = h('input', { type: 'checkbox', class: 'appear-offline', checked: !!c.appear_offline });
    hide.addEventListener('change', () => act('appear-offline', { on: hide.checked },
      hide.checked ? `You appear offline to ${name(c)}` : `${name(c)} sees your presence again`));
    const remove = h('button', { type: 'button', class: 'quiet danger remove' }, 'Remove');
    remove.addEventListener('click', () => {
      if (window.confirm(`Remove ${name(c)} from your contacts? They stop seeing your presence and what you share with contacts.`)) {
        act('remove', undefined, `${name(c)} removed`);
      }
    });
    const d = h('details', { class: 'manage', open: opened.has(c.id) }, h('summary', {}, 'Manage'),
      h('div', { class: 'row' }, trust, h('label', {}, hide, ' Appear offline to them'), remove));
    d.addEventListener('toggle', () => { if (d.open) opened.add(c.id); else opened.delete(c.id); });
    return d;
  };
  const drawChat = () => {
    const c = contacts.get(peer);
    chatTitle.textContent = c ? `Chat with ${name(c)}` : 'Chat';
    send.hidden = !peer;
    fill(chat, !peer ? h('p', { class: 'muted' }, 'Pick a contact to chat with.')
      : messages.length === 0 ? h('p', { class: 'muted' }, 'No messages yet.')
        : messages.map((m) => h('div', { class: `msg ${m.dir}`, 'data-id': m.id, 'data-state': m.state },
          h('div', {}, m.text),
          h('div', { class: 'meta' }, when(m.time), ' ', m.dir === 'out' ? badge(m.state) : null,
            m.reason ? h('span', { class: 'error' }, ` ${m.reason}`) : null))));
    chat.scrollTop = chat.scrollHeight;
  };
  const upsertMessage = (m) => {
    if (m.contact !== peer) {
      if (m.dir === 'in') { unread.set(m.contact, (unread.get(m.contact) || 0) + 1); drawContacts(); }
      return;
    }
    const i = messages.findIndex((x) => x.id === m.id);
    // A message's state only moves on (queued, stored, delivered or
    // failed): the answer to the send, still saying queued, may come after
    // the event of its receipt on loopback, and must not undo it.
    if (i >= 0) { if (stateRank(m) >= stateRank(messages[i])) messages[i] = m; } else messages.push(m);
    messages.sort((a, b) => new Date(a.time) - new Date(b.time));
    drawChat();
  };
  const open = async (id) => {
    peer = id;
    unread.delete(id);
    messages = [];
    drawContacts(); drawChat();
    try {
      const ms = await api('GET', `/v1/messages?contact=${encodeURIComponent(id)}`);
      if (peer === id) {
        // Messages that arrived on the event stream while the list was
        // on its way are kept: the list may predate them.
        const got = new Map((ms || []).map((m) => [m.id, m]));
        for (const m of messages) if (!got.has(m.id) || stateRank(m) >= stateRank(got.get(m.id))) got.set(m.id, m);
        messages = [...got.values()].sort((a, b) => new Date(a.time) - new Date(b.time));
        drawChat();
        line.focus();
      }
    } catch (err) { toast(`Messages: ${err.message}`); }
  };

  // The event stream first, then the lists, so that nothing that happens
  // in between is missed (a change seen twice is applied twice, harmlessly).
  const stop = stream('/v1/events', {
    presence: (e) => { seen.set(e.contact.id, (seen.get(e.contact.id) || 0) + 1); contacts.set(e.contact.id, e.contact); drawContacts(); drawChat(); },
    contact: (e) => {
      seen.set(e.contact.id, (seen.get(e.contact.id) || 0) + 1);
      if (e.contact.state === 'removed') contacts.delete(e.contact.id); else contacts.set(e.contact.id, e.contact);
      requests.delete(e.contact.id);
      drawContacts(); drawRequests();
    },
    request: (e) => { requests.set(e.request.id, e.request); drawRequests(); },
    message: (e) => upsertMessage(e.message),
    'message-state': (e) => upsertMessage(e.message),
  });
  Promise.all([api('GET', '/v1/profile'), api('GET', '/v1/contacts'), api('GET', '/v1/contacts/requests')]).then(([p, cs, rs]) => {
    showProfile(p);
    for (const c of cs || []) if (!contacts.has(c.id)) contacts.set(c.id, c);
    for (const r of rs || []) requests.set(r.id, r);
    drawContacts(); drawRequests(); drawChat();
  }, (err) => toast(err.message));
  drawContacts(); drawRequests(); drawChat();
  return stop;
}
