// Portalis health dashboard: plain browser JavaScript, no build step, no third-party code.
// The admin token lives in sessionStorage only (this tab, until it closes) and travels as an
// Authorization header; it is never put in a URL. Every text from the service (host names come
// from the agents) is set as textContent, never parsed as HTML.

const POLL_MS = 5000;
const TOKEN_KEY = 'portalis.adminToken';
const STATES = ['failed', 'unknown', 'degraded', 'detached', 'pending', 'optimal'];
const SYMBOL = { optimal: '✓', degraded: '!', failed: '✕', unknown: '?', detached: '⏏', pending: '…' };

const $ = (id) => document.getElementById(id);
const view = { offset: 0, matrix: null, selected: null, paused: false, timer: null, inflight: null };

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('data-') || k.startsWith('aria-') || k === 'title' || k === 'type') e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

const token = () => sessionStorage.getItem(TOKEN_KEY);

async function api(path) {
  const r = await fetch(path, { headers: { authorization: `Bearer ${token()}` }, cache: 'no-store' });
  if (r.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin('The token was refused (401): type the admin token again.');
    throw new Error('unauthorized');
  }
  const body = await r.json().catch(() => null);
  if (!r.ok)
    throw new Error(body?.error ? `${r.status} ${body.error.code}: ${body.error.message}` : `HTTP ${r.status}`);
  return body;
}

function age(iso, now = Date.now()) {
  if (!iso) return 'never';
  let s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s %= 86400) / 3600);
  const m = Math.floor((s %= 3600) / 60);
  s %= 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

function stateBadge(state, text) {
  return el('span', { class: `count s-${state}`, 'data-state': state }, el('b', { text: SYMBOL[state] ?? '' }), text);
}

// ------------------------------------------------------------------ login

function showLogin(message = '') {
  $('main').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message;
  $('token').focus();
  clearTimeout(view.timer);
}

function showMain() {
  $('login').hidden = true;
  $('main').hidden = false;
  $('logout').hidden = false;
  void refresh();
}

// ------------------------------------------------------------------ filters and query

function query() {
  const f = $('filters');
  const states = [...f.querySelectorAll('input[name=health]:checked')].map((i) => i.value);
  const p = new URLSearchParams();
  if (states.length < STATES.length) p.set('health', states.length ? states.join(',') : 'none');
  const vol = f.elements.volume.value.trim();
  const host = f.elements.host.value.trim();
  if (vol) p.set('volume_id', vol);
  if (host) p.set('host_nqn', host);
  if (f.elements.worst.checked) p.set('order', 'worst');
  p.set('limit', f.elements.limit.value);
  p.set('offset', String(view.offset));
  return p;
}

// ------------------------------------------------------------------ rendering

function renderSummary(m) {
  const s = $('summary');
  s.replaceChildren(
    ...STATES.map((k) => stateBadge(k, `${m.summary[k]} ${k}`)),
    el('span', {
      class: 'count',
      text: `${m.page.total_cells} attachments · ${m.page.total_volumes} volumes · ${m.hosts.length} hosts`,
    }),
  );
}

/** Volumes and hosts by their worst state, over every page. */
function renderRollups(m) {
  const hostCounts = Object.fromEntries(STATES.map((k) => [k, m.hosts.filter((h) => h.health === k).length]));
  const line = (label, counts, kind) =>
    el(
      'span',
      { class: 'rollup', 'data-rollup': kind },
      el('strong', { text: `${label}: ` }),
      ...STATES.filter((k) => counts[k] > 0).map((k) => stateBadge(k, `${counts[k]} ${k}`)),
      STATES.every((k) => counts[k] === 0) ? 'none' : null,
    );
  const parts = [line('Volumes', m.volume_summary, 'volumes'), line('Hosts', hostCounts, 'hosts')];
  const stale = m.hosts.filter((h) => h.stale).length;
  if (stale) parts.push(el('span', { class: 'count stale-note', text: `${stale} agent(s) stale` }));
  $('rollups').replaceChildren(...parts);
}

function renderHosts(m) {
  $('host-count').textContent =
    `(${m.hosts.length}${m.hosts.some((h) => h.stale) ? `, ${m.hosts.filter((h) => h.stale).length} stale` : ''})`;
  // Worst hosts first (when asked), so that the one in trouble is the first chip; the grid's
  // columns keep the service's order (by name) so that they do not move between refreshes.
  const rank = (h) => STATES.indexOf(h.health) - (h.stale ? 0.5 : 0);
  const list = $('filters').elements.worst.checked ? [...m.hosts].sort((x, y) => rank(x) - rank(y)) : m.hosts;
  $('hosts').replaceChildren(
    ...list.map((h) => {
      const worst = STATES.filter((k) => h.counts[k] > 0)
        .map((k) => `${h.counts[k]} ${k}`)
        .join(', ');
      const b = el(
        'button',
        {
          type: 'button',
          class: `count s-${h.health}${h.stale ? ' stale' : ''}`,
          'data-host': h.host_nqn,
          'data-health': h.health,
          title: `${h.host_nqn}\n${worst}\nlast seen ${age(h.last_seen_at)} ago${h.stale ? ' (agent stale)' : ''}\nclick: only this host`,
        },
        el('b', { text: SYMBOL[h.health] }),
        h.host,
        h.stale ? ' (stale)' : '',
      );
      b.addEventListener('click', () => {
        $('filters').elements.host.value = h.host_nqn;
        view.offset = 0;
        void refresh();
      });
      return b;
    }),
  );
}

function renderGrid(m) {
  const hosts = m.hosts;
  const col = new Map(hosts.map((h, i) => [h.host_nqn, i]));
  const head = el(
    'tr',
    {},
    el('th', { class: 'corner', text: 'volume \\ host' }),
    ...hosts.map((h) => el('th', { text: h.host, title: h.host_nqn, 'data-host': h.host_nqn })),
  );
  const rows = m.volumes.map((v) => {
    const cells = new Array(hosts.length).fill(null);
    for (const c of v.hosts) cells[col.get(c.host_nqn)] = c;
    const rowHead = el(
      'th',
      { title: `${v.volume_id}: ${v.health}`, 'data-volume': v.volume_id, 'data-health': v.health },
      el('span', { class: `roll s-${v.health}`, text: SYMBOL[v.health] }),
      v.volume_id.slice(0, 8),
    );
    return el(
      'tr',
      {},
      rowHead,
      ...cells.map((c) => {
        if (!c) return el('td');
        const live = c.reported_at ? `, ${c.paths_live}/${c.paths_total} paths live` : '';
        const label = `volume ${v.volume_id} on ${c.host}: ${c.health}${live}`;
        const b = el('button', {
          type: 'button',
          class: `s-${c.health}`,
          text: SYMBOL[c.health],
          title: `${label}\nsince ${age(c.since)}${c.host_stale ? '\nagent stale' : ''}`,
          'aria-label': label,
        });
        b.addEventListener('click', () => openDetail(c.attachment_id));
        const td = el(
          'td',
          {
            class: view.selected === c.attachment_id ? 'sel' : '',
            'data-attachment': c.attachment_id,
            'data-health': c.health,
            'data-volume': v.volume_id,
            'data-host': c.host_nqn,
          },
          b,
        );
        return td;
      }),
    );
  });
  $('grid').replaceChildren(el('thead', {}, head), el('tbody', {}, ...rows));
  $('empty').hidden = m.volumes.length > 0;
  const first = m.page.total_volumes === 0 ? 0 : m.page.offset + 1;
  $('range').textContent = `volumes ${first}–${m.page.offset + m.volumes.length} of ${m.page.total_volumes}`;
  $('prev').disabled = m.page.offset === 0;
  $('next').disabled = m.page.next_offset === null;
}

// ------------------------------------------------------------------ attachment detail

async function openDetail(id) {
  view.selected = id;
  for (const td of document.querySelectorAll('#grid td.sel')) td.classList.remove('sel');
  document.querySelector(`#grid td[data-attachment="${CSS.escape(id)}"]`)?.classList.add('sel');
  $('detail').hidden = false;
  await renderDetail();
}

function closeDetail() {
  view.selected = null;
  $('detail').hidden = true;
  for (const td of document.querySelectorAll('#grid td.sel')) td.classList.remove('sel');
}

async function renderDetail() {
  const id = view.selected;
  if (!id) return;
  let a;
  let ev;
  try {
    [a, ev] = await Promise.all([api(`/v1/attachments/${id}`), api(`/v1/attachments/${id}/events?limit=20`)]);
  } catch (e) {
    $('detail-body').replaceChildren(el('p', { class: 'error', text: `Cannot read attachment ${id}: ${e.message}` }));
    return;
  }
  if (view.selected !== id) return;
  const cell = view.matrix?.volumes.flatMap((v) => v.hosts).find((c) => c.attachment_id === id);
  const health = cell?.health ?? a.health;
  const r = a.agent;
  const dl = el('dl');
  const row = (k, v) => dl.append(el('dt', { text: k }), el('dd', { text: v }));
  row('volume', a.volume_id);
  row('host', `${a.host} (${a.host_nqn})`);
  row('attachment', `${a.id} (${a.status})`);
  row('mode', a.multipath_mode);
  row('agent state', r ? r.state : 'no report yet');
  row('device', r?.device_path ?? '–');
  row('report age', r ? `${age(r.reported_at)} (at ${r.reported_at})` : 'never reported');
  if (cell) row('in this state for', age(cell.since));
  if (r?.error) row('error', `${r.error.code}: ${r.error.message}`);

  const paths = el(
    'table',
    { 'data-role': 'paths' },
    el(
      'thead',
      {},
      el(
        'tr',
        {},
        ...['controller', 'address', 'port', 'transport', 'state', 'ANA state'].map((h) => el('th', { text: h })),
      ),
    ),
    el(
      'tbody',
      {},
      ...(r?.paths ?? []).map((p) =>
        el(
          'tr',
          { 'data-path': `${p.address}:${p.port}` },
          el('td', { text: p.controller ?? '–' }),
          el('td', { text: p.address }),
          el('td', { text: String(p.port) }),
          el('td', { text: p.transport }),
          el('td', { class: p.state === 'live' ? 'path-live' : 'path-down', text: p.state }),
          el('td', { text: p.ana_state ?? '–' }),
        ),
      ),
    ),
  );

  const history = el(
    'table',
    { 'data-role': 'events' },
    el('thead', {}, el('tr', {}, ...['when', 'from', 'to', 'paths live', 'error'].map((h) => el('th', { text: h })))),
    el(
      'tbody',
      {},
      ...ev.events.map((e) =>
        el(
          'tr',
          {},
          el('td', { text: `${age(e.at)} ago`, title: e.at }),
          el('td', { text: `${e.from.state ?? '–'} / ${e.from.health ?? '–'}` }),
          el('td', { text: `${e.to.state} / ${e.to.health ?? '–'}` }),
          el('td', { text: `${e.paths.filter((p) => p.state === 'live').length}/${e.paths.length}` }),
          el('td', { text: e.error ? `${e.error.code}: ${e.error.message}` : '' }),
        ),
      ),
    ),
  );

  $('detail-body').replaceChildren(
    el('h3', {}, stateBadge(health, ` ${health}`), ` ${a.volume_id.slice(0, 8)} on ${a.host}`),
    dl,
    el('h3', {
      text: `Paths (${(r?.paths ?? []).filter((p) => p.state === 'live').length}/${(r?.paths ?? []).length} live)`,
    }),
    r?.paths?.length ? paths : el('p', { class: 'hint', text: 'No paths reported.' }),
    el('h3', { text: 'Recent history' }),
    ev.events.length ? history : el('p', { class: 'hint', text: 'No change recorded yet.' }),
  );
  $('detail').setAttribute('data-attachment', id);
  $('detail').setAttribute('data-health', health);
}

// ------------------------------------------------------------------ refresh loop

async function refresh() {
  clearTimeout(view.timer);
  const q = query();
  const mine = Symbol('refresh');
  view.inflight = mine;
  try {
    if (q.get('health') === 'none') {
      view.matrix = {
        summary: Object.fromEntries(STATES.map((k) => [k, 0])),
        volume_summary: Object.fromEntries(STATES.map((k) => [k, 0])),
        volumes: [],
        hosts: [],
        page: { offset: 0, total_volumes: 0, total_cells: 0, next_offset: null },
      };
    } else {
      const m = await api(`/v1/health/multipath?${q}`);
      if (view.inflight !== mine) return; // a newer refresh (a filter change) overtook this one
      view.matrix = m;
    }
    renderSummary(view.matrix);
    renderRollups(view.matrix);
    renderHosts(view.matrix);
    renderGrid(view.matrix);
    $('error').textContent = '';
    $('refreshed').textContent = `updated ${new Date().toLocaleTimeString()}${view.paused ? ' (paused)' : ''}`;
    document.body.setAttribute('data-refreshed', String(Date.now()));
    if (view.selected) await renderDetail();
  } catch (e) {
    if (e.message === 'unauthorized') return;
    $('error').textContent = `Refresh failed: ${e.message} (retrying)`;
  }
  if (!view.paused && token()) view.timer = setTimeout(refresh, POLL_MS);
}

// ------------------------------------------------------------------ wiring

document.addEventListener('DOMContentLoaded', () => {
  $('login').addEventListener('submit', (e) => {
    e.preventDefault();
    const t = $('token').value.trim();
    if (!t) return;
    sessionStorage.setItem(TOKEN_KEY, t);
    $('token').value = '';
    showMain();
  });
  $('logout').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    closeDetail();
    showLogin();
  });
  $('pause').addEventListener('click', () => {
    view.paused = !view.paused;
    $('pause').textContent = view.paused ? 'resume' : 'pause';
    if (!view.paused) void refresh();
    else clearTimeout(view.timer);
  });
  const changed = () => {
    view.offset = 0;
    void refresh();
  };
  $('filters').addEventListener('change', changed);
  $('filters').addEventListener('submit', (e) => {
    e.preventDefault();
    changed();
  });
  $('prev').addEventListener('click', () => {
    const limit = Number($('filters').elements.limit.value);
    view.offset = Math.max(0, view.offset - limit);
    void refresh();
  });
  $('next').addEventListener('click', () => {
    if (view.matrix?.page.next_offset != null) view.offset = view.matrix.page.next_offset;
    void refresh();
  });
  $('close').addEventListener('click', closeDetail);
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') closeDetail();
  });
  if (token()) showMain();
  else showLogin();
});
