// virtnet dashboard: plain JavaScript, no build step; it talks to this server only.
//
// Live updates: an EventSource on /v1/events (the token goes in ?token=, as EventSource cannot
// send headers). Every event schedules one debounced refresh of all lists. While the stream is
// down, or while something is still settling (a network starting, a port plugging: changes
// that have no event of their own), the page polls every 2 s; with the stream up and nothing
// settling it resyncs every 30 s, which also catches event kinds this page does not know.
'use strict';

const TOKEN_KEY = 'virtnet.token';
const POLL_MS = 2000;
const RESYNC_MS = 30000;
const DEBOUNCE_MS = 150;
const RECONNECT_MS = [2000, 5000, 10000, 30000];
// A named SSE event reaches only listeners for its name, so the kinds are listed here.
const EVENT_KINDS = [
  'network.defined', 'network.undefined', 'network.started', 'network.stopped',
  'port.plugged', 'port.unplugged', 'port.failed',
  'domain.defined', 'domain.undefined', 'domain.started', 'domain.stopped',
  'domain.suspended', 'domain.resumed', 'host.up', 'host.down',
];
const SETTLING = new Set(['starting', 'stopping', 'pending', 'plugging', 'unplugging']);
const TONES = {
  active: 'ok', up: 'ok', running: 'ok', plugged: 'ok', succeeded: 'ok',
  starting: 'busy', stopping: 'busy', pending: 'busy', plugging: 'busy', unplugging: 'busy',
  degraded: 'warn', paused: 'warn',
  failed: 'bad', down: 'bad',
};

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem(TOKEN_KEY);
let stream = null;
let reconnects = 0;
let reconnectTimer = 0;
let timer = null; // the next refresh: {due, id}
let running = null; // the refresh in flight
let again = false; // something changed while it ran
let offline = '';
let last = null; // what the last refresh loaded
const busy = new Map(); // button key -> label while its request runs

class SignedOut extends Error {}

// -- talking to the API

async function api(path, options = {}) {
  if (!token) throw new SignedOut('signed out');
  const response = await fetch(path, {
    ...options,
    headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' },
  });
  if (response.ok) return response.status === 204 ? null : response.json();
  const problem = await response.json().catch(() => ({}));
  const message = problem.detail || problem.title || `${response.status} ${response.statusText}`;
  if (response.status === 401) {
    signOut(message);
    throw new SignedOut(message);
  }
  throw new Error(message);
}

async function load() {
  const [hosts, networks, domains] = await Promise.all([
    api('/v1/hosts'), api('/v1/networks?limit=1000'), api('/v1/domains'),
  ]);
  const ports = await Promise.all(networks.items.map((n) =>
    api(`/v1/networks/${encodeURIComponent(n.name)}/ports`).catch((err) => {
      if (err instanceof SignedOut) throw err;
      return []; // the network went away since the listing
    })));
  return { hosts, networks: networks.items, ports: ports.flat(), domains };
}

function refresh() {
  if (running) {
    again = true;
    return running;
  }
  running = (async () => {
    try {
      let data;
      do {
        again = false;
        data = await load();
      } while (again);
      if (!token) return; // signed out meanwhile
      last = data;
      offline = '';
      render(last);
      $('updated').textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (err) {
      if (!(err instanceof SignedOut)) offline = err.message;
    } finally {
      running = null;
      showLive();
      if (token) schedule(isLive() && !settling(last) ? RESYNC_MS : POLL_MS);
    }
  })();
  return running;
}

function schedule(ms) {
  const due = Date.now() + ms;
  if (timer && timer.due <= due) return;
  clearTimeout(timer?.id);
  timer = { due, id: setTimeout(() => { timer = null; refresh(); }, ms) };
}

function settling(data) {
  if (!data) return true;
  return data.networks.some((n) => SETTLING.has(n.status.state)
      || n.status.hosts.some((r) => SETTLING.has(r.state)))
    || data.ports.some((p) => SETTLING.has(p.state))
    || data.domains.some((d) => SETTLING.has(d.status.state));
}

// -- the event stream

const isLive = () => stream !== null && stream.readyState === EventSource.OPEN;

function connect() {
  clearTimeout(reconnectTimer);
  stream?.close();
  stream = null;
  if (!token || !window.EventSource) return;
  const source = new EventSource(`/v1/events?token=${encodeURIComponent(token)}`);
  stream = source;
  const changed = (event) => {
    $('live').dataset.lastEventId = event.lastEventId;
    schedule(DEBOUNCE_MS);
  };
  source.onmessage = changed;
  EVENT_KINDS.forEach((kind) => source.addEventListener(kind, changed));
  source.onopen = () => {
    reconnects = 0;
    showLive();
    schedule(0); // catch up on anything that happened while the stream was down
  };
  source.onerror = () => {
    showLive();
    schedule(POLL_MS);
    // CONNECTING: the browser retries by itself. CLOSED (refused, or no such endpoint): we do.
    if (source.readyState === EventSource.CLOSED && stream === source) {
      const delay = RECONNECT_MS[Math.min(reconnects++, RECONNECT_MS.length - 1)];
      reconnectTimer = setTimeout(connect, delay);
    }
  };
}

function showLive() {
  const live = $('live');
  const [mode, text] = offline ? ['offline', 'API unreachable']
    : isLive() ? ['live', 'Live'] : ['polling', 'Polling every 2 s'];
  live.dataset.mode = mode;
  live.textContent = text;
  live.title = offline || (mode === 'live' ? 'updates arrive from /v1/events'
    : 'the event stream is not connected; the lists are re-read every 2 s');
}

// -- signing in and out

async function enter() {
  await refresh();
  if (!token) return; // the API refused the token; the form says why
  $('signin').hidden = true;
  $('dashboard').hidden = false;
  $('session').hidden = false;
  connect();
}

function signOut(message) {
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  stream?.close();
  stream = null;
  clearTimeout(reconnectTimer);
  clearTimeout(timer?.id);
  timer = null;
  last = null;
  busy.clear();
  document.querySelectorAll('tbody').forEach((body) => body.replaceChildren());
  $('dashboard').hidden = true;
  $('session').hidden = true;
  $('signin').hidden = false;
  $('signin-error').textContent = message;
  $('signin-error').hidden = !message;
  $('token').focus();
}

$('signin-form').addEventListener('submit', (event) => {
  event.preventDefault();
  token = $('token').value.trim();
  $('token').value = '';
  sessionStorage.setItem(TOKEN_KEY, token);
  $('signin-error').hidden = true;
  enter();
});
$('sign-out').addEventListener('click', () => signOut(''));

// -- actions

async function act(key, label, path, what) {
  busy.set(key, label);
  if (last) render(last);
  try {
    const result = await api(path, { method: 'POST' });
    if (result?.state === 'failed') notify(`${what} failed: ${result.error}`);
    else if (result?.state === 'running') notify(`${what} is still running on its host`, 'info');
    else notify('');
  } catch (err) {
    if (!(err instanceof SignedOut)) notify(`${what}: ${err.message}`);
  } finally {
    busy.delete(key);
    if (token) refresh();
  }
}

function notify(message, tone = 'error') {
  const box = $('notice');
  box.hidden = !message;
  box.dataset.tone = tone;
  box.replaceChildren(h('span', {}, message),
    h('button', { type: 'button', class: 'quiet', onclick: () => notify('') }, 'Dismiss'));
}

// -- rendering (text only ever goes in as text nodes)

function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? '' : value);
  }
  node.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

const badge = (state, testid) =>
  h('span', { class: `badge ${TONES[state] || 'off'}`, 'data-testid': testid }, state);
const code = (text) => (text ? h('code', {}, text) : h('span', { class: 'dim' }, '—'));
const yesNo = (value, warnWhenOff) =>
  h('span', { class: value ? 'yes' : warnWhenOff ? 'badge warn' : 'dim' }, value ? 'yes' : 'no');
const time = (iso) => h('time', { datetime: iso, title: iso }, new Date(iso).toLocaleTimeString());
const error = (text, tone = 'bad') => (text ? h('div', { class: `msg ${tone}` }, text) : null);

function button(key, label, doing, path, what, testid) {
  const pending = busy.get(key);
  return h('button', {
    type: 'button', class: 'act', 'data-key': key, 'data-testid': testid,
    'aria-label': `${pending || label} ${what}`, disabled: Boolean(pending),
    onclick: () => act(key, doing, path, `${label} ${what}`),
  }, pending || label);
}

function fill(name, rows, columns, empty) {
  const body = $(`${name}-body`);
  const focused = document.activeElement?.dataset?.key;
  body.replaceChildren(...(rows.length ? rows
    : [h('tr', { class: 'empty' }, h('td', { colspan: columns }, empty))]));
  $(`${name}-count`).textContent = rows.length;
  if (focused) body.querySelector(`[data-key="${CSS.escape(focused)}"]`)?.focus();
}

function render({ hosts, networks, ports, domains }) {
  fill('hosts', hosts.map((host) => h('tr', { 'data-testid': 'host-row', 'data-name': host.name },
    h('th', { scope: 'row' }, host.name),
    h('td', {}, badge(host.state, 'host-state')),
    h('td', {}, code(host.kernel)),
    h('td', { title: host.vlan_filtering ? null
      : "without it, ports of macTableManager='libvirt' networks stay promiscuous" },
    yesNo(host.vlan_filtering, true)),
    h('td', {}, yesNo(host.vlan_8021q, true)),
    h('td', {}, yesNo(host.tun)),
    h('td', {}, yesNo(host.net_admin)),
    h('td', { 'data-testid': 'host-underlay' }, host.underlay
      ? code(host.underlay) : h('span', { class: 'dim' }, '—')),
    h('td', {}, time(host.last_seen)))), 9, 'No host worker has reported yet.');

  fill('networks', networks.map((net) => {
    const { state, hosts: realised, persistent, gateway } = net.status;
    const path = `/v1/networks/${encodeURIComponent(net.name)}`;
    const action = state === 'inactive'
      ? button(`net:${net.name}`, 'Start', 'Starting…', `${path}/start`,
        `network ${net.name}`, 'network-start')
      : button(`net:${net.name}`, 'Stop', 'Stopping…', `${path}/stop`,
        `network ${net.name}`, 'network-stop');
    return h('tr', { 'data-testid': 'network-row', 'data-name': net.name, 'data-state': state },
      h('th', { scope: 'row' }, net.name,
        persistent ? null : h('span', { class: 'tag' }, 'transient'),
        net.autostart ? h('span', { class: 'tag' }, 'autostart') : null,
        net.overlay ? h('span', { class: 'tag', 'data-testid': 'network-overlay' },
          `${net.overlay.type} VNI ${net.overlay.vni}`) : null),
      h('td', {}, badge(state, 'network-state')),
      h('td', {}, net.forward?.mode || 'none'),
      h('td', {}, code(net.bridge?.name)),
      h('td', {}, net.bridge?.mac_table_manager || 'kernel'),
      h('td', { 'data-testid': 'network-hosts' }, realised.length || absentGateway(gateway)
        ? h('ul', { class: 'plain' }, realised.map((r) => h('li', {},
          h('span', { class: 'host' }, r.host), ' ',
          r.host === gateway?.host ? gatewayTag() : null, badge(r.state),
          r.overlay ? overlayHost(r.overlay) : null,
          error(r.error, TONES[r.state] || 'bad'))),
        absentGateway(gateway) ? h('li', {}, h('span', { class: 'host' }, gateway.host), ' ',
          gatewayTag(), badge(gateway.state), error(gateway.reason)) : null)
        : h('span', { class: 'dim' }, state === 'inactive' ? '—' : 'no host up')),
      h('td', { class: 'actions' }, action));
  }), 7, 'No networks defined. POST /v1/networks defines one.');

  fill('ports', ports.map((port) => h('tr', { 'data-testid': 'port-row', 'data-id': port.id },
    h('td', {}, port.network || '—'),
    h('td', {}, port.owner?.name || '—'),
    h('td', {}, code(port.mac)),
    h('td', {}, port.host),
    h('td', { 'data-testid': 'port-tap' }, code(port.actual?.tap)),
    h('td', {}, badge(port.state, 'port-state'), error(port.error)))), 6, 'No ports.');

  fill('domains', domains.map((dom) => {
    const { state } = dom.status;
    const path = `/v1/domains/${encodeURIComponent(dom.name)}`;
    let action = null;
    if (state === 'shut_off') {
      action = button(`dom:${dom.name}`, 'Start', 'Starting…', `${path}/start?wait=10`,
        `domain ${dom.name}`, 'domain-start');
    } else if (state === 'running' || state === 'paused') {
      action = button(`dom:${dom.name}`, 'Stop', 'Stopping…', `${path}/stop?wait=10`,
        `domain ${dom.name}`, 'domain-stop');
    }
    return h('tr', { 'data-testid': 'domain-row', 'data-name': dom.name, 'data-state': state },
      h('th', { scope: 'row' }, dom.name),
      h('td', {}, dom.host),
      h('td', {}, badge(state, 'domain-state'), error(dom.status.error)),
      h('td', {}, dom.interfaces.length
        ? h('ul', { class: 'plain' }, dom.interfaces.map(iface))
        : h('span', { class: 'dim' }, 'none')),
      h('td', { class: 'actions' }, action));
  }), 5, 'No domains defined.');
}

// an overlay network's gateway host carries its addresses, DHCP and NAT (the others L2)
const gatewayTag = () => h('span', { class: 'tag', 'data-testid': 'gateway-host',
  title: 'carries the network\'s addresses, DHCP and NAT; the other hosts carry L2 only' },
'gateway');
// a gateway host that does not run the network (missing or down) still gets a line
const absentGateway = (g) => Boolean(g && ['missing', 'down'].includes(g.state));

function overlayHost(o) {
  // one host of an overlay network: its underlay, the remote entries it wrote, in sync or not
  return h('span', { 'data-testid': 'overlay-host', class: 'dim' }, ' ', code(o.underlay), ' · ',
    `${o.remote_entries}/${o.remote_entries_wanted} remote entries · `,
    o.in_sync ? 'in sync' : 'syncing', error(o.error));
}

function iface(i) {
  const source = i.source.network ? `network ${i.source.network}` : `bridge ${i.source.bridge}`;
  const a = i.actual;
  if (!a) return h('li', {}, code(i.mac), ' ', h('span', { class: 'dim' }, `${source}, not plugged`));
  return h('li', { 'data-testid': 'interface' }, code(i.mac), ' → ', code(a.tap), ' on ',
    code(a.bridge), ' ', h('span', { class: 'tag', title: 'macTableManager' }, a.mac_table_manager),
    ' ', badge(a.state, 'interface-state'), error(a.error));
}

// -- start

if (token) enter();
else signOut('');
