/*
 * app.js — mailroom-web's page: polls the JSON endpoints (docs/dashboard.md), follows
 * the live feed (server-sent events read with fetch, so that the token can go in a
 * header when reads need it), and sends the actions.
 *
 * Safety rules kept everywhere below:
 * - every text from the server goes into the page with textContent (el() and text
 *   nodes), never innerHTML: a job id or an SMTP reply cannot become markup;
 * - the token lives in this tab's sessionStorage and travels only as an
 *   Authorization header, never in a URL;
 * - an action is a POST with a JSON body and the header X-Mailroom-Action: 1, which
 *   the server demands (a cross-site form cannot send it).
 */
'use strict';

(function () {
  const TOKEN_KEY = 'mailroom-token';
  const FEED_MAX = 100;
  const state = {
    token: sessionStorage.getItem(TOKEN_KEY) || '',
    actions: false,
    queues: [],
    historyMinutes: 180,
    view: 'overview',
  };
  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------------ helpers

  // An element with attributes (data-* and others via setAttribute, "class" as
  // className) and children: strings become text nodes, never markup.
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
    }
    return e;
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  // Loads of one list may overlap (a timer, an event, the operator's choice): each
  // takes a number, and only the answer of the newest is shown, so a late answer for
  // an older choice never replaces a newer one.
  const loads = {};
  const startLoad = (name) => (loads[name] = (loads[name] || 0) + 1);
  const isLatest = (name, n) => loads[name] === n;

  function age(ms) {
    if (ms < 0) return '—';
    if (ms < 1000) return ms + ' ms';
    const s = ms / 1000;
    if (s < 120) return s.toFixed(s < 10 ? 1 : 0) + ' s';
    if (s < 7200) return Math.round(s / 60) + ' min';
    if (s < 172800) return Math.round(s / 3600) + ' h';
    return Math.round(s / 86400) + ' d';
  }

  function clock(iso) {
    const d = iso ? new Date(iso) : null;
    return d && !isNaN(d) ? d.toLocaleTimeString() : (iso || '');
  }

  function jobHref(queue, id) {
    return '#/job/' + encodeURIComponent(queue) + '/' + encodeURIComponent(id);
  }

  function notice(text, kind) {
    const n = $('notice');
    n.textContent = text || '';
    n.hidden = !text;
    n.dataset.kind = kind || 'info';
  }

  function authHeaders() {
    return state.token ? { Authorization: 'Bearer ' + state.token } : {};
  }

  // GET a JSON endpoint: { status, body } (body null when it was not JSON).
  async function api(path) {
    const resp = await fetch(path, { headers: authHeaders(), cache: 'no-store' });
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    if (resp.status === 401) showTokenForm('Reading needs the token.');
    return { status: resp.status, body };
  }

  // POST an action. Returns the reply's body, or null after showing why it failed.
  async function act(path, body) {
    if (!state.token) {
      showTokenForm('Actions need the token.');
      return null;
    }
    const resp = await fetch(path, {
      method: 'POST',
      cache: 'no-store',
      headers: Object.assign({ 'Content-Type': 'application/json', 'X-Mailroom-Action': '1' },
        authHeaders()),
      body: JSON.stringify(body),
    });
    let reply = null;
    try { reply = await resp.json(); } catch (e) { reply = null; }
    if (resp.status === 401) showTokenForm('The token was refused.');
    if (!resp.ok) {
      notice((reply && reply.error) || ('HTTP ' + resp.status), 'error');
      return null;
    }
    return reply || {};
  }

  // ------------------------------------------------------------------ the token

  function showTokenForm(why) {
    $('token-form').hidden = false;
    if (why) notice(why, 'info');
    $('token-input').focus();
  }

  function setupToken() {
    $('unlock').addEventListener('click', () => showTokenForm(''));
    $('token-form').addEventListener('submit', (e) => {
      e.preventDefault();
      state.token = $('token-input').value.trim();
      $('token-input').value = '';
      if (state.token) sessionStorage.setItem(TOKEN_KEY, state.token);
      $('token-form').hidden = true;
      notice('');
      refreshAll();
    });
    $('token-forget').addEventListener('click', () => {
      state.token = '';
      sessionStorage.removeItem(TOKEN_KEY);
      $('token-form').hidden = true;
      updateButtons();
    });
  }

  function updateButtons() {
    $('unlock').textContent = state.token ? 'Token set' : 'Unlock actions';
    $('unlock').hidden = !state.actions;
    for (const b of document.querySelectorAll('button.action')) b.disabled = !state.actions;
  }

  // ------------------------------------------------------------------ overview

  function figure(name, value) {
    const dd = el('dd', { 'data-k': name }, String(value));
    if (name === 'dead' && value > 0) dd.classList.add('nonzero');
    return el('div', {}, el('dt', {}, name), dd);
  }

  function queueCard(q) {
    const card = el('article', { class: 'card', 'data-q': q.name });
    const head = el('header', {}, el('span', { class: 'name' }, q.name));
    card.appendChild(head);
    if (!q.ok) {
      head.appendChild(el('span', { class: 'badge error' }, 'Redis'));
      card.appendChild(el('p', { class: 'sub' }, q.error));
      return card;
    }
    const s = q.stats;
    if (s.paused) head.appendChild(el('span', { class: 'badge paused', 'data-k': 'paused', title: 'since ' + s.paused_at }, 'paused'));
    const toggle = el('button', { class: 'action', type: 'button', 'data-act': s.paused ? 'resume' : 'pause' },
      s.paused ? 'Resume' : 'Pause');
    toggle.disabled = !state.actions;
    toggle.addEventListener('click', async () => {
      const verb = s.paused ? 'resume' : 'pause';
      if (verb === 'pause' && !confirm(`Pause ${q.name}? Consumers take nothing from it until it is resumed.`)) return;
      toggle.disabled = true;
      const r = await act('api/' + verb, { queue: q.name });
      if (r) notice(`${q.name} ${r.paused ? 'paused' : 'resumed'}`, 'info');
      refreshSoon();
    });
    head.appendChild(toggle);
    card.appendChild(el('dl', { class: 'figures' }, figure('pending', s.pending),
      figure('scheduled', s.scheduled), figure('processing', s.processing), figure('dead', s.dead)));
    card.appendChild(el('p', { class: 'sub' }, 'latency (oldest pending) ',
      el('strong', { 'data-k': 'latency' }, s.pending ? age(s.oldest_pending_age_ms) : '—')));
    const alive = (q.consumers || []).filter((c) => c.state === 'alive').length;
    const total = (k) => el('span', { 'data-k': k + '-total' }, String(s.counters[k] || 0));
    card.appendChild(el('p', { class: 'sub' },
      `${s.sent_per_min.toFixed(1)} sent/min, ${s.failed_per_min.toFixed(1)} failed/min · ` +
      `${alive} consumer${alive === 1 ? '' : 's'} alive · `,
      total('sent'), ' sent, ', total('failed'), ' failed, ', total('rejected'), ' rejected, ',
      total('cancelled'), ' cancelled in all'));
    return card;
  }

  function consumerRows(ov) {
    const rows = [];
    for (const q of ov.queues) {
      for (const c of q.consumers || []) {
        rows.push(el('tr', { 'data-consumer': c.id },
          el('td', {}, q.name), el('td', { class: 'mono' }, c.id),
          el('td', { class: 'state-' + c.state }, c.state),
          el('td', { class: 'num' }, c.heartbeat_age_ms < 0 ? '—' : age(c.heartbeat_age_ms) + ' ago'),
          el('td', { class: 'num' }, String(c.processing)),
          el('td', { class: 'num', 'data-k': 'sessions' }, c.has_info ? String(c.sessions) : '—'),
          el('td', {}, c.has_info ? `${c.host} (pid ${c.pid})` : ''),
          el('td', { class: 'mono' }, c.queues), el('td', {}, c.version)));
      }
    }
    if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 9, class: 'hint' }, 'no consumer')));
    return rows;
  }

  function rate(v) {
    return v > 0 ? (v >= 10 ? v.toFixed(0) : v.toFixed(1)) + '/s' : 'no limit';
  }

  function relayRows(ov) {
    if (!Array.isArray(ov.relays)) {
      return [el('tr', {}, el('td', { colspan: 8, class: 'hint' }, (ov.relays && ov.relays.error) || 'unknown'))];
    }
    const rows = ov.relays.map((x) => el('tr', { 'data-relay': x.name },
      el('td', { class: 'mono' }, x.name),
      el('td', { class: 'state-' + x.circuit, 'data-k': 'circuit' }, x.circuit),
      el('td', { class: 'num' }, String(x.failures)),
      el('td', { class: 'num', 'data-k': 'rate' }, x.rate_max > 0 ? `${rate(x.rate)} / ${rate(x.rate_max)}` : 'no limit'),
      el('td', { class: 'num', 'data-k': 'sessions' }, String(x.sessions)),
      el('td', { class: 'num' }, x.throttles ? `${x.throttles}×, last ${age(Date.now() - x.throttled_at_ms)} ago` : '—'),
      el('td', {}, x.last_used_ms ? age(Date.now() - x.last_used_ms) + ' ago' : '—'),
      el('td', { class: 'wrap' }, x.last_error)));
    if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 8, class: 'hint' }, 'no relay used in the last day')));
    return rows;
  }

  function webhookRows(ov) {
    const rows = ov.queues.filter((q) => q.webhook && q.webhook.present).map((q) => {
      const w = q.webhook;
      return el('tr', { 'data-q': q.name },
        el('td', {}, q.name), el('td', { class: 'mono' }, w.url),
        el('td', { class: 'num', 'data-k': 'delivered' }, String(w.delivered)),
        el('td', { class: 'num', 'data-k': 'failed' }, String(w.failed)),
        el('td', { class: 'num', 'data-k': 'lag' }, String(w.lag)),
        el('td', { class: 'num' }, w.last_status ? String(w.last_status) : '—'),
        el('td', {}, clock(w.last_at)), el('td', { class: 'wrap' }, w.last_error));
    });
    if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 8, class: 'hint' }, 'no mailroom-webhook has reported for these queues')));
    return rows;
  }

  function fillQueueSelect(select, names) {
    const keep = select.value;
    select.replaceChildren(...names.map((n) => el('option', { value: n }, n)));
    if (names.includes(keep)) select.value = keep;
  }

  async function loadOverview() {
    const n = startLoad('overview');
    const r = await api('api/overview');
    if (!isLatest('overview', n) || r.status !== 200 || !r.body) return;
    const ov = r.body;
    state.actions = ov.actions;
    state.historyMinutes = ov.history_minutes;
    state.queues = ov.queues.map((q) => q.name);
    $('queues').replaceChildren(...ov.queues.map(queueCard));
    $('consumers').tBodies[0].replaceChildren(...consumerRows(ov));
    $('webhook').tBodies[0].replaceChildren(...webhookRows(ov));
    $('relays').tBodies[0].replaceChildren(...relayRows(ov));
    fillQueueSelect($('dead-queue'), state.queues);
    fillQueueSelect($('jobs-queue'), state.queues);
    updateButtons();
  }

  // ------------------------------------------------------------------ charts

  async function loadHistory() {
    const boxes = [];
    for (const name of state.queues) {
      const r = await api('api/history?queue=' + encodeURIComponent(name));
      if (r.status !== 200 || !r.body) continue;
      const box = el('figure', { class: 'chart', 'data-q': name });
      const svgBox = el('div');
      const totals = window.mailroomCharts.draw(svgBox, r.body);
      box.appendChild(el('figcaption', { class: 'legend' }, el('strong', {}, name),
        el('span', { class: 'sent', 'data-k': 'sent' }, `sent ${totals.sent}`),
        el('span', { class: 'failed', 'data-k': 'failed' }, `failed ${totals.failed}`),
        el('span', {}, `last ${Math.round(r.body.sent.length / 60 * 10) / 10} h`)));
      box.appendChild(svgBox);
      boxes.push(box);
    }
    $('charts').replaceChildren(...boxes);
  }

  // ------------------------------------------------------------------ dead letters

  function deadRow(queue, d) {
    const retry = el('button', { class: 'action', type: 'button', 'data-act': 'retry' }, 'Retry');
    retry.disabled = !state.actions || !d.id;
    retry.addEventListener('click', async () => {
      retry.disabled = true;
      const r = await act('api/dead/retry', { queue, id: d.id });
      if (r) notice(`${r.count} job${r.count === 1 ? '' : 's'} back in ${queue}`, 'info');
      refreshSoon();
    });
    return el('tr', { 'data-id': d.id },
      el('td', {}, clock(d.at)),
      el('td', { class: 'mono' }, d.id ? el('a', { href: jobHref(queue, d.id) }, d.id) : '(no id)'),
      el('td', { class: 'wrap' }, (d.to || []).join(', ')),
      el('td', { class: 'state-' + d.state }, d.state),
      el('td', { class: 'reason' }, d.reason),
      el('td', {}, retry));
  }

  async function loadDead() {
    const queue = $('dead-queue').value || state.queues[0];
    if (!queue) return;
    const n = startLoad('dead');
    const r = await api('api/dead?queue=' + encodeURIComponent(queue));
    if (!isLatest('dead', n) || r.status !== 200 || !r.body) return;
    const rows = r.body.items.map((d) => deadRow(queue, d));
    if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 6, class: 'hint' }, 'none')));
    $('dead').tBodies[0].replaceChildren(...rows);
  }

  function setupDeadButtons() {
    $('dead-queue').addEventListener('change', loadDead);
    $('dead-retry-all').addEventListener('click', async () => {
      const queue = $('dead-queue').value;
      if (!confirm(`Put every dead letter of ${queue} back in the queue?`)) return;
      const r = await act('api/dead/retry', { queue, all: true });
      if (r) notice(`${r.count} jobs back in ${queue}`, 'info');
      refreshSoon();
    });
    $('dead-purge-all').addEventListener('click', async () => {
      const queue = $('dead-queue').value;
      if (!confirm(`Delete every dead letter of ${queue}? This cannot be undone.`)) return;
      const r = await act('api/dead/purge', { queue, all: true });
      if (r) notice(`${r.count} dead letters deleted from ${queue}`, 'info');
      refreshSoon();
    });
  }

  // ------------------------------------------------------------------ waiting jobs

  // A button that runs an action on one job, then reloads.
  function jobButton(label, verb, queue, id, cls) {
    const b = el('button', { class: 'action' + (cls ? ' ' + cls : ''), type: 'button', 'data-act': verb }, label);
    b.disabled = !state.actions;
    b.addEventListener('click', async () => {
      if (verb === 'cancel' && !confirm(`Cancel ${id}? It will never be sent.`)) return;
      b.disabled = true;
      const r = await act('api/' + verb, { queue, id });
      if (r) notice(`${id}: ${r.state || 'done'}`, 'info');
      refreshSoon();
      if (state.view === 'job') route();
    });
    return b;
  }

  function jobRow(queue, kind, j) {
    const actions = el('td', {});
    if (j.id && (j.state === 'queued' || j.state === 'retrying')) actions.appendChild(jobButton('Cancel', 'cancel', queue, j.id, 'danger'));
    if (j.id && kind !== 'pending') actions.appendChild(jobButton('Retry now', 'retry-now', queue, j.id));
    return el('tr', { 'data-id': j.id },
      el('td', { class: 'mono' }, j.id ? el('a', { href: jobHref(queue, j.id) }, j.id) : '(unreadable)'),
      el('td', { class: 'wrap' }, j.to.join(', ')), el('td', { class: 'wrap' }, j.subject),
      el('td', { class: 'state-' + j.state }, j.state), el('td', { class: 'num' }, String(j.attempts)),
      el('td', {}, j.due_ms ? new Date(j.due_ms).toLocaleTimeString() : '—'),
      el('td', { class: 'wrap' }, j.error), actions);
  }

  // more: the operator asked for further pages, which a refresh would throw away: the
  // list then stays as it is until the queue or the kind changes.
  const jobsPage = { cursor: '', more: false };
  async function loadJobs(more) {
    const queue = $('jobs-queue').value || state.queues[0];
    const kind = $('jobs-kind').value;
    if (!queue) return;
    const cursor = more ? jobsPage.cursor : '';
    jobsPage.more = more;
    const n = startLoad('jobs');
    const r = await api(`api/jobs?queue=${encodeURIComponent(queue)}&kind=${kind}&limit=50` +
      (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''));
    if (!isLatest('jobs', n) || r.status !== 200 || !r.body) return;
    const rows = r.body.items.map((j) => jobRow(queue, kind, j));
    const body = $('jobs').tBodies[0];
    if (more) body.append(...rows);
    else body.replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 8, class: 'hint' }, 'none'))]));
    jobsPage.cursor = r.body.next_cursor;
    $('jobs-more').hidden = !r.body.next_cursor;
    $('jobs-total').textContent = `${r.body.total} in ${kind === 'pending' ? 'pending' : 'scheduled'}`;
  }

  function refreshJobs() {
    if (!jobsPage.more) loadJobs(false);
  }

  // ------------------------------------------------------------------ suppression list

  function suppressedRow(x) {
    const remove = el('button', { class: 'action', type: 'button', 'data-act': 'unsuppress' }, 'Remove');
    remove.disabled = !state.actions;
    remove.addEventListener('click', async () => {
      remove.disabled = true;
      const r = await act('api/suppress/remove', { address: x.address });
      if (r) notice(`${x.address} may be sent to again`, 'info');
      loadSuppressed(false);
    });
    return el('tr', { 'data-address': x.address },
      el('td', { class: 'mono' }, x.address), el('td', { class: 'wrap' }, x.reason),
      el('td', { class: 'num' }, x.code ? String(x.code) : ''), el('td', {}, x.at),
      el('td', {}, x.expires_ms ? new Date(x.expires_ms).toLocaleDateString() : ''),
      el('td', {}, x.source + (x.id ? ` (${x.queue} ${x.id})` : '')), el('td', {}, remove));
  }

  const suppressedPage = { cursor: '' };
  async function loadSuppressed(more) {
    const cursor = more ? suppressedPage.cursor : '';
    const n = startLoad('suppressed');
    const r = await api('api/suppressed' + (cursor ? '?cursor=' + encodeURIComponent(cursor) : ''));
    if (!isLatest('suppressed', n) || r.status !== 200 || !r.body) return;
    const rows = r.body.items.map(suppressedRow);
    const body = $('suppressed').tBodies[0];
    if (more) body.append(...rows);
    else body.replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 7, class: 'hint' }, 'none'))]));
    suppressedPage.cursor = r.body.next_cursor;
    $('suppressed-more').hidden = !r.body.next_cursor;
    $('suppressed-total').textContent = `(${r.body.total})`;
  }

  function setupLists() {
    $('jobs-queue').addEventListener('change', () => loadJobs(false));
    $('jobs-kind').addEventListener('change', () => loadJobs(false));
    $('jobs-more').addEventListener('click', () => loadJobs(true));
    $('suppressed-more').addEventListener('click', () => loadSuppressed(true));
    $('suppress-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      const body = { address: $('suppress-address').value.trim(), reason: $('suppress-reason').value.trim() };
      if ($('suppress-for').value.trim()) body.for = $('suppress-for').value.trim();
      const r = await act('api/suppress/add', body);
      if (r) {
        notice(`${r.address} suppressed`, 'info');
        $('suppress-form').reset();
        loadSuppressed(false);
      }
    });
  }

  // ------------------------------------------------------------------ events

  // One event as a list item: time, state, queue, job id (a link), and its detail.
  function eventItem(queue, ev) {
    if (typeof ev !== 'object' || ev === null) {
      return el('li', {}, el('span', { class: 'detail' }, String(ev)));
    }
    const detail = ev.error || ev.smtp_reply || '';
    return el('li', { 'data-state': ev.state, 'data-id': ev.id || '' },
      el('span', { class: 'when' }, clock(ev.at)),
      el('span', { class: 'st state-' + ev.state }, ev.state || '?'),
      el('span', {}, queue + ' '),
      ev.id ? el('a', { class: 'mono', href: jobHref(queue, ev.id) }, ev.id) : el('span', {}, '(no id)'),
      detail ? el('span', { class: 'detail' }, detail) : null);
  }

  function addFeedItem(msg) {
    const list = $('feed');
    list.insertBefore(eventItem(msg.queue, msg.event), list.firstChild);
    while (list.children.length > FEED_MAX) list.removeChild(list.lastChild);
  }

  function setLive(s, title) {
    const p = $('live');
    p.dataset.state = s;
    p.textContent = s === 'live' ? 'live' : s === 'down' ? 'offline' : 'connecting';
    p.title = title || 'live feed';
  }

  // One server-sent-events block: its event name, id and data lines.
  function handleBlock(block, cursor) {
    let name = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') name = value;
      else if (field === 'data') data.push(value);
      else if (field === 'id') cursor.last = value;
    }
    if (name === 'reset') { refreshSoon(); return; }
    if (name !== 'message' || !data.length) return;
    let msg;
    try { msg = JSON.parse(data.join('\n')); } catch (e) { return; }
    if (msg.type === 'event') {
      addFeedItem(msg);
      refreshSoon();
    } else if (msg.type === 'feed') {
      setLive(msg.state === 'up' ? 'live' : 'down', `queue ${msg.queue}: feed ${msg.state}`);
    }
  }

  // Reads one stream until it ends; blocks are separated by a blank line.
  async function readStream(resp, cursor) {
    const reader = resp.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        handleBlock(buf.slice(0, i), cursor);
        buf = buf.slice(i + 2);
      }
    }
  }

  // The live feed, for ever: reconnects after 2 s, resuming after the last id seen.
  async function feedLoop() {
    const cursor = { last: null };
    for (;;) {
      try {
        const headers = authHeaders();
        if (cursor.last) headers['Last-Event-ID'] = cursor.last;
        const resp = await fetch('events', { headers, cache: 'no-store' });
        if (resp.ok && resp.body) {
          setLive('live');
          await readStream(resp, cursor);
        } else if (resp.status === 401) {
          showTokenForm('The live feed needs the token.');
        }
      } catch (e) {
        /* the server went away: try again below */
      }
      setLive('down', 'reconnecting');
      await sleep(2000);
    }
  }

  // ------------------------------------------------------------------ job page, search

  // Each view shown counts here: an answer that comes back after the operator moved
  // on to another job or search is dropped, not shown over the newer one.
  let shown = 0;

  function recordRows(rec, extra) {
    const dl = [];
    const add = (k, v) => { if (v !== undefined && v !== '') dl.push(el('dt', {}, k), el('dd', { 'data-k': k }, String(v))); };
    add('queue', extra.queue);
    add('state', rec.state);
    add('attempts', rec.attempts);
    add('created', rec.created_at);
    add('updated', rec.updated_at);
    add('consumer', rec.consumer);
    add('SMTP reply', rec.smtp_reply);
    add('relay id', extra.relay_id);
    add('error', rec.error);
    return dl;
  }

  async function showJob(queue, id) {
    const mine = ++shown;
    $('job-id').textContent = id;
    const r = await api('api/job?queue=' + encodeURIComponent(queue) + '&id=' + encodeURIComponent(id));
    if (mine !== shown) return;
    if (r.status !== 200 || !r.body) {
      $('job-record').replaceChildren(el('dt', {}, 'error'), el('dd', {}, (r.body && r.body.error) || ('HTTP ' + r.status)));
      $('job-recipients').tBodies[0].replaceChildren();
      $('job-events').replaceChildren();
      return;
    }
    const j = r.body;
    $('job-record').replaceChildren(...recordRows(j.record, j));
    const cancel = jobButton('Cancel', 'cancel', j.queue, j.record.id, 'danger');
    cancel.id = 'job-cancel';
    cancel.disabled = !state.actions || !['queued', 'retrying'].includes(j.record.state);
    const retry = jobButton('Retry now', 'retry-now', j.queue, j.record.id);
    retry.id = 'job-retry-now';
    retry.disabled = !state.actions || !['queued', 'retrying'].includes(j.record.state);
    $('job-cancel').replaceWith(cancel);
    $('job-retry-now').replaceWith(retry);
    $('job-recipients').tBodies[0].replaceChildren(...j.recipients.map((x) => el('tr', {},
      el('td', { class: 'mono' }, x.address), el('td', { class: 'state-' + x.state }, x.state),
      el('td', { class: 'num' }, x.code ? String(x.code) : ''), el('td', { class: 'wrap' }, x.reply))));
    $('job-events').replaceChildren(...j.events.map((e) => eventItem(e.queue, e.event)));
    $('job-events-note').textContent = j.events_complete ? '' :
      'The search of the events stream stopped at its budget: older or later events may exist.';
  }

  async function showSearch(q) {
    const mine = ++shown;
    $('search-title').textContent = q;
    for (const id of ['search-jobs', 'search-waiting', 'search-outcomes', 'search-dead']) $(id).replaceChildren();
    $('search-suppressed').textContent = '';
    const r = await api('api/search?q=' + encodeURIComponent(q));
    if (mine !== shown) return;
    const b = r.body || {};
    if (r.status !== 200) {
      notice(b.error || ('HTTP ' + r.status), 'error');
      return;
    }
    $('search-jobs').replaceChildren(...b.jobs.map((h) => el('li', {},
      el('a', { class: 'mono', href: jobHref(h.queue, h.record.id) }, h.record.id),
      ` ${h.queue}: ${h.record.state}, ${h.record.updated_at}`)));
    $('search-waiting').replaceChildren(...b.waiting.map((j) => el('li', { 'data-id': j.id },
      j.id ? el('a', { class: 'mono', href: jobHref(j.queue, j.id) }, j.id) : '(unreadable)',
      ` ${j.queue}: ${j.state}, to ${j.to.join(', ')}`)));
    $('search-suppressed').textContent = b.suppressed ?
      `${b.suppressed.address} is suppressed: ${b.suppressed.reason} (since ${b.suppressed.at})` : 'no';
    $('search-outcomes').replaceChildren(...b.outcomes.map((e) => eventItem(e.queue, e.event)));
    $('search-dead').replaceChildren(...b.dead.map((d) => el('li', {},
      d.id ? el('a', { class: 'mono', href: jobHref(d.queue, d.id) }, d.id) : '(no id)',
      ` ${d.queue}: ${d.state}, ${d.reason}`)));
    if (!b.jobs.length && !b.waiting.length && !b.outcomes.length && !b.dead.length && !b.suppressed) notice('nothing found', 'info');
  }

  // ------------------------------------------------------------------ views, refresh

  function route() {
    const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
    const view = parts[0] === 'job' && parts.length >= 3 ? 'job' : parts[0] === 'search' && parts[1] ? 'search' : 'overview';
    state.view = view;
    $('overview-view').hidden = view !== 'overview';
    $('job-view').hidden = view !== 'job';
    $('search-view').hidden = view !== 'search';
    notice('');
    if (view === 'job') showJob(parts[1], parts.slice(2).join('/'));
    else if (view === 'search') showSearch(parts.slice(1).join('/'));
    else refreshAll();
  }

  let refreshTimer = null;
  // Reloads the figures shortly (events come in bursts: one reload per burst).
  function refreshSoon() {
    if (refreshTimer) return;
    refreshTimer = setTimeout(() => {
      refreshTimer = null;
      if (state.view === 'overview') { loadOverview(); loadDead(); refreshJobs(); }
    }, 300);
  }

  async function refreshAll() {
    await loadOverview();
    await Promise.all([loadHistory(), loadDead(), loadJobs(false), loadSuppressed(false)]);
  }

  function start() {
    setupToken();
    setupDeadButtons();
    setupLists();
    $('search').addEventListener('submit', (e) => {
      e.preventDefault();
      const q = $('search-q').value.trim();
      if (q) location.hash = '#/search/' + encodeURIComponent(q);
    });
    window.addEventListener('hashchange', route);
    route();
    feedLoop();
    setInterval(() => { if (state.view === 'overview') { loadOverview(); loadDead(); refreshJobs(); } }, 5000);
    setInterval(() => { if (state.view === 'overview') { loadHistory(); loadSuppressed(false); } }, 30000);
  }

  start();
})();
