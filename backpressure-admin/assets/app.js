// The backpressure admin dashboard. Plain JavaScript, no build step: the page gets one
// overview, then follows the server's event stream (api/events) and falls back to polling
// api/overview when the stream is unavailable. Every URL is relative to the page.
'use strict';

(function () {
  const POLL_MS = 2000;
  const RECONNECT_MS = 5000;
  const MAX_LOG = 200;

  const state = {
    overview: null,
    live: true,
    source: null,
    pollTimer: null,
    reconnectTimer: null,
    // performance.now() when the overview arrived, and the server clock then.
    receivedAt: 0,
    serverNow: 0,
    streamMessages: 0,
  };

  const $ = (selector) => document.querySelector(selector);
  // timeline.js's store, or a stand-in when it did not load.
  const history = window.bpHistory || { apply() {}, rev: () => 0, setLive() {}, setWorkers() {}, percent: (l) => `${l * 100}%` };

  // Builds an element; text only ever goes in through textContent.
  function el(tag, props, children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [key, value] of Object.entries(props)) {
        if (value === undefined || value === null) continue;
        if (key === 'text') node.textContent = String(value);
        else if (key === 'className') node.className = value;
        else if (key === 'dataset') Object.assign(node.dataset, value);
        else node.setAttribute(key, String(value));
      }
    }
    for (const child of children || []) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  // Brings `tbody` to one row per item, in order, touching only what changed: a row is
  // kept by its key (`data-row`), and of a kept row only the cells that differ from a
  // freshly built one are replaced.
  function syncRows(tbody, items, keyOf, build) {
    const existing = new Map(Array.from(tbody.children, (row) => [row.dataset.row, row]));
    let previous = null;
    for (const item of items) {
      const key = keyOf(item);
      const fresh = build(item);
      fresh.dataset.row = key;
      let row = existing.get(key);
      if (row && row.children.length === fresh.children.length) {
        existing.delete(key);
        Object.assign(row.dataset, fresh.dataset);
        Array.from(fresh.children).forEach((cell, i) => {
          if (!row.children[i].isEqualNode(cell)) row.children[i].replaceWith(cell);
        });
      } else {
        if (row) row.remove();
        existing.delete(key);
        row = fresh;
      }
      const wanted = previous ? previous.nextSibling : tbody.firstChild;
      if (wanted !== row) tbody.insertBefore(row, wanted);
      previous = row;
    }
    for (const row of existing.values()) row.remove();
  }

  // retries.js's panel, or a stand-in when it did not load.
  const retries = window.bpRetries ? window.bpRetries({ el, syncRows }) : { render() {} };

  // ---- connection -------------------------------------------------------------------

  function setMode(mode, text) {
    const conn = $('#conn');
    conn.dataset.mode = mode;
    conn.textContent = text;
    document.body.dataset.mode = mode;
  }

  function connect() {
    if (!state.live) return;
    if (typeof EventSource !== 'function') {
      startPolling();
      return;
    }
    closeStream();
    const source = new EventSource('api/events');
    state.source = source;
    source.addEventListener('open', () => {
      stopPolling();
      setMode('sse', 'live');
    });
    source.addEventListener('snapshot', (e) => onStream(e, (data) => render(data)));
    source.addEventListener('stats', (e) => onStream(e, (data) => render(data)));
    source.addEventListener('signal', (e) => onStream(e, (data) => onSignal(data)));
    source.addEventListener('history', (e) => onStream(e, (data) => history.apply(data)));
    source.addEventListener('lagged', (e) => onStream(e, (data) => {
      logLine(null, 'lagged', `missed ${data.missed} events on sink ${data.sink}`);
    }));
    source.addEventListener('error', () => {
      if (!state.live) return;
      // The browser retries by itself while readyState is CONNECTING; meanwhile, poll.
      startPolling();
      if (source.readyState === EventSource.CLOSED) {
        closeStream();
        state.reconnectTimer = setTimeout(connect, RECONNECT_MS);
      }
    });
  }

  function onStream(event, apply) {
    state.streamMessages += 1;
    document.body.dataset.streamMessages = String(state.streamMessages);
    let data;
    try {
      data = JSON.parse(event.data);
    } catch (err) {
      showStatus(`unreadable ${event.type} event from the server`, true);
      return;
    }
    apply(data);
  }

  function closeStream() {
    if (state.source) {
      state.source.close();
      state.source = null;
    }
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = null;
  }

  function startPolling() {
    if (state.pollTimer || !state.live) return;
    setMode('polling', 'polling');
    const poll = async () => {
      try {
        const response = await fetch('api/overview', { headers: { Accept: 'application/json' } });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        render(await response.json());
        const since = history.rev();
        const changes = await fetch(`api/history?since=${since}`, { headers: { Accept: 'application/json' } });
        if (changes.ok) history.apply(await changes.json());
        if (state.pollTimer) setMode('polling', 'polling');
      } catch (err) {
        if (state.pollTimer) setMode('offline', 'offline — retrying');
      }
    };
    state.pollTimer = setInterval(poll, POLL_MS);
    poll();
  }

  function stopPolling() {
    clearInterval(state.pollTimer);
    state.pollTimer = null;
  }

  function toggleLive() {
    state.live = !state.live;
    history.setLive(state.live);
    const button = $('#live-toggle');
    button.setAttribute('aria-pressed', String(state.live));
    if (state.live) {
      button.textContent = 'Pause updates';
      setMode('connecting', 'connecting…');
      connect();
    } else {
      closeStream();
      stopPolling();
      button.textContent = 'Resume updates';
      setMode('paused', 'paused');
    }
  }

  // ---- rendering ----------------------------------------------------------------------

  function render(overview) {
    if (!state.live) return;
    state.overview = overview;
    state.receivedAt = performance.now();
    state.serverNow = overview.now_ms;
    document.body.classList.toggle('controls', Boolean(overview.controls && overview.controls.signals));
    document.body.classList.toggle('pause-controls', Boolean(overview.controls && overview.controls.pause));
    document.body.classList.toggle('requeue-controls', Boolean(overview.controls && overview.controls.requeue));
    document.body.classList.toggle('read-only', Boolean(overview.read_only));
    renderSummary(overview.summary);
    history.setWorkers(overview.workers);
    renderWorkers(overview.workers, overview.controls, overview.sinks);
    retries.render(overview.workers, overview.controls);
    renderSinkChoices(overview.sinks);
    renderSignals(overview.sinks.flatMap((sink) => sink.signals), overview.controls);
    tick();
  }

  function renderSummary(summary) {
    for (const node of document.querySelectorAll('[data-summary]')) {
      const key = node.dataset.summary;
      let value = summary[key];
      if (key === 'active') value = `${summary.active} / ${summary.concurrency}`;
      node.textContent = String(value);
      node.parentElement.classList.toggle('alert', ['held', 'failed', 'dead_letters'].includes(key) && summary[key] > 0);
    }
  }

  // What holds a gate that signals leave open, in words after the state.
  const QUOTA_WORDS = { rate: ' holds the next start', permits: ' waiting for a fleet permit' };

  function gateBadge(gate) {
    const badge = el('span', { className: 'badge gate', dataset: { gate: gate.state } });
    let label = gate.state;
    if (gate.state === 'limited' && gate.level !== null) label = `limited ${history.percent(gate.level)}`;
    badge.append(label);
    if (QUOTA_WORDS[gate.state]) badge.append(el('span', { className: 'by', text: QUOTA_WORDS[gate.state] }));
    if (gate.signals.length > 0) {
      badge.append(el('span', { className: 'by', text: ` by ${gate.signals.join(', ')}` }));
    }
    badge.dataset.signals = gate.signals.join(',');
    return badge;
  }

  // "1m 30s 5ms" (humantime) in milliseconds.
  function humanMs(text) {
    const unit = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60000, min: 60000, h: 3600000, d: 86400000, days: 86400000 };
    let total = 0;
    for (const [, n, u] of String(text).matchAll(/(\d+)\s*([a-zµ]+)/g)) total += Number(n) * (unit[u] || 0);
    return total;
  }

  function clockAt(ms) {
    return new Date(ms).toLocaleTimeString([], { hour12: false });
  }

  // A policy's state in words, as a badge: closed / open (probes at …) / half-open
  // (probes n of m) / adaptive limit k of max / watermark depth vs its thresholds.
  function policyBadge(policy, worker, sinks) {
    const st = policy.state;
    const next = policy.next_transition_in ? state.serverNow + humanMs(policy.next_transition_in) : null;
    let kind = 'closed';
    let text;
    if (st.breaker) {
      kind = st.breaker;
      const c = policy.counts;
      if (st.breaker === 'open') text = `open${next ? ` · probes at ${clockAt(next)}` : ''}`;
      else if (st.breaker === 'half_open') {
        kind = 'half-open';
        const d = policy.detail || {};
        const probes = d.probes !== undefined ? `probes ${d.probes_started} of ${d.probes}` : 'probing';
        text = `half-open · ${probes}${next ? ` · timeout ${clockAt(next)}` : ''}`;
      } else text = `closed · ${c.failures} of ${c.calls} failed`;
    } else if (st.limit !== undefined) {
      const max = policy.detail && policy.detail.max !== undefined ? policy.detail.max : st.limit;
      kind = st.limit < max ? 'limited' : 'closed';
      text = `limit ${st.limit} of ${max}`;
    } else if (st.watermark) {
      kind = st.watermark.raised ? 'open' : 'closed';
      const d = policy.detail || {};
      const bounds = d.raise_at !== undefined ? ` (raise at ${d.raise_at}, clear at ${d.retract_at})` : '';
      text = `depth ${st.watermark.depth} of ${worker.config.capacity}${bounds} · ${st.watermark.raised ? 'raised' : 'clear'}`;
    } else {
      text = JSON.stringify(st);
    }
    return el('span', {
      className: 'badge policy', dataset: { policy: policy.policy, state: kind },
      title: `${policy.policy} on ${policy.signal}`,
    }, [el('span', { className: 'policy-name', text: `${policy.policy}: ` }), text]);
  }

  function rate(n) {
    return n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2);
  }

  // The worker's quotas: "rate 50/s (burst 10), delayed 3 starts" ("fleet rate" when shared)
  // and "permits 1 in use /
  // 2 granted / limit 3"; a dash without either.
  function limitsCell(worker) {
    const cell = el('td', { className: 'limits' });
    const r = worker.config.rate;
    const s = worker.stats;
    if (r) {
      const per = r.per === '1s' ? '/s' : ` per ${r.per}`;
      const burst = r.burst > 1 ? ` (burst ${r.burst})` : '';
      const starts = `${s.rate_limited} start${s.rate_limited === 1 ? '' : 's'}`;
      const scope = r.shared ? 'fleet rate' : 'rate';
      cell.append(el('span', {
        className: 'limit', dataset: { field: 'rate' },
        title: r.shared ? 'one rate for every process sharing the sink through Redis' : 'this process\'s own rate',
        text: `${scope} ${r.limit}${per}${burst}, delayed ${starts}`,
      }));
    }
    const p = s.permits;
    if (p) {
      cell.append(el('span', {
        className: 'limit', dataset: { field: 'permits' },
        title: 'permits of the fleet-wide global_concurrency: running items of this process / held by this process / the fleet\'s limit',
        text: `permits ${p.in_use} in use / ${p.granted} granted / limit ${p.limit}`,
      }));
    } else if (worker.config.global_concurrency) {
      cell.append(el('span', { className: 'limit', dataset: { field: 'permits' }, text: `fleet limit ${worker.config.global_concurrency}` }));
    }
    if (!cell.childElementCount) cell.append(el('span', { className: 'muted', text: '—' }));
    return cell;
  }

  function renderWorkers(workers, controls, sinks) {
    syncRows($('#workers tbody'), workers, (worker) => worker.name, (worker) => {
      const s = worker.stats;
      const running = s.limit < s.concurrency ? `${s.active} / ${s.concurrency} (limit ${s.limit})` : `${s.active} / ${s.concurrency}`;
      const control = el('td', { className: 'pause-control' });
      if (controls && controls.pause) {
        const action = s.paused ? 'resume' : 'pause';
        const button = el('button', {
          type: 'button', className: `worker-${action}`, text: s.paused ? 'Resume' : 'Pause',
          dataset: { worker: worker.name, action },
        });
        control.append(button);
      }
      const policies = worker.policies.map((p) => policyBadge(p, worker, sinks));
      return el('tr', { dataset: { worker: worker.name } }, [
        el('td', null, [
          el('strong', { text: worker.name }),
          el('span', { className: 'loc', text: worker.location }),
          policies.length ? el('span', { className: 'policies' }, policies) : null,
        ]),
        el('td', { text: worker.sink }),
        el('td', null, [gateBadge(worker.gate)]),
        limitsCell(worker),
        el('td', { className: 'num', text: running }),
        el('td', { className: 'num', text: s.queued }),
        el('td', { className: 'num', text: s.deferred }),
        el('td', { className: 'num', text: s.completed }),
        el('td', { className: 'num', text: s.failed }),
        el('td', { className: 'num', text: s.panicked }),
        el('td', { className: 'num', text: s.skipped }),
        el('td', { className: 'num', text: s.defer_timeouts }),
        el('td', {
          className: 'num',
          text: `${rate(worker.rates.completed_per_s)}/s`,
          title: `in ${rate(worker.rates.enqueued_per_s)}/s · done ${rate(worker.rates.completed_per_s)}/s · failed ${rate(worker.rates.failed_per_s)}/s`,
        }),
        control,
      ]);
    });
    $('#no-workers').hidden = workers.length > 0;
  }

  function renderSinkChoices(sinks) {
    const select = $('#raise-sink');
    const current = select.value;
    const names = sinks.map((s) => s.name);
    if (names.join('\n') === Array.from(select.options, (o) => o.value).join('\n')) return;
    select.replaceChildren(...names.map((name) => el('option', { value: name, text: name })));
    if (names.includes(current)) select.value = current;
  }

  function signalId(signal) {
    return JSON.stringify([signal.sink, signal.name, signal.key]);
  }

  function renderSignals(signals, controls) {
    const now = performance.now();
    syncRows($('#signals tbody'), signals, signalId, (signal) => {
      const control = el('td', { className: 'control' });
      if (controls && controls.signals) {
        control.append(el('button', {
          type: 'button', className: 'retract', text: 'Retract',
          dataset: { sink: signal.sink, name: signal.name, key: signal.key === null ? '' : signal.key },
        }));
      }
      const raisedAgo = state.serverNow - signal.raised_at_ms;
      return el('tr', { dataset: { signal: signalId(signal), name: signal.name } }, [
        el('td', { text: signal.sink }),
        el('td', null, [el('strong', { text: signal.name })]),
        el('td', { text: signal.key === null ? '—' : signal.key, className: signal.key === null ? 'muted' : '' }),
        el('td', { text: signal.level === 0 ? 'stop' : history.percent(signal.level) }),
        el('td', { text: signal.holds.length ? signal.holds.join(', ') : '—' }),
        el('td', { className: 'ago', dataset: { since: String(now - raisedAgo) } }),
        el('td', {
          className: 'ttl',
          dataset: signal.ttl_left_ms === null ? {} : { until: String(now + signal.ttl_left_ms) },
          text: signal.ttl_left_ms === null ? '∞' : '',
        }),
        control,
      ]);
    });
    $('#no-signals').hidden = signals.length > 0;
  }

  function duration(ms) {
    const s = Math.max(0, ms) / 1000;
    if (s < 10) return `${s.toFixed(1)}s`;
    if (s < 60) return `${Math.floor(s)}s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m}m ${String(Math.floor(s % 60)).padStart(2, '0')}s`;
    return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
  }

  // Runs the TTL countdowns and "raised ago" clocks between updates.
  function tick() {
    const now = performance.now();
    for (const cell of document.querySelectorAll('#signals td.ttl[data-until]')) {
      const left = Number(cell.dataset.until) - now;
      cell.textContent = left > 0 ? duration(left) : 'expiring…';
    }
    for (const cell of document.querySelectorAll('#signals td.ago[data-since]')) {
      cell.textContent = `${duration(now - Number(cell.dataset.since))} ago`;
    }
  }

  function onSignal(event) {
    logLine(event.at_ms, event.kind, describe(event));
    if (!state.overview || !state.live) return;
    // Show the change at once; the next stats event brings TTLs and gates.
    const signals = state.overview.sinks.flatMap((sink) => sink.signals);
    const id = signalId(event);
    const at = signals.findIndex((s) => signalId(s) === id);
    if (event.kind === 'raised' || event.kind === 'level_changed') {
      const known = at >= 0 ? signals[at] : null;
      const signal = {
        sink: event.sink, name: event.name, key: event.key, level: event.level,
        raised_at_ms: known ? known.raised_at_ms : event.at_ms,
        ttl_left_ms: known ? known.ttl_left_ms : null, expires_at_ms: null,
        holds: known ? known.holds : [],
      };
      if (at >= 0) signals[at] = signal; else signals.push(signal);
    } else if ((event.kind === 'retracted' || event.kind === 'expired') && at >= 0) {
      signals.splice(at, 1);
    } else {
      return;
    }
    for (const sink of state.overview.sinks) sink.signals = signals.filter((s) => s.sink === sink.name);
    renderSignals(signals, state.overview.controls);
    tick();
  }

  function describe(event) {
    let text = `${event.sink}: ${event.name}`;
    if (event.key !== null) text += ` [${event.key}]`;
    if (event.kind === 'raised' || event.kind === 'level_changed') {
      text += event.level === 0 ? ' (stop)' : ` (level ${event.level})`;
    }
    if (event.policy) text += ` — ${event.policy.policy} ${policyWords(event.policy.from)} → ${policyWords(event.policy.to)} (${reasonWords(event.policy.reason)})`;
    return text;
  }

  // A policy state ({"breaker": "open"}, {"limit": 3}, {"watermark": {...}}) in words.
  function policyWords(st) {
    if (st.breaker) return st.breaker.replace('_', '-');
    if (st.limit !== undefined) return `limit ${st.limit}`;
    if (st.watermark) return `${st.watermark.raised ? 'raised' : 'clear'} at depth ${st.watermark.depth}`;
    return String(st);
  }

  function reasonWords(reason) {
    const words = typeof reason === 'string' ? reason : Object.values(reason)[0];
    return String(words).replace(/_/g, ' ');
  }

  function logLine(atMs, kind, text) {
    const when = atMs ? new Date(atMs) : new Date();
    const item = el('li', { dataset: { kind } }, [
      el('time', { text: when.toLocaleTimeString(), datetime: when.toISOString() }),
      el('span', { className: `kind ${kind}`, text: kind.replace('_', ' ') }),
      el('span', { text }),
    ]);
    const log = $('#log');
    log.prepend(item);
    while (log.children.length > MAX_LOG) log.lastElementChild.remove();
    $('#no-events').hidden = true;
  }

  // ---- changes ------------------------------------------------------------------------

  function showStatus(text, isError) {
    const status = $('#status');
    status.textContent = text;
    status.classList.toggle('error', Boolean(isError));
  }

  async function post(path, body) {
    const response = await fetch(path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(body),
      credentials: 'same-origin',
    });
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    if (!response.ok) {
      const error = new Error(data && data.error ? data.error : `HTTP ${response.status}`);
      error.field = data ? data.field : null;
      throw error;
    }
    return data;
  }

  function sinkPath(sink, action) {
    return `api/sinks/${encodeURIComponent(sink)}/${action}`;
  }

  async function onRaise(event) {
    event.preventDefault();
    const form = event.currentTarget;
    for (const input of form.querySelectorAll('input')) input.removeAttribute('aria-invalid');
    const value = (name) => form.elements[name].value.trim();
    const body = { name: value('name') };
    if (value('key')) body.key = value('key');
    if (value('ttl')) body.ttl = /^\d+(\.\d+)?$/.test(value('ttl')) ? Number(value('ttl')) : value('ttl');
    if (value('level')) body.level = Number.isNaN(Number(value('level'))) ? value('level') : Number(value('level'));
    const button = $('#raise');
    button.disabled = true;
    try {
      await post(sinkPath(value('sink'), 'raise'), body);
      showStatus(`raised ${body.name}${body.key ? ` [${body.key}]` : ''} on ${value('sink')}`);
    } catch (err) {
      showStatus(`raise refused: ${err.message}`, true);
      const input = err.field && form.elements[err.field];
      if (input && input.setAttribute) input.setAttribute('aria-invalid', 'true');
    } finally {
      button.disabled = false;
    }
  }

  async function onSignalsClick(event) {
    const button = event.target.closest('button.retract');
    if (!button) return;
    const { sink, name, key } = button.dataset;
    const body = key ? { name, key } : { name };
    button.disabled = true;
    try {
      const result = await post(sinkPath(sink, 'retract'), body);
      showStatus(`retracted ${name}${key ? ` [${key}]` : ''} on ${sink} (${result.retracted})`);
    } catch (err) {
      button.disabled = false;
      showStatus(`retract refused: ${err.message}`, true);
    }
  }

  async function onWorkersClick(event) {
    const button = event.target.closest('button[data-action]');
    if (!button) return;
    const { worker, action } = button.dataset;
    button.disabled = true;
    try {
      const result = await post(`api/workers/${encodeURIComponent(worker)}/${action}`, {});
      showStatus(action === 'requeue' ? `requeued ${result.requeued} of ${worker}'s dead letters` : `${action}d ${worker}`);
    } catch (err) {
      button.disabled = false;
      showStatus(`${action} refused: ${err.message}`, true);
    }
  }

  // ---- start --------------------------------------------------------------------------

  function start() {
    $('#live-toggle').addEventListener('click', toggleLive);
    $('#raise-form').addEventListener('submit', onRaise);
    $('#signals').addEventListener('click', onSignalsClick);
    $('#workers').addEventListener('click', onWorkersClick);
    $('#retries').addEventListener('click', onWorkersClick);
    setInterval(tick, 250);
    connect();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
}());
