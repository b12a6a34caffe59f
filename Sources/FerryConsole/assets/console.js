// Ferry console: a single-page operator console for Ferry's API (same origin).
// No framework, no network access beyond the server, every value shown as text.
'use strict';

(() => {
  const STATES = ['receiving', 'queued', 'pushing', 'retrying', 'delivered', 'failed'];
  const TOKEN_KEY = 'ferry.token';
  const FORM_KEY = 'ferry.upload.form';
  const TUS_KEY_PREFIX = 'ferry.tus::';
  const CHUNK_SIZE = 4 * 1024 * 1024;
  const PAGE_SIZE = 50;
  const PARALLEL_UPLOADS = 3;
  // An instance, or REMOTE:INSTANCE on a server started with --remote (the server judges
  // which remotes it allows).
  const INSTANCE_NAME = /^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,62}:)?(?!-)(?!\d+$)[A-Za-z0-9-]{1,63}(?<!-)$/;
  // Where the API is: '' at /ui/, '/nodes/ID' at /nodes/ID/ui/ (one node of a fleet
  // behind deploy/nginx/ferry-nodes.conf, which strips that prefix).
  const BASE = location.pathname.replace(/\/ui\/.*$/, '').replace(/\/ui$/, '');

  // ---------------------------------------------------------------- DOM helpers

  /** An element with attributes, listeners (onclick…) and children (strings become text). */
  function h(tag, props, ...children) {
    const node = document.createElement(tag);
    setProps(node, props);
    append(node, children);
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) node.setAttribute(key, String(value));
    }
    append(node, children);
    return node;
  }

  function setProps(node, props) {
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'dataset') for (const [k, v] of Object.entries(value)) node.dataset[k] = String(v);
      else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
      else if (key === 'value') node.value = value;
      else if (value === true) node.setAttribute(key, '');
      else node.setAttribute(key, String(value));
    }
  }

  function append(node, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  const $ = (selector, root = document) => root.querySelector(selector);
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // ---------------------------------------------------------------- formatting

  function formatBytes(n) {
    if (n === null || n === undefined || Number.isNaN(Number(n))) return '—';
    n = Number(n);
    if (n < 1024) return `${n} B`;
    const units = ['KiB', 'MiB', 'GiB', 'TiB'];
    let value = n / 1024;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return `${value >= 100 ? value.toFixed(0) : value.toFixed(1)} ${units[unit]}`;
  }

  function parseTime(iso) {
    const t = Date.parse(iso);
    return Number.isNaN(t) ? null : t;
  }

  function ago(iso) {
    const t = parseTime(iso);
    if (t === null) return '—';
    const s = Math.max(0, Math.round((Date.now() - t) / 1000));
    if (s < 5) return 'just now';
    if (s < 60) return `${s}s ago`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m}m ago`;
    const hours = Math.floor(m / 60);
    if (hours < 48) return `${hours}h ${m % 60}m ago`;
    return `${Math.floor(hours / 24)}d ago`;
  }

  function localTime(iso) {
    const t = parseTime(iso);
    return t === null ? String(iso ?? '—') : new Date(t).toLocaleString();
  }

  function hhmm(t) {
    const d = new Date(t);
    return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
  }

  // An id is NODE-HEX32 (HEX32 alone from versions before node ids): keep the node,
  // shorten the random part.
  function shortId(id) {
    if (!id) return '';
    const dash = id.lastIndexOf('-');
    const node = dash >= 0 ? id.slice(0, dash + 1) : '';
    const random = id.slice(dash + 1);
    return random.length > 10 ? `${node}${random.slice(0, 8)}…` : id;
  }

  function badge(state) {
    return h('span', { class: 'badge', dataset: { state } }, state);
  }

  function timeCell(iso) {
    return h('time', { datetime: iso || '', title: localTime(iso) }, ago(iso));
  }

  // ---------------------------------------------------------------- toasts and confirmation

  function toast(message, kind) {
    const node = h('div', { class: `toast${kind === 'error' ? ' error' : ''}` }, message);
    $('#toasts').append(node);
    setTimeout(() => node.remove(), kind === 'error' ? 8000 : 4500);
  }

  /** The in-page confirmation: resolves true on confirm, false on cancel or Escape. */
  function confirmAction(title, text, confirmLabel = 'Confirm', danger = true) {
    const dialog = $('#confirm-dialog');
    $('#confirm-title').textContent = title;
    $('#confirm-text').textContent = text;
    const confirm = $('button[data-action="confirm"]', dialog);
    const cancel = $('button[data-action="cancel"]', dialog);
    confirm.textContent = confirmLabel;
    confirm.className = `btn ${danger ? 'btn-danger' : 'btn-primary'}`;
    return new Promise((resolve) => {
      const done = (answer) => {
        confirm.removeEventListener('click', yes);
        cancel.removeEventListener('click', no);
        dialog.removeEventListener('cancel', escape);
        if (dialog.open) dialog.close();
        resolve(answer);
      };
      const yes = () => done(true);
      const no = () => done(false);
      const escape = (event) => { event.preventDefault(); done(false); };
      confirm.addEventListener('click', yes);
      cancel.addEventListener('click', no);
      dialog.addEventListener('cancel', escape);
      dialog.showModal();
      cancel.focus();
    });
  }

  // ---------------------------------------------------------------- API and authentication

  class HttpError extends Error {
    constructor(status, code, detail, headers) {
      super(detail || code);
      this.status = status;
      this.code = code;
      this.detail = detail;
      this.headers = headers || null;
    }
  }

  const auth = {
    get token() { return sessionStorage.getItem(TOKEN_KEY) || ''; },
    set token(value) {
      if (value) sessionStorage.setItem(TOKEN_KEY, value);
      else sessionStorage.removeItem(TOKEN_KEY);
      $('#sign-out').hidden = !value;
    },
    headers(extra) {
      const headers = Object.assign({}, extra || {});
      const token = this.token;
      if (token) headers.Authorization = `Bearer ${token}`;
      return headers;
    },
  };

  async function readError(response) {
    let code = `http_${response.status}`;
    let detail = response.statusText || `HTTP ${response.status}`;
    try {
      const body = await response.json();
      if (body && typeof body.error === 'string') code = body.error;
      if (body && typeof body.detail === 'string') detail = body.detail;
    } catch (_) { /* not JSON */ }
    return new HttpError(response.status, code, detail, response.headers);
  }

  /** A JSON request to the API; 401 sends the user back to the token prompt. */
  async function api(method, path, options = {}) {
    let response;
    try {
      response = await fetch(BASE + path, {
        method, headers: auth.headers(options.headers), body: options.body, cache: 'no-store',
      });
    } catch (error) {
      throw new HttpError(0, 'network', `The server did not answer (${error.message})`);
    }
    if (response.status === 401) {
      unauthorized();
      throw await readError(response);
    }
    if (!response.ok) throw await readError(response);
    const text = await response.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (_) { data = null; }
    }
    return { status: response.status, data, headers: response.headers };
  }

  function showAuth(message) {
    $('#auth').hidden = false;
    $('#view').hidden = true;
    $('#nav').hidden = true;
    $('#live').hidden = true;
    const error = $('#auth-error');
    error.hidden = !message;
    error.textContent = message || '';
    const input = $('#token');
    input.value = '';
    input.focus();
  }

  let signedIn = false;

  function unauthorized() {
    const hadToken = Boolean(auth.token);
    auth.token = '';
    if (!signedIn && !$('#auth').hidden) {
      if (hadToken) showAuth('That token was not accepted.');
      return;
    }
    signedIn = false;
    events.stop();
    if (current && current.destroy) current.destroy();
    current = null;
    $('#view').replaceChildren();
    showAuth(hadToken ? 'The server no longer accepts this token: sign in again.' : '');
  }

  async function start() {
    try {
      const answer = await api('GET', '/stats');
      stats.set(answer.data);
    } catch (error) {
      // A 401 has shown the token prompt (unauthorized()).
      if (error.status === 401) return;
      // The server answered something else (or nothing): show the console anyway; each
      // page reports its own errors.
    }
    signedIn = true;
    $('#auth').hidden = true;
    $('#view').hidden = false;
    $('#nav').hidden = false;
    $('#live').hidden = false;
    $('#sign-out').hidden = !auth.token;
    events.start();
    render();
  }

  // ---------------------------------------------------------------- /events (SSE over fetch)

  /** Latest task event seen per id, so views created later know what already happened. */
  const lastTaskEvents = new Map();
  const listeners = new Set();

  function subscribe(fn) {
    listeners.add(fn);
    return () => listeners.delete(fn);
  }

  function publish(type, data) {
    for (const fn of Array.from(listeners)) {
      try { fn(type, data); } catch (error) { console.error('listener failed', error); }
    }
  }

  const STATE_RANK = { receiving: 0, queued: 1, pushing: 2, retrying: 3, delivered: 4, failed: 4, deleted: 5 };

  /** Whether an update (event or task) is at least as new as the known one: by time, and
   * for equal times (milliseconds) by the order of states, since events of one moment can
   * arrive in either order. */
  function newer(candidateTime, knownTime, candidateState, knownState) {
    const a = parseTime(candidateTime);
    const b = parseTime(knownTime);
    if (a === null || b === null || a !== b) return a === null || b === null || a > b;
    return (STATE_RANK[candidateState] ?? 0) >= (STATE_RANK[knownState] ?? 0);
  }

  const events = {
    generation: 0,
    controller: null,
    start() {
      this.stop();
      const generation = ++this.generation;
      const controller = new AbortController();
      this.controller = controller;
      this.loop(generation, controller);
    },
    stop() {
      this.generation += 1;
      if (this.controller) this.controller.abort();
      this.controller = null;
      setLive('offline');
    },
    async loop(generation, controller) {
      let delay = 1000;
      let connections = 0;
      while (generation === this.generation) {
        setLive('connecting');
        // One connection: ended by the generation's controller, or by the watchdog when
        // nothing (not even the 15 s keep-alive comment) arrived for 45 s.
        const connection = new AbortController();
        const forward = () => connection.abort();
        controller.signal.addEventListener('abort', forward);
        let heard = Date.now();
        const watchdog = setInterval(() => { if (Date.now() - heard > 45000) connection.abort(); }, 5000);
        try {
          const response = await fetch(`${BASE}/events`, {
            headers: auth.headers({ Accept: 'text/event-stream' }), signal: connection.signal, cache: 'no-store',
          });
          if (response.status === 401) { unauthorized(); return; }
          if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
          setLive('live');
          delay = 1000;
          // Views re-read what they show after a reconnection: events may have been missed.
          publish('connected', { reconnect: connections > 0 });
          connections += 1;
          await readEventStream(response.body, (type, data) => {
            if (generation === this.generation) dispatchEvent(type, data);
          }, () => { heard = Date.now(); });
        } catch (_) {
          if (controller.signal.aborted) return;
        } finally {
          clearInterval(watchdog);
          controller.signal.removeEventListener('abort', forward);
        }
        if (generation !== this.generation) return;
        setLive('offline');
        await sleep(delay);
        delay = Math.min(delay * 2, 30000);
      }
    },
  };

  function setLive(state) {
    const live = $('#live');
    live.dataset.live = state;
    $('#live-text').textContent = state === 'live' ? 'live' : state === 'connecting' ? 'connecting…' : 'offline';
  }

  function dispatchEvent(type, data) {
    let payload;
    try { payload = JSON.parse(data); } catch (_) { return; }
    if (type === 'task' && payload && typeof payload.id === 'string') {
      const known = lastTaskEvents.get(payload.id);
      if (!known || newer(payload.at, known.at, payload.state, known.state)) {
        lastTaskEvents.set(payload.id, payload);
        if (lastTaskEvents.size > 5000) lastTaskEvents.delete(lastTaskEvents.keys().next().value);
      }
      publish('task', payload);
    } else if (type === 'pause') {
      publish('pause', payload);
    }
  }

  /** Parses a text/event-stream body, calling dispatch(event, data) per event. */
  async function readEventStream(body, dispatch, heard = () => {}) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    let eventType = '';
    let data = [];
    const line = (text) => {
      if (text === '') {
        if (data.length) dispatch(eventType || 'message', data.join('\n'));
        eventType = '';
        data = [];
        return;
      }
      if (text.startsWith(':')) return;
      const colon = text.indexOf(':');
      const field = colon < 0 ? text : text.slice(0, colon);
      let value = colon < 0 ? '' : text.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') eventType = value;
      else if (field === 'data') data.push(value);
    };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      heard();
      buffer += decoder.decode(value, { stream: true });
      for (;;) {
        const match = /\r\n|\r|\n/.exec(buffer);
        if (!match) break;
        // A lone \r at the end may be the first half of \r\n: wait for the next piece.
        if (match[0] === '\r' && match.index === buffer.length - 1) break;
        line(buffer.slice(0, match.index));
        buffer = buffer.slice(match.index + match[0].length);
      }
    }
  }

  // ---------------------------------------------------------------- shared stats

  const stats = {
    value: null,
    set(value) {
      this.value = value;
      const failed = value && value.tasks ? Number(value.tasks.failed || 0) : 0;
      const count = $('#dead-count');
      count.hidden = !failed;
      count.textContent = String(failed);
    },
  };

  // ---------------------------------------------------------------- routing

  let current = null;

  function parseHash() {
    const raw = location.hash.replace(/^#/, '') || '/overview';
    const [path, query = ''] = raw.split('?');
    return { parts: path.split('/').filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(query) };
  }

  function render() {
    if (!signedIn) return;
    const { parts, query } = parseHash();
    if (current && current.destroy) current.destroy();
    current = null;
    const view = $('#view');
    view.replaceChildren();
    let tab = parts[0] || 'overview';
    if (tab === 'tasks' && parts[1]) current = taskDetailView(parts[1]);
    else if (tab === 'tasks') current = tasksView(query);
    else if (tab === 'dead') current = deadView(query);
    else if (tab === 'upload') current = uploadView();
    else { tab = 'overview'; current = overviewView(); }
    for (const link of document.querySelectorAll('#nav a')) {
      link.classList.toggle('active', link.dataset.tab === tab);
    }
    document.title = `Ferry · ${{ overview: 'Overview', tasks: 'Tasks', dead: 'Dead letters', upload: 'Upload' }[tab]}`;
    view.append(current.el);
  }

  function errorNotice(error) {
    return h('div', { class: 'notice error', role: 'alert' },
      h('strong', null, error.status ? `${error.status} ${error.code}` : 'No answer'),
      h('span', null, error.detail || error.message || String(error)));
  }

  function throttled(fn, interval) {
    let last = 0;
    let timer = null;
    const run = () => { timer = null; last = Date.now(); fn(); };
    const call = () => {
      if (timer) return;
      const wait = Math.max(0, last + interval - Date.now());
      timer = setTimeout(run, wait);
    };
    call.cancel = () => { if (timer) clearTimeout(timer); timer = null; };
    return call;
  }

  // ---------------------------------------------------------------- Overview

  function overviewView() {
    const errorSlot = h('div');
    const cards = h('div', { class: 'cards' });
    const chartSlot = h('div');
    const legend = h('div', { class: 'legend' });
    const checks = h('ul', { class: 'checks' });
    const readyBadge = h('span', { class: 'badge' }, '…');
    const pauseStatus = h('div', { class: 'pause-status' });
    const pauseBanner = h('div');
    const pausedList = h('ul', { class: 'paused-list' });
    const pauseInput = h('input', {
      id: 'pause-container', type: 'text', placeholder: 'container name', spellcheck: 'false', autocomplete: 'off',
    });
    const pauseAll = h('button', { type: 'button', class: 'btn', dataset: { action: 'pause-all' } }, 'Pause all deliveries');
    const resumeAll = h('button', { type: 'button', class: 'btn', dataset: { action: 'resume-all' } }, 'Resume all');
    const pauseOne = h('button', { type: 'submit', class: 'btn', dataset: { action: 'pause' } }, 'Pause');

    const pauseAction = async (path, message) => {
      try {
        const answer = await api('POST', path);
        if (answer.data) renderPaused(answer.data);
        toast(message);
        refresh();
      } catch (error) {
        if (error.status !== 401) toast(`${error.code}: ${error.detail}`, 'error');
      }
    };
    pauseAll.addEventListener('click', () => pauseAction('/deliveries/pause', 'All deliveries paused'));
    resumeAll.addEventListener('click', () => pauseAction('/deliveries/resume', 'All deliveries resumed'));
    const pauseForm = h('form', { class: 'inline-form' }, pauseInput, pauseOne);
    pauseForm.addEventListener('submit', (event) => {
      event.preventDefault();
      const name = pauseInput.value.trim();
      if (!INSTANCE_NAME.test(name)) {
        toast('Enter a container name (letters, digits and -)', 'error');
        pauseInput.focus();
        return;
      }
      pauseAction(`/deliveries/pause?container=${encodeURIComponent(name)}`, `Deliveries to ${name} paused`)
        .then(() => { pauseInput.value = ''; });
    });

    const el = h('div', null,
      h('div', { class: 'page-head' },
        h('div', null, h('h1', null, 'Overview'),
          h('p', { class: 'muted' }, 'Tasks by state, the last hour, readiness and delivery pauses.')),
        readyBadge),
      errorSlot,
      pauseBanner,
      cards,
      h('div', { class: 'grid-2 section' },
        h('div', { class: 'panel' }, h('div', { class: 'panel-body' },
          h('div', { class: 'section-head' }, h('h2', null, 'Last 60 minutes'),
            h('span', { class: 'muted' }, 'per minute')),
          chartSlot, legend)),
        h('div', { class: 'stack' },
          h('div', { class: 'panel', id: 'pauses' }, h('div', { class: 'panel-body' },
            h('div', { class: 'section-head' }, h('h2', null, 'Deliveries'),
              h('div', { class: 'btn-row' }, pauseAll, resumeAll)),
            pauseStatus,
            pauseForm,
            pausedList)),
          h('div', { class: 'panel' }, h('div', { class: 'panel-body' },
            h('div', { class: 'section-head' }, h('h2', null, 'Readiness')), checks)))));

    function card(label, value, options = {}) {
      const attrs = { class: `card ${options.class || ''}`.trim(), dataset: options.dataset || {} };
      if (options.href) attrs.href = options.href;
      return h(options.href ? 'a' : 'div', attrs,
        h('div', { class: 'card-label' }, label),
        h('div', { class: 'card-value' }, value),
        options.note ? h('div', { class: 'card-note' }, options.note) : null);
    }

    function renderPaused(paused) {
      const all = paused && (paused.all === true || (paused.all && typeof paused.all === 'object'));
      const containers = (paused && Array.isArray(paused.containers)) ? paused.containers : [];
      const allSince = paused && (paused.all_since || (paused.all && paused.all.since));
      pauseStatus.replaceChildren(
        all ? badge('paused') : containers.length
          ? h('span', { class: 'badge', dataset: { state: 'paused' } }, 'partly paused') : badge('running'),
        h('span', null, all
          ? `All deliveries are paused${allSince ? ` since ${localTime(allSince)}` : ''}: uploads are accepted and wait in the queue.`
          : containers.length
            ? `Deliveries run, except to ${containers.length} paused container${containers.length === 1 ? '' : 's'}.`
            : 'Deliveries run to every container.'));
      pauseBanner.replaceChildren(...(all || containers.length ? [h('div', { class: 'notice warn' },
        h('strong', null, all ? 'All deliveries are paused.' : 'Some deliveries are paused:'),
        h('span', null, all ? 'Uploads are accepted and wait in the queue until you resume.'
          : containers.map((entry) => (typeof entry === 'string' ? entry : entry.container)).join(', ')),
        h('button', { type: 'button', class: 'btn btn-sm', onclick: () => pauseInput.focus() }, 'Manage'))] : []));
      pauseAll.disabled = Boolean(all);
      pausedList.replaceChildren(...containers.map((entry) => {
        const name = typeof entry === 'string' ? entry : entry.container;
        const since = typeof entry === 'object' ? entry.since : null;
        const resume = h('button', { type: 'button', class: 'btn btn-sm', dataset: { action: 'resume', container: name } }, 'Resume');
        resume.addEventListener('click', () =>
          pauseAction(`/deliveries/resume?container=${encodeURIComponent(name)}`, `Deliveries to ${name} resumed`));
        return h('li', { dataset: { pausedContainer: name } },
          badge('paused'),
          h('span', { class: 'mono grow' }, name),
          since ? h('span', { class: 'muted' }, 'since ', timeCell(since)) : null,
          resume);
      }));
    }

    function show(data) {
      const tasks = (data && data.tasks) || {};
      cards.replaceChildren(
        ...STATES.map((state) => card(state, String(tasks[state] ?? 0), {
          href: `#/tasks?state=${state}`, dataset: { state },
          class: state === 'failed' && tasks[state] ? 'nonzero' : '',
        })),
        card('Queue depth', String(data.queue_depth ?? '—'), { class: 'metric', note: 'waiting for a worker' }),
        card('In flight', String(data.uploads_in_flight ?? '—'), { class: 'metric', note: 'uploads arriving' }));
      readyBadge.className = `badge ${data.ready ? 'ok' : 'bad'}`;
      readyBadge.textContent = data.ready ? 'Ready' : 'Not ready';
      const entries = Object.entries(data.checks || {});
      checks.replaceChildren(...(entries.length ? entries.map(([name, check]) => h('li', { dataset: { check: name } },
        h('span', { class: `badge ${check && check.ok ? 'ok' : 'bad'}` }, check && check.ok ? 'ok' : 'failing'),
        h('span', { class: 'check-name' }, name),
        h('span', { class: 'check-detail' }, (check && check.detail) || ''))) : [h('li', { class: 'muted' }, 'No checks reported.')]));
      renderChart(data.history);
      renderPaused(data.paused || { all: false, containers: [] });
    }

    function renderChart(history) {
      if (!history || !Array.isArray(history.received)) {
        chartSlot.replaceChildren(h('div', { class: 'empty' }, 'No history reported.'));
        legend.replaceChildren();
        return;
      }
      const series = ['received', 'delivered', 'failed'].map((name) => ({
        name, values: (history[name] || []).map((v) => Number(v) || 0),
      }));
      const n = Math.max(...series.map((s) => s.values.length), 2);
      const width = 720;
      const height = 220;
      const pad = { left: 40, right: 12, top: 12, bottom: 26 };
      const innerW = width - pad.left - pad.right;
      const innerH = height - pad.top - pad.bottom;
      const peak = Math.max(1, ...series[0].values, ...series[1].values.map((v, i) => v + (series[2].values[i] || 0)));
      const top = niceCeil(peak);
      const x = (i) => pad.left + (innerW * i) / (n - 1);
      const y = (v) => pad.top + innerH - (innerH * v) / top;
      const interval = (Number(history.interval_seconds) || 60) * 1000;
      const start = parseTime(history.start) ?? (Date.now() - (n - 1) * interval);

      const chart = svg('svg', { class: 'chart', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'Uploads received, delivered and failed per minute over the last hour' });
      for (let k = 0; k <= 4; k += 1) {
        const value = (top * k) / 4;
        const yy = y(value);
        chart.append(svg('line', { class: 'grid-line', x1: pad.left, x2: width - pad.right, y1: yy, y2: yy }));
        chart.append(svg('text', { class: 'axis-label', x: pad.left - 8, y: yy + 4, 'text-anchor': 'end' },
          Number.isInteger(value) ? String(value) : value.toFixed(1)));
      }
      for (const i of [0, Math.floor((n - 1) / 2), n - 1]) {
        chart.append(svg('text', {
          class: 'axis-label', x: x(i), y: height - 8,
          'text-anchor': i === 0 ? 'start' : i === n - 1 ? 'end' : 'middle',
        }, i === n - 1 ? 'now' : hhmm(start + i * interval)));
      }
      // Delivered and failed as stacked bars per minute, received as a line over them.
      const slot = innerW / (n - 1);
      const barWidth = Math.max(2, slot * 0.62);
      for (let i = 0; i < n; i += 1) {
        const delivered = series[1].values[i] || 0;
        const failed = series[2].values[i] || 0;
        const left = Math.min(Math.max(x(i) - barWidth / 2, pad.left), width - pad.right - barWidth);
        if (delivered) {
          chart.append(svg('rect', { class: 'bar-delivered', x: left, width: barWidth, y: y(delivered), height: y(0) - y(delivered), rx: 1 }));
        }
        if (failed) {
          chart.append(svg('rect', { class: 'bar-failed', x: left, width: barWidth, y: y(delivered + failed), height: y(delivered) - y(delivered + failed), rx: 1 }));
        }
      }
      const received = series[0].values;
      if (received.length) {
        const area = [`M${x(0)},${y(0)}`, ...received.map((v, i) => `L${x(i)},${y(v)}`), `L${x(received.length - 1)},${y(0)}`, 'Z'].join(' ');
        chart.append(svg('path', { class: 'area-received', d: area }));
        chart.append(svg('polyline', {
          class: 'series series-received',
          points: received.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' '),
        }));
        received.forEach((v, i) => {
          if (v) chart.append(svg('circle', { class: 'dot-received', cx: x(i), cy: y(v), r: 2.5 }));
        });
      }
      for (let i = 0; i < n; i += 1) {
        const rect = svg('rect', { class: 'hover-band', x: x(i) - slot / 2, y: pad.top, width: slot, height: innerH });
        rect.append(svg('title', null,
          `${hhmm(start + i * interval)}: received ${series[0].values[i] ?? 0}, delivered ${series[1].values[i] ?? 0}, failed ${series[2].values[i] ?? 0}`));
        chart.append(rect);
      }
      chartSlot.replaceChildren(chart);
      const sum = (values) => values.reduce((a, b) => a + b, 0);
      legend.replaceChildren(...series.map((s) => h('span', { class: 'legend-item' },
        h('span', { class: `swatch swatch-${s.name}` }), `${s.name} `, h('b', null, String(sum(s.values))))));
    }

    let alive = true;
    async function refresh() {
      try {
        const answer = await api('GET', '/stats');
        if (!alive) return;
        stats.set(answer.data);
        errorSlot.replaceChildren();
        show(answer.data || {});
      } catch (error) {
        if (!alive || error.status === 401) return;
        errorSlot.replaceChildren(errorNotice(error));
      }
    }
    const soon = throttled(refresh, 1000);
    const unsubscribe = subscribe((type) => {
      if (type === 'task' || type === 'pause' || type === 'connected') soon();
    });
    const poll = setInterval(refresh, 10000);
    if (stats.value) show(stats.value);
    refresh();
    return {
      el,
      destroy() { alive = false; unsubscribe(); soon.cancel(); clearInterval(poll); },
    };
  }

  function niceCeil(value) {
    if (value <= 4) return 4;
    const magnitude = 10 ** Math.floor(Math.log10(value));
    for (const step of [1, 2, 2.5, 5, 10]) {
      if (step * magnitude >= value) return step * magnitude;
    }
    return 10 * magnitude;
  }

  // ---------------------------------------------------------------- Tasks list

  function tasksView(query) {
    const filters = {
      state: query.get('state') || '',
      container: query.get('container') || '',
      path_prefix: query.get('path_prefix') || '',
      id_prefix: query.get('id_prefix') || '',
    };
    const stateSelect = h('select', { id: 'filter-state', name: 'state' },
      h('option', { value: '' }, 'All states'),
      STATES.map((state) => h('option', { value: state }, state)));
    stateSelect.value = filters.state;
    const containerInput = h('input', { id: 'filter-container', type: 'text', placeholder: 'any', value: filters.container, spellcheck: 'false' });
    const pathInput = h('input', { id: 'filter-path', type: 'text', placeholder: '/srv/app', value: filters.path_prefix, spellcheck: 'false' });
    const idInput = h('input', { id: 'filter-id', type: 'text', placeholder: 'id prefix', value: filters.id_prefix, spellcheck: 'false' });
    const form = h('form', { class: 'filters', id: 'task-filters' },
      h('div', { class: 'field' }, h('label', { for: 'filter-state' }, 'State'), stateSelect),
      h('div', { class: 'field' }, h('label', { for: 'filter-container' }, 'Container'), containerInput),
      h('div', { class: 'field wide' }, h('label', { for: 'filter-path' }, 'Destination prefix'), pathInput),
      h('div', { class: 'field' }, h('label', { for: 'filter-id' }, 'Task id'), idInput),
      h('div', { class: 'btn-row' },
        h('button', { type: 'submit', class: 'btn btn-primary', id: 'apply-filters' }, 'Apply'),
        h('a', { href: '#/tasks', class: 'btn' }, 'Clear')));
    const apply = () => {
      const params = new URLSearchParams();
      if (stateSelect.value) params.set('state', stateSelect.value);
      if (containerInput.value.trim()) params.set('container', containerInput.value.trim());
      if (pathInput.value) params.set('path_prefix', pathInput.value);
      if (idInput.value.trim()) params.set('id_prefix', idInput.value.trim().toLowerCase());
      const hash = `#/tasks${params.toString() ? `?${params}` : ''}`;
      if (location.hash === hash) load(null, []); else location.hash = hash;
    };
    form.addEventListener('submit', (event) => { event.preventDefault(); apply(); });
    stateSelect.addEventListener('change', apply);

    const notice = h('div');
    const tbody = h('tbody');
    const pagerInfo = h('span', { class: 'muted' });
    const prev = h('button', { type: 'button', class: 'btn', id: 'prev-page' }, '← Previous');
    const next = h('button', { type: 'button', class: 'btn', id: 'next-page', dataset: { action: 'next-page' } }, 'Next page →');
    const table = h('table', { id: 'tasks-table' },
      h('thead', null, h('tr', null,
        h('th', null, 'ID'), h('th', null, 'State'), h('th', null, 'Container'), h('th', null, 'Destination'),
        h('th', { class: 'num' }, 'Size'), h('th', { class: 'num' }, 'Attempts'), h('th', null, 'Age'),
        h('th', null, 'Last error'))),
      tbody);
    const el = h('div', null,
      h('div', { class: 'page-head' }, h('div', null, h('h1', null, 'Tasks'),
        h('p', { class: 'muted' }, 'Every upload, in acceptance order. Rows update live.'))),
      h('div', { class: 'panel' }, form),
      h('div', { class: 'section' }, notice,
        h('div', { class: 'panel' }, h('div', { class: 'table-wrap' }, table),
          h('div', { class: 'pager' }, pagerInfo, h('div', { class: 'btn-row' }, prev, next)))));

    const rows = new Map();
    let cursor = null;
    let history = [];
    let nextCursor = null;
    let changes = 0;
    let alive = true;

    function matches(event) {
      if (filters.state && event.state !== filters.state) return false;
      if (filters.container && event.container !== filters.container) return false;
      if (filters.path_prefix && !String(event.path || '').startsWith(filters.path_prefix)) return false;
      if (filters.id_prefix && !event.id.startsWith(filters.id_prefix)) return false;
      return true;
    }

    function row(task) {
      const cells = {
        state: h('td', { class: 'nowrap' }, badge(task.state)),
        attempts: h('td', { class: 'num' }, String(task.attempts ?? 0)),
        error: h('td', { class: 'error' }, task.last_error || ''),
        size: h('td', { class: 'num nowrap', title: `${task.bytes} bytes` }, formatBytes(task.bytes)),
      };
      const tr = h('tr', { class: 'clickable', dataset: { taskId: task.id, state: task.state } },
        h('td', { class: 'nowrap' }, h('a', { class: 'mono', href: `#/tasks/${encodeURIComponent(task.id)}`, title: task.id }, shortId(task.id))),
        cells.state,
        h('td', { class: 'mono' }, task.container),
        h('td', { class: 'path' }, task.path),
        cells.size,
        cells.attempts,
        h('td', { class: 'nowrap' }, timeCell(task.created_at)),
        cells.error);
      tr.addEventListener('click', (event) => {
        if (event.target.closest('a, button')) return;
        location.hash = `#/tasks/${encodeURIComponent(task.id)}`;
      });
      rows.set(task.id, { tr, cells, at: task.updated_at, state: task.state });
      return tr;
    }

    function update(event) {
      const entry = rows.get(event.id);
      if (!entry) {
        if (matches(event)) {
          changes += 1;
          showChanges();
        }
        return;
      }
      if (!newer(event.at, entry.at, event.state, entry.state)) return;
      entry.at = event.at;
      let changed = false;
      const set = (node, text) => {
        if (node.textContent !== text) { node.textContent = text; changed = true; }
      };
      if (entry.state !== event.state) {
        entry.state = event.state;
        entry.tr.dataset.state = event.state;
        entry.cells.state.replaceChildren(badge(event.state));
        changed = true;
      }
      if (event.attempts !== undefined && event.attempts !== null) set(entry.cells.attempts, String(event.attempts));
      if (event.state !== 'deleted') set(entry.cells.error, event.error || '');
      if (event.bytes !== undefined && event.bytes !== null) {
        set(entry.cells.size, formatBytes(event.bytes));
        entry.cells.size.title = `${event.bytes} bytes`;
      }
      if (!changed) return;
      entry.tr.classList.remove('flash');
      void entry.tr.offsetWidth;
      entry.tr.classList.add('flash');
    }

    function showChanges() {
      const refreshLink = h('button', { type: 'button', class: 'btn btn-sm' }, 'Refresh');
      refreshLink.addEventListener('click', () => load(cursor, history));
      notice.replaceChildren(h('div', { class: 'notice' },
        h('span', null, `${changes} new or changed task${changes === 1 ? '' : 's'} match these filters.`), refreshLink));
    }

    async function load(after, previous, quiet = false) {
      if (filters.id_prefix && !/^[a-z0-9-]{1,65}$/.test(filters.id_prefix)) {
        notice.replaceChildren(h('div', { class: 'notice warn' }, 'A task id search takes the start of an id: lowercase letters, digits and -.'));
        tbody.replaceChildren();
        return;
      }
      const params = new URLSearchParams();
      for (const [key, value] of Object.entries(filters)) if (value) params.set(key, value);
      params.set('limit', String(PAGE_SIZE));
      if (after) params.set('after', after);
      try {
        const answer = await api('GET', `/tasks?${params}`);
        if (!alive) return;
        cursor = after;
        history = previous;
        const tasks = (answer.data && answer.data.tasks) || [];
        nextCursor = (answer.data && answer.data.next) || null;
        next.disabled = !nextCursor;
        const sameRows = tasks.length === rows.size && tasks.every((task) => rows.has(task.id));
        if (quiet && sameRows) {
          // A refresh after the event stream (re)connected: the rows change in place.
          for (const task of tasks) {
            update({ id: task.id, state: task.state, attempts: task.attempts, error: task.last_error, bytes: task.bytes, at: task.updated_at });
          }
          return;
        }
        rows.clear();
        changes = 0;
        notice.replaceChildren();
        tbody.replaceChildren(...(tasks.length ? tasks.map(row)
          : [h('tr', null, h('td', { colspan: '8', class: 'empty' }, 'No tasks match these filters.'))]));
        // Events that arrived while the page was loading.
        for (const task of tasks) {
          const event = lastTaskEvents.get(task.id);
          if (event) update(event);
        }
        const page = history.length + 1;
        pagerInfo.textContent = tasks.length ? `Page ${page} · ${tasks.length} task${tasks.length === 1 ? '' : 's'}` : `Page ${page}`;
        prev.disabled = history.length === 0;
        next.disabled = !nextCursor;
      } catch (error) {
        if (!alive || error.status === 401) return;
        notice.replaceChildren(errorNotice(error));
      }
    }

    next.addEventListener('click', () => { if (nextCursor) load(nextCursor, [...history, cursor]); });
    prev.addEventListener('click', () => {
      if (!history.length) return;
      load(history[history.length - 1], history.slice(0, -1));
    });
    const unsubscribe = subscribe((type, data) => {
      if (type === 'task') update(data);
      else if (type === 'connected' && rows.size) load(cursor, history, true);
    });
    load(null, []);
    return { el, destroy() { alive = false; unsubscribe(); } };
  }

  // ---------------------------------------------------------------- Task detail

  function taskDetailView(id) {
    const body = h('div', null, h('div', { class: 'empty' }, 'Loading…'));
    const el = h('div', null,
      h('div', { class: 'crumbs' }, h('a', { href: '#/tasks' }, '← Tasks')),
      body);
    let alive = true;
    let task = null;
    let deleted = false;

    async function load() {
      try {
        const answer = await api('GET', `/tasks/${encodeURIComponent(id)}`);
        if (!alive) return;
        task = answer.data;
        show();
      } catch (error) {
        if (!alive || error.status === 401) return;
        if (error.status === 404) {
          body.replaceChildren(h('div', { class: 'notice warn', id: 'task-missing' },
            h('span', null, deleted ? 'This task was deleted.' : 'No such task: it was deleted, has expired, or is not yours.'),
            h('span', { class: 'mono' }, id)));
        } else {
          body.replaceChildren(errorNotice(error));
        }
      }
    }

    function show() {
      const actions = h('div', { class: 'btn-row' });
      if (task.state === 'failed') {
        const retry = h('button', { type: 'button', class: 'btn btn-primary', dataset: { action: 'retry', taskId: task.id } }, 'Retry');
        retry.addEventListener('click', async () => {
          retry.disabled = true;
          try {
            const answer = await api('POST', `/tasks/${encodeURIComponent(task.id)}/retry`);
            toast('Task queued again');
            if (answer.data && answer.data.id) { task = answer.data; show(); } else load();
          } catch (error) {
            retry.disabled = false;
            if (error.status !== 401) toast(`${error.code}: ${error.detail}`, 'error');
          }
        });
        actions.append(retry);
      }
      if (task.state === 'queued' || task.state === 'failed') {
        const remove = h('button', { type: 'button', class: 'btn btn-ghost-danger', dataset: { action: 'delete', taskId: task.id } }, 'Delete');
        remove.addEventListener('click', async () => {
          const ok = await confirmAction('Delete this task?',
            `Task ${task.id} (${task.container}:${task.path}) and its bytes will be removed.`, 'Delete');
          if (!ok) return;
          try {
            await api('DELETE', `/tasks/${encodeURIComponent(task.id)}`);
            toast('Task deleted');
            location.hash = '#/tasks';
          } catch (error) {
            if (error.status !== 401) toast(`${error.code}: ${error.detail}`, 'error');
          }
        });
        actions.append(remove);
      }
      const fields = [
        ['ID', h('span', { class: 'mono', id: 'detail-id' }, task.id)],
        ['State', badge(task.state)],
        ['Container', h('span', { class: 'mono', id: 'detail-container' }, task.container)],
        ['Destination', h('span', { class: 'mono', id: 'detail-path' }, task.path)],
        ['Size', `${formatBytes(task.bytes)} (${task.bytes} bytes)`],
      ];
      if (task.state === 'receiving') {
        const length = task.length;
        const offset = task.offset ?? task.bytes;
        fields.push(['Received', length ? `${formatBytes(offset)} of ${formatBytes(length)} (${Math.floor((offset / length) * 100)}%)`
          : `${formatBytes(offset)} (length not yet announced)`]);
      }
      fields.push(
        ['Attempts', String(task.attempts ?? 0)],
        ['Last error', task.last_error ? h('span', { id: 'detail-error' }, task.last_error) : h('span', { class: 'muted' }, 'none')],
        ['SHA-256', task.sha256 ? h('span', { class: 'mono', id: 'detail-sha256' }, task.sha256) : h('span', { class: 'muted' }, 'not yet known')],
        ['Created', h('span', null, `${localTime(task.created_at)} · `, timeCell(task.created_at), h('span', { class: 'muted mono' }, ` ${task.created_at}`))],
        ['Updated', h('span', null, `${localTime(task.updated_at)} · `, timeCell(task.updated_at), h('span', { class: 'muted mono' }, ` ${task.updated_at}`))],
        ['Request id', task.request_id ? h('span', { class: 'mono' }, task.request_id) : h('span', { class: 'muted' }, 'none')]);
      const known = new Set(['id', 'state', 'container', 'path', 'bytes', 'offset', 'length', 'attempts', 'last_error', 'sha256', 'created_at', 'updated_at', 'request_id']);
      for (const [key, value] of Object.entries(task)) {
        if (!known.has(key)) fields.push([key, h('span', { class: 'mono' }, typeof value === 'object' ? JSON.stringify(value) : String(value))]);
      }
      body.replaceChildren(
        h('div', { class: 'page-head' },
          h('div', null, h('h1', null, 'Task ', h('span', { class: 'title-id' }, task.id)),
            h('p', { class: 'muted' }, badge(task.state), ' ', `${task.container}:`, h('span', { class: 'mono' }, task.path))),
          actions),
        h('div', { class: 'panel', id: 'task-detail', dataset: { taskId: task.id, state: task.state } },
          h('dl', { class: 'detail' }, fields.map(([label, value]) => [
            h('dt', null, label),
            h('dd', { class: label === 'Last error' && task.last_error ? 'error' : null }, value)]))));
    }

    const unsubscribe = subscribe((type, data) => {
      if (type === 'task' && data.id === id) {
        if (data.state === 'deleted') deleted = true;
        load();
      } else if (type === 'connected' && data.reconnect && task) {
        load();
      }
    });
    load();
    return { el, destroy() { alive = false; unsubscribe(); } };
  }

  // ---------------------------------------------------------------- Dead letters

  function deadView(query) {
    const container = query.get('container') || '';
    const containerInput = h('input', { id: 'dead-container', type: 'text', placeholder: 'all containers', value: container, spellcheck: 'false' });
    const filterForm = h('form', { class: 'filters' },
      h('div', { class: 'field' }, h('label', { for: 'dead-container' }, 'Container'), containerInput),
      h('div', { class: 'btn-row' }, h('button', { type: 'submit', class: 'btn' }, 'Filter')));
    filterForm.addEventListener('submit', (event) => {
      event.preventDefault();
      const value = containerInput.value.trim();
      const hash = value ? `#/dead?container=${encodeURIComponent(value)}` : '#/dead';
      if (location.hash === hash) load(); else location.hash = hash;
    });
    const retryAll = h('button', { type: 'button', class: 'btn btn-primary', dataset: { action: 'retry-all' } }, 'Retry all');
    const deleteAll = h('button', { type: 'button', class: 'btn btn-danger', dataset: { action: 'delete-all' } }, 'Delete all');
    const result = h('div', { id: 'bulk-result' });
    const notice = h('div');
    const tbody = h('tbody');
    const more = h('button', { type: 'button', class: 'btn', id: 'next-page', dataset: { action: 'next-page' } }, 'Next page →');
    const first = h('button', { type: 'button', class: 'btn', id: 'first-page' }, 'First page');
    const info = h('span', { class: 'muted' });
    const scope = container ? ` of container ${container}` : '';
    const el = h('div', null,
      h('div', { class: 'page-head' },
        h('div', null, h('h1', null, 'Dead letters'),
          h('p', { class: 'muted' }, 'Failed uploads keep their bytes until they are retried, deleted or expire.')),
        h('div', { class: 'btn-row' }, retryAll, deleteAll)),
      h('div', { class: 'panel' }, filterForm),
      h('div', { class: 'section' }, result, notice,
        h('div', { class: 'panel' },
          h('div', { class: 'table-wrap' }, h('table', { id: 'dead-table' },
            h('thead', null, h('tr', null,
              h('th', null, 'ID'), h('th', null, 'Container'), h('th', null, 'Destination'),
              h('th', { class: 'num' }, 'Size'), h('th', { class: 'num' }, 'Attempts'), h('th', null, 'Failed'),
              h('th', null, 'Reason'), h('th', { class: 'num' }, ''))),
            tbody)),
          h('div', { class: 'pager' }, info, h('div', { class: 'btn-row' }, first, more)))));

    let alive = true;
    let after = null;
    let nextCursor = null;
    let count = 0;

    function report(kind, text) {
      result.replaceChildren(h('div', { class: `notice ${kind}`, dataset: { result: kind } }, text));
    }

    async function bulk(method, path, verb, key) {
      const ok = await confirmAction(`${verb} all dead letters${scope}?`,
        verb === 'Delete'
          ? `Every failed task${scope} and its bytes will be removed. This cannot be undone.`
          : `Every failed task${scope} is queued again with a fresh count of attempts.`,
        `${verb} all`, verb === 'Delete');
      if (!ok) return;
      const params = new URLSearchParams({ state: 'failed' });
      if (container) params.set('container', container);
      try {
        const answer = await api(method, `${path}?${params}`);
        const n = Number(answer.data && answer.data[key]) || 0;
        report('ok', `${verb === 'Delete' ? 'Deleted' : 'Retried'} ${n} dead letter${n === 1 ? '' : 's'}.`);
        load();
      } catch (error) {
        if (error.status === 401) return;
        const partial = error.headers && error.headers.get(`X-Ferry-${key[0].toUpperCase()}${key.slice(1)}`);
        report('error', `${partial !== null && partial !== undefined ? `${key === 'deleted' ? 'Deleted' : 'Retried'} ${partial} before stopping: ` : ''}${error.code}: ${error.detail}`);
        load();
      }
    }
    retryAll.addEventListener('click', () => bulk('POST', '/tasks/retry', 'Retry', 'retried'));
    deleteAll.addEventListener('click', () => bulk('DELETE', '/tasks', 'Delete', 'deleted'));

    function row(task) {
      const retry = h('button', { type: 'button', class: 'btn btn-sm', dataset: { action: 'retry' } }, 'Retry');
      const remove = h('button', { type: 'button', class: 'btn btn-sm btn-ghost-danger', dataset: { action: 'delete' } }, 'Delete');
      const tr = h('tr', { dataset: { taskId: task.id, state: task.state } },
        h('td', { class: 'nowrap' }, h('a', { class: 'mono', href: `#/tasks/${encodeURIComponent(task.id)}`, title: task.id }, shortId(task.id))),
        h('td', { class: 'mono' }, task.container),
        h('td', { class: 'path' }, task.path),
        h('td', { class: 'num nowrap', title: `${task.bytes} bytes` }, formatBytes(task.bytes)),
        h('td', { class: 'num' }, String(task.attempts ?? 0)),
        h('td', { class: 'nowrap' }, timeCell(task.updated_at)),
        h('td', { class: 'error' }, task.last_error || ''),
        h('td', { class: 'actions' }, retry, remove));
      retry.addEventListener('click', async () => {
        retry.disabled = true;
        try {
          await api('POST', `/tasks/${encodeURIComponent(task.id)}/retry`);
          report('ok', `Task ${task.id} queued again.`);
          tr.dataset.state = 'queued';
          tr.remove();
          soon();
        } catch (error) {
          retry.disabled = false;
          if (error.status !== 401) report('error', `${error.code}: ${error.detail}`);
        }
      });
      remove.addEventListener('click', async () => {
        const ok = await confirmAction('Delete this dead letter?',
          `Task ${task.id} (${task.container}:${task.path}) and its bytes will be removed.`, 'Delete');
        if (!ok) return;
        try {
          await api('DELETE', `/tasks/${encodeURIComponent(task.id)}`);
          report('ok', `Deleted 1 dead letter (${task.id}).`);
          tr.remove();
          soon();
        } catch (error) {
          if (error.status !== 401) report('error', `${error.code}: ${error.detail}`);
        }
      });
      return tr;
    }

    async function load() {
      const params = new URLSearchParams({ state: 'failed', limit: String(PAGE_SIZE) });
      if (container) params.set('container', container);
      if (after) params.set('after', after);
      try {
        const answer = await api('GET', `/tasks?${params}`);
        if (!alive) return;
        const tasks = (answer.data && answer.data.tasks) || [];
        nextCursor = (answer.data && answer.data.next) || null;
        count = tasks.length;
        notice.replaceChildren();
        tbody.replaceChildren(...(tasks.length ? tasks.map(row)
          : [h('tr', null, h('td', { colspan: '8', class: 'empty' }, `No dead letters${scope}. Everything was delivered or is still on its way.`))]));
        info.textContent = `${count}${nextCursor ? '+' : ''} dead letter${count === 1 ? '' : 's'}${scope}`;
        more.disabled = !nextCursor;
        first.disabled = !after;
        retryAll.disabled = count === 0;
        deleteAll.disabled = count === 0;
      } catch (error) {
        if (!alive || error.status === 401) return;
        notice.replaceChildren(errorNotice(error));
      }
    }
    more.addEventListener('click', () => { if (nextCursor) { after = nextCursor; load(); } });
    first.addEventListener('click', () => { after = null; load(); });
    const soon = throttled(load, 1000);
    const unsubscribe = subscribe((type, data) => {
      if (type === 'connected') { if (data.reconnect) soon(); }
      else if (type === 'task' && (data.state === 'failed' || tbody.querySelector(`tr[data-task-id="${CSS.escape(data.id)}"]`))) soon();
    });
    load();
    return { el, destroy() { alive = false; unsubscribe(); soon.cancel(); } };
  }

  // ---------------------------------------------------------------- Upload (tus 1.0)

  class RetryableError extends Error {}
  class CancelledError extends Error {}

  function base64(text) {
    const bytes = new TextEncoder().encode(text);
    let binary = '';
    for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(binary);
  }

  /** DIRECTORY + "/" + name with one slash between, and "/" for an empty directory. */
  function joinPath(directory, name) {
    const trimmed = directory.trim().replace(/\/+$/, '');
    return `${trimmed}/${name}`;
  }

  function fingerprint(file, container, directory) {
    return TUS_KEY_PREFIX + JSON.stringify([file.name, file.size, file.lastModified, container, directory.trim().replace(/\/+$/, '') || '/']);
  }

  function retryable(status) {
    return status === 0 || status === 423 || status >= 500;
  }

  /** One file's tus upload and its row on the page. */
  class TusUpload {
    constructor(file, container, directory, mode) {
      this.file = file;
      this.container = container;
      this.directory = directory;
      this.mode = mode;
      this.path = joinPath(directory, file.name);
      this.key = fingerprint(file, container, directory);
      this.url = null;
      this.offset = 0;
      this.taskId = null;
      this.taskState = null;
      this.taskAt = null;
      this.cancelled = false;
      this.xhr = null;
      this.controller = null;
      this.needsSync = false;
      this.buildRow();
    }

    buildRow() {
      this.fill = h('div', { class: 'bar-fill' });
      this.sentText = h('span', { class: 'upload-sent' }, `0 B / ${formatBytes(this.file.size)}`);
      this.statusText = h('span', { class: 'upload-status' }, 'waiting');
      this.errorText = h('div', { class: 'upload-error', hidden: true });
      this.cancelButton = h('button', { type: 'button', class: 'btn btn-sm', dataset: { action: 'cancel-upload' } }, 'Cancel');
      this.cancelButton.addEventListener('click', () => this.cancel());
      this.taskSlot = h('span', { class: 'upload-task' });
      this.row = h('div', { class: 'upload-row', dataset: { fileName: this.file.name, state: 'uploading', bytesSent: '0', bytesTotal: String(this.file.size) } },
        h('div', null,
          h('div', { class: 'upload-name' }, this.file.name),
          h('div', { class: 'upload-dest' }, `${this.container}:${this.path}`)),
        h('div', { class: 'upload-side' }, this.taskSlot, this.cancelButton),
        h('div', { class: 'bar' }, this.fill),
        h('div', { class: 'upload-meta' }, this.sentText, this.statusText),
        this.errorText);
    }

    progress(sent) {
      const total = this.file.size;
      const shown = Math.min(sent, total);
      this.row.dataset.bytesSent = String(shown);
      this.fill.style.width = `${total ? (shown / total) * 100 : 100}%`;
      this.sentText.textContent = `${formatBytes(shown)} / ${formatBytes(total)}${total ? ` · ${Math.floor((shown / total) * 100)}%` : ''}`;
    }

    status(text, warn = false) {
      this.statusText.textContent = text;
      this.statusText.classList.toggle('warn', warn);
    }

    setState(state) { this.row.dataset.state = state; }

    async request(method, url, headers, body) {
      this.controller = new AbortController();
      let response;
      try {
        response = await fetch(url, {
          method, body, cache: 'no-store', signal: this.controller.signal,
          headers: auth.headers(Object.assign({ 'Tus-Resumable': '1.0.0' }, headers)),
        });
      } catch (error) {
        if (this.cancelled) throw new CancelledError('cancelled');
        throw new RetryableError(`connection lost (${error.message})`);
      }
      if (response.status === 401) { unauthorized(); throw await readError(response); }
      return response;
    }

    async run() {
      let delay = 1000;
      this.status('starting');
      for (;;) {
        try {
          if (this.cancelled) throw new CancelledError('cancelled');
          if (!this.url) await this.locate();
          else if (this.needsSync) await this.sync();
          await this.send(() => { delay = 1000; });
          break;
        } catch (error) {
          if (this.cancelled || error instanceof CancelledError) return;
          if (!(error instanceof RetryableError)) { this.fail(error); return; }
          this.needsSync = true;
          this.status(`${error.message}: retrying in ${delay / 1000} s`, true);
          await sleep(delay);
          delay = Math.min(delay * 2, 10000);
        }
      }
      this.complete();
    }

    /** A stored upload for the same file and destination is continued; else a new one. */
    async locate() {
      const stored = localStorage.getItem(this.key);
      if (stored) {
        let entry = null;
        try { entry = JSON.parse(stored); } catch (_) { entry = null; }
        if (entry && typeof entry.url === 'string') {
          this.url = entry.url;
          this.status('looking for the earlier upload');
          const found = await this.sync(true);
          if (found) {
            if (this.offset > 0) this.status(`resuming at ${formatBytes(this.offset)}`);
            return;
          }
          localStorage.removeItem(this.key);
          this.url = null;
        }
      }
      await this.create();
    }

    async create() {
      this.status('creating upload');
      const metadata = [['container', this.container], ['path', this.path], ['filename', this.file.name], ['mode', this.mode]]
        .map(([key, value]) => `${key} ${base64(value)}`).join(',');
      const response = await this.request('POST', `${BASE}/files/`, {
        'Upload-Length': String(this.file.size), 'Upload-Metadata': metadata,
      });
      if (response.status !== 201) {
        const error = await readError(response);
        if (retryable(response.status)) throw new RetryableError(`${response.status} ${error.code}`);
        throw error;
      }
      const location = response.headers.get('Location');
      if (!location) throw new HttpError(response.status, 'no_location', 'the creation answered no Location');
      this.url = new URL(location, window.location.href).pathname;
      this.offset = Number(response.headers.get('Upload-Offset') || 0);
      this.needsSync = false;
      localStorage.setItem(this.key, JSON.stringify({ url: this.url, size: this.file.size, created: new Date().toISOString() }));
      this.progress(this.offset);
    }

    /** HEAD: learns the stored offset. Returns false when the upload is gone (lookup only). */
    async sync(lookup = false) {
      const response = await this.request('HEAD', this.url, {});
      if (response.status === 200 || response.status === 204) {
        const offset = Number(response.headers.get('Upload-Offset'));
        const length = response.headers.get('Upload-Length');
        if (Number.isNaN(offset) || (length !== null && Number(length) !== this.file.size)) {
          if (lookup) return false;
          throw new HttpError(response.status, 'bad_head', 'the server reported an offset this file cannot have');
        }
        this.offset = offset;
        this.needsSync = false;
        this.progress(offset);
        return true;
      }
      if (response.status === 404 || response.status === 410 || response.status === 403) {
        if (lookup) return false;
        // The upload is gone (expired, or removed elsewhere): start over.
        localStorage.removeItem(this.key);
        this.url = null;
        this.offset = 0;
        this.progress(0);
        throw new RetryableError('the upload is gone on the server; starting over');
      }
      if (retryable(response.status)) throw new RetryableError(`${response.status} from HEAD`);
      throw await readError(response);
    }

    async send(onProgress) {
      this.status('uploading');
      let mismatches = 0;
      while (this.offset < this.file.size) {
        if (this.cancelled) throw new CancelledError('cancelled');
        const end = Math.min(this.offset + CHUNK_SIZE, this.file.size);
        const answer = await this.patch(this.file.slice(this.offset, end));
        if (answer.status === 204) {
          const offset = Number(answer.offset);
          this.offset = Number.isNaN(offset) ? end : offset;
          this.progress(this.offset);
          onProgress();
          mismatches = 0;
          continue;
        }
        if (answer.status === 401) {
          unauthorized();
          throw new HttpError(401, 'unauthorized', 'the token was refused');
        }
        if (answer.status === 409 && mismatches < 3) {
          mismatches += 1;
          await this.sync();
          continue;
        }
        if (retryable(answer.status)) throw new RetryableError(answer.status ? `${answer.status} ${answer.code}` : 'connection lost');
        throw new HttpError(answer.status, answer.code, answer.detail);
      }
    }

    /** One PATCH by XMLHttpRequest, for upload progress. */
    patch(blob) {
      return new Promise((resolve, reject) => {
        const xhr = new XMLHttpRequest();
        this.xhr = xhr;
        const start = this.offset;
        xhr.open('PATCH', this.url);
        const headers = auth.headers({
          'Tus-Resumable': '1.0.0', 'Upload-Offset': String(start), 'Content-Type': 'application/offset+octet-stream',
        });
        for (const [key, value] of Object.entries(headers)) xhr.setRequestHeader(key, value);
        xhr.upload.onprogress = (event) => this.progress(start + event.loaded);
        xhr.onload = () => {
          let code = `http_${xhr.status}`;
          let detail = xhr.statusText || `HTTP ${xhr.status}`;
          try {
            const body = JSON.parse(xhr.responseText);
            if (body && body.error) code = body.error;
            if (body && body.detail) detail = body.detail;
          } catch (_) { /* no JSON body */ }
          resolve({ status: xhr.status, offset: xhr.getResponseHeader('Upload-Offset'), code, detail });
        };
        xhr.onerror = () => resolve({ status: 0, code: 'network', detail: 'connection lost' });
        xhr.ontimeout = xhr.onerror;
        xhr.onabort = () => reject(new CancelledError('cancelled'));
        xhr.send(blob);
      });
    }

    complete() {
      localStorage.removeItem(this.key);
      this.xhr = null;
      this.progress(this.file.size);
      this.taskId = this.url.split('/').filter(Boolean).pop();
      this.row.dataset.taskId = this.taskId;
      this.cancelButton.hidden = true;
      this.setState('done');
      this.status('uploaded');
      this.taskSlot.replaceChildren(h('a', { class: 'mono', href: `#/tasks/${encodeURIComponent(this.taskId)}`, title: this.taskId }, shortId(this.taskId)));
      uploads.byTask.set(this.taskId, this);
      const event = lastTaskEvents.get(this.taskId);
      if (event) this.taskUpdate(event.state, event.at, event.error);
      api('GET', `/tasks/${encodeURIComponent(this.taskId)}`)
        .then((answer) => { if (answer.data) this.taskUpdate(answer.data.state, answer.data.updated_at, answer.data.last_error); })
        .catch(() => { /* the events will tell */ });
    }

    taskUpdate(state, at, error) {
      if (!state || (this.taskAt && !newer(at, this.taskAt, state, this.taskState))) return;
      this.taskAt = at || this.taskAt;
      this.taskState = state;
      this.row.dataset.taskState = state;
      this.status(`task ${state}`);
      const link = this.taskSlot.querySelector('a');
      this.taskSlot.replaceChildren(badge(state), ' ', link);
      if (state === 'failed' && error) this.showError(error);
    }

    showError(text) {
      this.errorText.hidden = false;
      this.errorText.textContent = text;
    }

    fail(error) {
      this.xhr = null;
      this.setState('error');
      this.cancelButton.hidden = true;
      this.status('failed');
      this.showError(error instanceof HttpError && error.status ? `${error.status} ${error.code}: ${error.detail}` : String(error.message || error));
    }

    async cancel() {
      if (this.cancelled || this.row.dataset.state !== 'uploading') return;
      this.cancelled = true;
      this.cancelButton.hidden = true;
      if (this.xhr) this.xhr.abort();
      if (this.controller) this.controller.abort();
      localStorage.removeItem(this.key);
      this.setState('cancelled');
      this.status('cancelled');
      if (this.url) {
        try {
          await fetch(this.url, { method: 'DELETE', headers: auth.headers({ 'Tus-Resumable': '1.0.0' }), cache: 'no-store' });
          this.status('cancelled; upload removed');
        } catch (_) {
          this.status('cancelled (the server could not be told; it removes the upload when it expires)');
        }
      }
    }
  }

  const uploads = {
    all: [],
    waiting: [],
    running: 0,
    byTask: new Map(),
    list: null,
    add(upload) {
      this.all.push(upload);
      this.waiting.push(upload);
      this.listElement().prepend(upload.row);
      this.pump();
    },
    pump() {
      while (this.running < PARALLEL_UPLOADS && this.waiting.length) {
        const upload = this.waiting.shift();
        if (upload.cancelled) continue;
        this.running += 1;
        upload.run().finally(() => { this.running -= 1; this.pump(); });
      }
    },
    clearFinished() {
      for (const upload of this.all) {
        const state = upload.row.dataset.state;
        const settled = state === 'error' || state === 'cancelled'
          || (state === 'done' && (upload.taskState === 'delivered' || upload.taskState === 'failed'));
        if (settled) {
          upload.row.remove();
          if (upload.taskId) this.byTask.delete(upload.taskId);
        }
      }
      this.all = this.all.filter((upload) => upload.row.isConnected);
    },
    listElement() {
      if (!this.list) this.list = h('div', { class: 'uploads', id: 'uploads' });
      return this.list;
    },
  };

  // The dead-letter count in the tabs follows the events on every page (the overview
  // refreshes the stats itself).
  const refreshBadge = throttled(() => {
    if (!signedIn || parseHash().parts[0] === 'overview' || !parseHash().parts.length) return;
    api('GET', '/stats').then((answer) => stats.set(answer.data)).catch(() => {});
  }, 5000);
  subscribe((type) => { if (type === 'task') refreshBadge(); });

  subscribe((type, data) => {
    if (type !== 'task') return;
    const upload = uploads.byTask.get(data.id);
    if (upload) upload.taskUpdate(data.state, data.at, data.error);
  });

  /** Forgets stored uploads older than a week (the server expires them much sooner). */
  function pruneStoredUploads() {
    const cutoff = Date.now() - 7 * 24 * 3600 * 1000;
    for (let i = localStorage.length - 1; i >= 0; i -= 1) {
      const key = localStorage.key(i);
      if (!key || !key.startsWith(TUS_KEY_PREFIX)) continue;
      let created = null;
      try { created = parseTime(JSON.parse(localStorage.getItem(key)).created); } catch (_) { created = null; }
      if (created === null || created < cutoff) localStorage.removeItem(key);
    }
  }

  function uploadView() {
    pruneStoredUploads();
    let saved = {};
    try { saved = JSON.parse(localStorage.getItem(FORM_KEY) || '{}') || {}; } catch (_) { saved = {}; }
    const container = h('input', { id: 'container', type: 'text', placeholder: 'c1', value: saved.container || '', spellcheck: 'false', autocomplete: 'off' });
    const destination = h('input', { id: 'destination', type: 'text', placeholder: '/root/', value: saved.destination || '/root/', spellcheck: 'false', autocomplete: 'off' });
    const mode = h('input', { id: 'mode', type: 'text', value: saved.mode || '0644', spellcheck: 'false', autocomplete: 'off', inputmode: 'numeric' });
    const files = h('input', { id: 'files', type: 'file', multiple: true });
    const selection = h('ul', { class: 'selection', id: 'selection' });
    const start = h('button', { type: 'submit', class: 'btn btn-primary', id: 'upload' }, 'Upload');
    const formError = h('p', { class: 'form-error', hidden: true });
    const drop = h('label', { class: 'dropzone', for: 'files' },
      h('strong', null, 'Drop files here'), ' or choose them', files);
    let picked = [];

    const showSelection = () => {
      selection.replaceChildren(...picked.map((file) => h('li', null,
        h('span', { class: 'mono' }, file.name), h('span', null, formatBytes(file.size)))));
      start.textContent = picked.length > 1 ? `Upload ${picked.length} files` : 'Upload';
    };
    files.addEventListener('change', () => { picked = Array.from(files.files || []); showSelection(); });
    for (const type of ['dragenter', 'dragover']) {
      drop.addEventListener(type, (event) => { event.preventDefault(); drop.classList.add('over'); });
    }
    drop.addEventListener('dragleave', () => drop.classList.remove('over'));
    drop.addEventListener('drop', (event) => {
      event.preventDefault();
      drop.classList.remove('over');
      const dropped = Array.from((event.dataTransfer && event.dataTransfer.files) || []);
      if (dropped.length) { picked = picked.concat(dropped); showSelection(); }
    });

    const form = h('form', { class: 'panel-body', id: 'upload-form', autocomplete: 'off' },
      h('div', { class: 'upload-form' },
        h('div', { class: 'field' }, h('label', { for: 'container' }, 'Container'), container),
        h('div', { class: 'field' }, h('label', { for: 'destination' }, 'Destination directory'), destination),
        h('div', { class: 'field' }, h('label', { for: 'mode' }, 'Mode (octal)'), mode)),
      drop,
      selection,
      formError,
      h('div', { class: 'upload-actions' }, start,
        h('span', { class: 'muted' }, 'Resumable (tus): an interrupted upload continues where it stopped, even after a reload if you pick the same file again.')));

    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const problems = [];
      const name = container.value.trim();
      const directory = destination.value.trim();
      const bits = mode.value.trim() || '0644';
      if (!INSTANCE_NAME.test(name)) problems.push('the container name takes 1 to 63 letters, digits and - (REMOTE:NAME for an instance on a remote)');
      if (!directory.startsWith('/')) problems.push('the destination directory must be absolute (start with /)');
      if (!/^[0-7]{3,4}$/.test(bits)) problems.push('the mode is octal, 0000 to 7777');
      if (!picked.length) problems.push('choose at least one file');
      formError.hidden = !problems.length;
      formError.textContent = problems.length ? `Cannot upload: ${problems.join('; ')}.` : '';
      if (problems.length) return;
      localStorage.setItem(FORM_KEY, JSON.stringify({ container: name, destination: directory, mode: bits }));
      for (const file of picked) uploads.add(new TusUpload(file, name, directory, bits.padStart(4, '0')));
      picked = [];
      files.value = '';
      showSelection();
    });

    const el = h('div', null,
      h('div', { class: 'page-head' }, h('div', null, h('h1', null, 'Upload'),
        h('p', { class: 'muted' }, 'Send files into a container. Each file goes to the directory plus its own name.'))),
      h('div', { class: 'panel' }, form),
      h('div', { class: 'section' },
        h('div', { class: 'section-head' }, h('h2', null, 'Uploads'),
          h('button', { type: 'button', class: 'btn btn-sm', id: 'clear-finished', onclick: () => uploads.clearFinished() }, 'Clear finished')),
        h('div', { class: 'panel' }, uploads.listElement())));
    return { el, destroy() {} };
  }

  // ---------------------------------------------------------------- start

  document.addEventListener('DOMContentLoaded', () => {
    $('#auth-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const value = $('#token').value.trim();
      if (!value) return;
      auth.token = value;
      start();
    });
    $('#sign-out').addEventListener('click', (event) => {
      event.preventDefault();
      auth.token = '';
      signedIn = false;
      events.stop();
      if (current && current.destroy) current.destroy();
      current = null;
      $('#view').replaceChildren();
      showAuth('Signed out.');
    });
    window.addEventListener('hashchange', render);
    // Relative times ("3m ago") follow the clock.
    setInterval(() => {
      for (const node of document.querySelectorAll('time[datetime]')) {
        const text = ago(node.getAttribute('datetime'));
        if (node.textContent !== text) node.textContent = text;
      }
    }, 15000);
    start();
  });
})();
