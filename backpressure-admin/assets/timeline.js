// The history of the dashboard: a store fed by api/history and the stream's `history`
// events (whole, then increments), the signal timeline (hand-written SVG: one lane per
// signal entry, under it one lane per worker of its sink) and its table view. Plain
// JavaScript, no build step. Charts live in charts.js; app.js feeds the store.
'use strict';

(function () {
  const NS = ['http:', '', 'www.w3.org', '2000', 'svg'].join('/');
  const LABEL_W = 250;
  const LANE_H = 24;
  const BAR_H = 16;
  const AXIS_H = 20;

  // Spans and policy changes by id, samples by worker; times in server milliseconds.
  const store = {
    windowMs: 15 * 60 * 1000,
    rev: 0,
    spans: new Map(),
    marks: new Map(),
    samples: new Map(),
    workers: [], // [{name, sink, retry}] from the overview (retry: whether it retries)
    // performance.now() and the server clock at the last answer.
    base: { local: 0, server: 0 },
    live: true,
  };
  const views = [];

  function now() {
    return store.base.server + (performance.now() - store.base.local);
  }

  function svg(tag, attrs, children) {
    const node = document.createElementNS(NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value !== undefined && value !== null) node.setAttribute(key, String(value));
    }
    for (const child of children || []) node.append(child);
    return node;
  }

  function pad(n) {
    return String(n).padStart(2, '0');
  }

  function clock(ms) {
    const d = new Date(ms);
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function duration(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return `${s}s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m}m ${pad(s % 60)}s`;
    return `${Math.floor(m / 60)}h ${pad(m % 60)}m`;
  }

  // A change's reason ("bad_window", {"breaker": "probe_failed"}) in words.
  function reasonText(reason) {
    const words = typeof reason === 'string' ? reason : Object.values(reason || {})[0];
    return String(words).replace(/_/g, ' ');
  }

  // A level (in thousandths) as a percentage to a tenth: 0.001 is 0.1%, never 0%.
  function percent(level) {
    return `${Number((level * 100).toFixed(1))}%`;
  }

  function levelText(level) {
    return level === 0 ? 'stop' : percent(level);
  }

  // What a span is, in words (the bar's label, its tooltip and the table agree).
  function spanState(span) {
    if (span.lane === 'signal') {
      const phase = span.phase === 'half_open' ? 'half-open' : span.phase;
      const parts = [levelText(span.level)];
      if (phase) parts.push(phase);
      if (span.policy) parts.push(`${span.policy} verdict`);
      return parts.join(' · ');
    }
    let text = span.state;
    if (span.state === 'limited' && span.level !== null) text += ` ${percent(span.level)}`;
    if (span.signals.length) {
      const more = span.signals_total - span.signals.length;
      text += ` by ${span.signals.join(', ')}${more > 0 ? ` +${more}` : ''}`;
    }
    return text;
  }

  function laneOf(span) {
    if (span.lane === 'signal') return { id: `s|${span.sink}|${span.name}|${span.key || ''}`, sink: span.sink };
    const worker = store.workers.find((w) => w.name === span.worker);
    return { id: `w|${span.worker}`, sink: worker ? worker.sink : '' };
  }

  function laneTitle(span) {
    return span.lane === 'signal'
      ? `${span.name}${span.key ? ` [${span.key}]` : ''}`
      : span.worker;
  }

  function describe(span) {
    const end = span.end_ms === null ? 'now (still active)' : clock(span.end_ms);
    const took = (span.end_ms === null ? now() : span.end_ms) - span.start_ms;
    const where = span.lane === 'signal' ? ` on ${span.sink}` : '';
    const ended = span.ended ? `, ${span.ended.replace('_', ' ')}` : '';
    return `${laneTitle(span)}${where}: ${spanState(span)}, from ${clock(span.start_ms)} to ${end} (${duration(took)}${ended})`;
  }

  // Shortens a lane's label to its column with an ellipsis (its title keeps every word).
  function fitLabel(label, words, width) {
    const text = label.firstChild;
    if (typeof label.getComputedTextLength !== 'function' || label.getComputedTextLength() <= width) return;
    let fits = 0;
    let over = words.length;
    while (over - fits > 1) {
      const mid = Math.floor((fits + over) / 2);
      text.data = `${words.slice(0, mid)}…`;
      if (label.getComputedTextLength() <= width) fits = mid;
      else over = mid;
    }
    text.data = `${words.slice(0, fits)}…`;
  }

  // ---- the store ------------------------------------------------------------------------

  // Applies a whole history (since 0) or an increment.
  function apply(data) {
    if (!store.live) return;
    if (data.since === 0) {
      store.spans.clear();
      store.marks.clear();
      store.samples.clear();
      for (const view of views) view.reset();
    }
    if (store.windowMs !== data.window_ms || data.since === 0) {
      const label = document.getElementById('timeline-window');
      const minutes = Math.round(data.window_ms / 60000);
      if (label) label.textContent = minutes === 1 ? 'last minute' : `last ${minutes} minutes`;
    }
    store.windowMs = data.window_ms;
    store.base = { local: performance.now(), server: data.now_ms };
    // A whole history restarts the count (another router's may be lower).
    store.rev = data.since === 0 ? data.rev : Math.max(store.rev, data.rev);
    const changed = [];
    for (const span of data.spans) {
      const known = store.spans.get(span.id);
      if (known && known.rev >= span.rev) continue;
      store.spans.set(span.id, span);
      changed.push(span);
    }
    const marks = data.policy_changes.filter((m) => !store.marks.has(m.id));
    for (const mark of marks) store.marks.set(mark.id, mark);
    const sampled = [];
    for (const worker of data.workers) {
      if (worker.at_ms.length === 0) continue;
      const mine = store.samples.get(worker.name) || { at_ms: [], queued: [], active: [], limit: [], completed_per_s: [], failed_per_s: [], retried_per_s: [], dead_lettered_per_s: [], deferred: [] };
      const last = mine.at_ms.length ? mine.at_ms[mine.at_ms.length - 1] : -Infinity;
      worker.at_ms.forEach((at, i) => {
        if (at <= last) return;
        for (const key of Object.keys(mine)) mine[key].push(worker[key][i]);
      });
      store.samples.set(worker.name, mine);
      sampled.push(worker.name);
    }
    for (const view of views) view.update(changed, marks, sampled);
    tick();
  }

  // Drops what left the window, then lets each view move on.
  function tick() {
    if (!store.live || store.base.local === 0) return;
    const from = now() - store.windowMs;
    const gone = [];
    for (const [id, span] of store.spans) {
      if (span.end_ms !== null && span.end_ms < from) {
        store.spans.delete(id);
        gone.push(id);
      }
    }
    const goneMarks = [];
    for (const [id, mark] of store.marks) {
      if (mark.at_ms < from) {
        store.marks.delete(id);
        goneMarks.push(id);
      }
    }
    for (const samples of store.samples.values()) {
      let drop = 0;
      while (drop < samples.at_ms.length && samples.at_ms[drop] < from - 1000) drop += 1;
      if (drop > 0) for (const key of Object.keys(samples)) samples[key].splice(0, drop);
    }
    for (const view of views) view.tick(gone, goneMarks);
  }

  // ---- the timeline ---------------------------------------------------------------------

  const timeline = {
    root: null,
    plot: null,
    lanes: new Map(), // lane id → {group, label, sink, order, base}
    bars: new Map(), // span id → g
    marks: new Map(), // mark id → path
    width: 0,
    origin: 0, // server ms at x = 0 of the plot group

    init() {
      const wrap = document.getElementById('timeline');
      if (!wrap) return false;
      this.wrap = wrap;
      this.root = svg('svg', { class: 'timeline', role: 'group', 'aria-label': 'Signal timeline: one lane per signal, one per worker' });
      const defs = svg('defs', {}, [
        svg('pattern', { id: 'tl-hatch', width: 6, height: 6, patternUnits: 'userSpaceOnUse', patternTransform: 'rotate(45)' }, [
          svg('rect', { width: 6, height: 6, class: 'hatch-bg' }),
          svg('line', { x1: 0, y1: 0, x2: 0, y2: 6, class: 'hatch-line' }),
        ]),
        svg('clipPath', { id: 'tl-clip' }, [this.clip = svg('rect', { x: LABEL_W, y: 0, height: 0, width: 0 })]),
      ]);
      this.axis = svg('g', { class: 'axis', 'aria-hidden': 'true' });
      this.labels = svg('g', { class: 'labels' });
      this.plot = svg('g', { class: 'plot' });
      this.nowLine = svg('line', { class: 'now-line', 'aria-hidden': 'true' });
      this.root.append(defs, this.axis, this.labels, svg('g', { 'clip-path': 'url(#tl-clip)' }, [this.plot]), this.nowLine);
      wrap.append(this.root);
      this.tip = document.getElementById('tl-tip');
      this.root.addEventListener('focusin', (e) => this.showTip(e.target.closest('.bar')));
      this.root.addEventListener('focusout', () => this.showTip(null));
      this.root.addEventListener('mouseover', (e) => this.showTip(e.target.closest('.bar')));
      this.root.addEventListener('mouseleave', () => this.showTip(null));
      this.measure();
      if (typeof ResizeObserver === 'function') new ResizeObserver(() => this.measure()).observe(wrap);
      return true;
    },

    reset() {
      for (const bar of this.bars.values()) bar.remove();
      for (const mark of this.marks.values()) mark.remove();
      for (const lane of this.lanes.values()) { lane.group.remove(); lane.label.remove(); }
      this.bars.clear();
      this.marks.clear();
      this.lanes.clear();
      this.origin = 0;
      this.layoutLanes(); // the workers' lanes again
    },

    scale() {
      return (this.width - LABEL_W - 8) / store.windowMs;
    },

    measure() {
      const width = Math.max(480, this.wrap.clientWidth);
      if (width === this.width) return;
      this.width = width;
      this.root.setAttribute('width', width);
      for (const [id, bar] of this.bars) this.place(bar, store.spans.get(id));
      for (const [id, mark] of this.marks) this.placeMark(mark, store.marks.get(id));
      this.layoutLanes();
      this.tick([], []);
    },

    x(ms) {
      return (ms - this.origin) * this.scale();
    },

    lane(span) {
      const { id, sink } = laneOf(span);
      let lane = this.lanes.get(id);
      if (lane) return lane;
      const kind = span.lane === 'signal' ? 'signal' : 'worker';
      const group = svg('g', { class: `lane ${kind}`, 'data-lane': id });
      const base = svg('rect', { class: `lane-bg ${kind}`, x: -1e6, width: 2e6, y: (LANE_H - BAR_H) / 2 + (kind === 'worker' ? 5 : 0), height: kind === 'worker' ? BAR_H - 10 : BAR_H });
      group.append(base);
      const x = kind === 'worker' ? 18 : 6;
      const label = svg('text', { class: `lane-label ${kind}`, x });
      const words = kind === 'worker' ? `${laneTitle(span)} (worker)` : `${laneTitle(span)} · ${span.sink}`;
      label.append(document.createTextNode(words));
      const title = svg('title');
      title.textContent = kind === 'worker' ? `worker ${span.worker}: held / limited / paused / rate / permits; running otherwise` : `signal ${laneTitle(span)} on sink ${span.sink}`;
      label.append(title);
      lane = { id, sink, kind, group, label, first: span.start_ms };
      this.lanes.set(id, lane);
      this.plot.append(group);
      this.labels.append(label);
      fitLabel(label, words, LABEL_W - x - 8);
      this.layoutLanes();
      return lane;
    },

    // Lanes by sink; in a sink its signals (first raised first), then its workers.
    layoutLanes() {
      for (const worker of store.workers) this.ensureWorkerLane(worker);
      const sorted = Array.from(this.lanes.values()).sort((a, b) =>
        a.sink.localeCompare(b.sink) || (a.kind === b.kind ? 0 : a.kind === 'signal' ? -1 : 1) ||
        (a.kind === 'signal' ? a.first - b.first : a.id.localeCompare(b.id)));
      sorted.forEach((lane, i) => {
        const y = AXIS_H + i * LANE_H;
        if (lane.y === y) return;
        lane.y = y;
        lane.group.setAttribute('transform', `translate(0,${y})`);
        lane.label.setAttribute('y', y + LANE_H / 2 + 4);
      });
      const height = AXIS_H + sorted.length * LANE_H + 4;
      this.root.setAttribute('height', height);
      this.clip.setAttribute('height', height);
      this.clip.setAttribute('width', Math.max(0, this.width - LABEL_W));
      this.nowLine.setAttribute('y1', AXIS_H - 4);
      this.nowLine.setAttribute('y2', height);
      document.getElementById('no-timeline').hidden = Array.from(this.lanes.values()).some((l) => l.kind === 'signal');
    },

    ensureWorkerLane(worker) {
      if (this.lanes.has(`w|${worker.name}`)) return;
      this.lane({ lane: 'worker', worker: worker.name, start_ms: 0 });
    },

    update(changed, marks) {
      if (!this.root) return;
      if (this.origin === 0) this.origin = now() - store.windowMs;
      for (const span of changed) {
        let bar = this.bars.get(span.id);
        if (!bar) {
          bar = svg('g', { class: `bar ${span.lane}`, tabindex: 0, role: 'img', 'data-id': span.id });
          bar.append(svg('rect', { y: (LANE_H - BAR_H) / 2, height: BAR_H, rx: 2 }), svg('text', { y: LANE_H / 2 + 4 }), svg('title'));
          this.lane(span).group.append(bar);
          this.bars.set(span.id, bar);
        }
        this.dress(bar, span);
        this.place(bar, span);
      }
      for (const mark of marks) {
        const lane = this.lanes.get(`s|${mark.sink}|${mark.signal}|${mark.worker || ''}`);
        if (!lane) continue;
        const node = svg('path', { class: 'mark', 'data-id': mark.id, d: 'M0,-5 L5,0 L0,5 L-5,0 Z' }, [svg('title')]);
        node.firstChild.textContent = `${clock(mark.at_ms)} ${mark.policy} of ${mark.worker}: ${mark.text} (${reasonText(mark.reason)})`;
        lane.group.append(node);
        this.marks.set(mark.id, node);
        this.placeMark(node, mark);
      }
    },

    // What does not move: classes, data attributes, words.
    dress(bar, span) {
      const d = bar.dataset;
      d.lane = span.lane;
      d.startMs = String(span.start_ms);
      d.endMs = span.end_ms === null ? '' : String(span.end_ms);
      d.open = String(span.end_ms === null);
      if (span.lane === 'signal') {
        d.name = span.name;
        d.key = span.key || '';
        d.level = String(span.level);
        d.phase = span.phase || '';
        d.policy = span.policy || '';
        d.ended = span.ended || '';
      } else {
        d.worker = span.worker;
        d.state = span.state;
      }
      const rect = bar.firstChild;
      rect.setAttribute('fill-opacity', span.lane === 'signal' ? String(1 - 0.6 * span.level) : '1');
      bar.children[1].textContent = span.lane === 'signal'
        ? `${span.policy ? '◆ ' : ''}${span.phase === 'half_open' ? 'half-open' : span.phase || levelText(span.level)}`
        : span.state;
      const words = describe(span);
      bar.setAttribute('aria-label', words);
      bar.lastChild.textContent = words;
    },

    place(bar, span) {
      if (!span) return;
      const x = this.x(span.start_ms);
      const end = span.end_ms === null ? now() : span.end_ms;
      const w = Math.max(2, this.x(end) - x);
      const rect = bar.firstChild;
      rect.setAttribute('x', x.toFixed(1));
      rect.setAttribute('width', w.toFixed(1));
      const text = bar.children[1];
      text.setAttribute('x', (x + 4).toFixed(1));
      text.setAttribute('display', w > 44 ? 'inline' : 'none');
    },

    placeMark(node, mark) {
      if (mark) node.setAttribute('transform', `translate(${this.x(mark.at_ms).toFixed(1)},${LANE_H / 2})`);
    },

    tick(gone, goneMarks) {
      if (!this.root || this.origin === 0) return;
      for (const id of gone) {
        const bar = this.bars.get(id);
        if (bar) bar.remove();
        this.bars.delete(id);
      }
      for (const id of goneMarks) {
        const mark = this.marks.get(id);
        if (mark) mark.remove();
        this.marks.delete(id);
      }
      const t = now();
      const shift = LABEL_W - this.x(t - store.windowMs);
      this.plot.setAttribute('transform', `translate(${shift.toFixed(1)},0)`);
      for (const [id, bar] of this.bars) {
        if (bar.dataset.open === 'true') this.place(bar, store.spans.get(id));
      }
      this.nowLine.setAttribute('x1', this.width - 8);
      this.nowLine.setAttribute('x2', this.width - 8);
      this.drawAxis(t);
    },

    // A tick every minute (every five past 20 minutes), labelled with its time.
    drawAxis(t) {
      const step = store.windowMs > 20 * 60000 ? 5 * 60000 : 60000;
      const from = t - store.windowMs;
      const ticks = [];
      for (let at = Math.ceil(from / step) * step; at <= t; at += step) ticks.push(at);
      while (this.axis.children.length < ticks.length) {
        this.axis.append(svg('g', {}, [svg('line', { y1: AXIS_H - 4, y2: 2000 }), svg('text', { y: AXIS_H - 7 })]));
      }
      Array.from(this.axis.children).forEach((tickNode, i) => {
        if (i >= ticks.length) { tickNode.setAttribute('display', 'none'); return; }
        const x = LABEL_W + this.x(ticks[i]) - this.x(from);
        tickNode.setAttribute('display', 'inline');
        tickNode.setAttribute('transform', `translate(${x.toFixed(1)},0)`);
        const label = clock(ticks[i]).slice(0, 5);
        if (tickNode.lastChild.textContent !== label) tickNode.lastChild.textContent = label;
      });
    },

    showTip(bar) {
      if (!this.tip) return;
      if (!bar) { this.tip.hidden = true; return; }
      const span = store.spans.get(Number(bar.dataset.id));
      if (!span) return;
      this.tip.textContent = describe(span);
      const box = bar.getBoundingClientRect();
      const host = this.wrap.getBoundingClientRect();
      this.tip.style.left = `${Math.max(0, Math.min(box.left - host.left, host.width - 320))}px`;
      this.tip.style.top = `${box.bottom - host.top + 4}px`;
      this.tip.hidden = false;
    },
  };

  // ---- the table view -------------------------------------------------------------------

  const table = {
    rows: new Map(),
    init() {
      this.body = document.querySelector('#timeline-table tbody');
      const toggle = document.getElementById('timeline-as-table');
      const wrap = document.getElementById('timeline-table-wrap');
      toggle.addEventListener('click', () => {
        const shown = toggle.getAttribute('aria-pressed') !== 'true';
        toggle.setAttribute('aria-pressed', String(shown));
        toggle.textContent = shown ? 'Hide the table' : 'Show as a table';
        wrap.hidden = !shown;
      });
      return Boolean(this.body);
    },
    reset() {
      this.body.replaceChildren();
      this.rows.clear();
    },
    update(changed, marks) {
      for (const span of changed) this.row(`s${span.id}`, span.start_ms, [
        span.lane === 'signal' ? `${laneTitle(span)} · ${span.sink}` : `${span.worker} (worker)`,
        spanState(span), clock(span.start_ms),
        span.end_ms === null ? 'active' : clock(span.end_ms),
        span.end_ms === null ? '' : duration(span.end_ms - span.start_ms),
      ], span);
      for (const mark of marks) this.row(`m${mark.id}`, mark.at_ms, [
        `${mark.signal} [${mark.worker}] · ${mark.sink}`,
        `${mark.policy}: ${mark.text}`, clock(mark.at_ms), '', '',
      ], null);
    },
    row(id, startMs, cells, span) {
      let row = this.rows.get(id);
      if (!row) {
        row = document.createElement('tr');
        row.dataset.id = id;
        for (let i = 0; i < cells.length; i += 1) row.append(document.createElement('td'));
        // Newest first: before the first row that started earlier.
        const after = Array.from(this.body.children).find((r) => Number(r.dataset.start) < startMs);
        this.body.insertBefore(row, after || null);
        this.rows.set(id, row);
      }
      row.dataset.start = String(startMs);
      if (span) row.dataset.open = String(span.end_ms === null);
      cells.forEach((text, i) => {
        if (row.children[i].textContent !== text) row.children[i].textContent = text;
      });
    },
    tick(gone, goneMarks) {
      for (const id of gone.map((g) => `s${g}`).concat(goneMarks.map((g) => `m${g}`))) {
        const row = this.rows.get(id);
        if (row) row.remove();
        this.rows.delete(id);
      }
    },
  };

  function setWorkers(workers) {
    const key = (w) => `${w.name}@${w.sink}${w.retry ? ' retry' : ''}`;
    const names = workers.map(key).join('\n');
    if (names === store.workers.map(key).join('\n')) return;
    store.workers = workers.map((w) => ({ name: w.name, sink: w.sink, retry: Boolean(w.retry) }));
    if (timeline.root) timeline.layoutLanes();
    for (const view of views) if (view.workersChanged) view.workersChanged();
  }

  function start() {
    if (timeline.init()) views.push(timeline);
    if (table.init()) views.push(table);
    setInterval(tick, 500);
  }

  window.bpHistory = {
    store, views, apply, tick, now, setWorkers, svg, clock, duration, spanState, percent,
    setLive(live) { store.live = live; },
    rev() { return store.rev; },
    laneHeight: LANE_H, labelWidth: LABEL_W,
  };

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
}());
