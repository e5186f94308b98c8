// Per-worker history charts: queued, running, completed/s and failed/s (and for a worker
// with `retry(...)`, retried/s and dead-lettered/s) over the timeline's window, as small hand-written SVG line charts with the worker's held / limited / paused
// spans shaded behind them. Fed by timeline.js's store (window.bpHistory).
'use strict';

(function () {
  const H = window.bpHistory;
  if (!H) return;
  const SERIES = [
    { key: 'queued', label: 'queued', unit: '' },
    { key: 'active', label: 'running', unit: '' },
    { key: 'completed_per_s', label: 'completed', unit: '/s' },
    { key: 'failed_per_s', label: 'failed', unit: '/s' },
  ];
  const RETRY_SERIES = [
    { key: 'retried_per_s', label: 'retried', unit: '/s' },
    { key: 'dead_lettered_per_s', label: 'dead-lettered', unit: '/s' },
  ];
  // The rows of worker `name`'s chart.
  const seriesOf = (name) => {
    const worker = H.store.workers.find((w) => w.name === name);
    return worker && worker.retry ? SERIES.concat(RETRY_SERIES) : SERIES;
  };
  const ROW_H = 34;
  const LEFT = 110;

  const charts = {
    cards: new Map(), // worker → {root, plot, rows: [{line, tail, value, max}], gates: Map}
    width: 0,
    origin: 0,

    init() {
      this.host = document.getElementById('charts');
      if (!this.host) return false;
      if (typeof ResizeObserver === 'function') {
        new ResizeObserver(() => this.measure()).observe(this.host);
      }
      return true;
    },

    measure() {
      const width = Math.max(320, Math.floor(this.host.clientWidth / (this.host.clientWidth > 900 ? 2 : 1)) - 16);
      if (width === this.width) return;
      this.width = width;
      for (const name of this.cards.keys()) this.redraw(name);
    },

    scale() {
      return (this.width - LEFT - 6) / H.store.windowMs;
    },

    x(ms) {
      return (ms - this.origin) * this.scale();
    },

    card(name) {
      let card = this.cards.get(name);
      if (card) return card;
      if (this.width === 0) this.measure();
      const lines = seriesOf(name);
      const height = lines.length * ROW_H + 4;
      const words = lines.length > SERIES.length ? 'completed, failed, retried and dead-lettered' : 'completed and failed';
      const root = H.svg('svg', { class: 'chart', width: this.width, height, role: 'img', 'aria-label': `${name}: queued, running, ${words} per second over the window` });
      const clip = `ch-clip-${this.cards.size}`;
      root.append(H.svg('defs', {}, [H.svg('clipPath', { id: clip }, [H.svg('rect', { x: LEFT, y: 0, width: this.width - LEFT, height })])]));
      const plot = H.svg('g', { class: 'plot' });
      const gates = H.svg('g', { class: 'gates' });
      plot.append(gates);
      const rows = lines.map((series, i) => {
        const y = i * ROW_H;
        root.append(H.svg('text', { class: 'series-label', x: 4, y: y + 14 }, [document.createTextNode(series.label)]));
        const value = H.svg('text', { class: 'series-value', x: 4, y: y + 28, 'data-series': series.key });
        root.append(value, H.svg('line', { class: 'row-rule', x1: LEFT, x2: this.width, y1: y + ROW_H - 1, y2: y + ROW_H - 1 }));
        const line = H.svg('polyline', { class: `series ${series.key}`, points: '' });
        const tail = H.svg('line', { class: `series tail ${series.key}` });
        plot.append(line, tail);
        return { series, y, line, tail, value, max: 1 };
      });
      root.append(H.svg('g', { 'clip-path': `url(#${clip})` }, [plot]));
      const figure = document.createElement('figure');
      figure.className = 'chart-card';
      figure.dataset.worker = name;
      const caption = document.createElement('figcaption');
      caption.textContent = name;
      figure.append(caption, root);
      this.host.append(figure);
      card = { root, plot, gates, rows, gateRects: new Map() };
      this.cards.set(name, card);
      document.getElementById('no-charts').hidden = true;
      return card;
    },

    reset() {
      for (const card of this.cards.values()) {
        for (const rect of card.gateRects.values()) rect.remove();
        card.gateRects.clear();
        for (const row of card.rows) row.line.setAttribute('points', '');
      }
      this.origin = 0;
    },

    workersChanged() {
      for (const worker of H.store.workers) this.card(worker.name);
    },

    update(changed, marks, sampled) {
      if (this.origin === 0) this.origin = H.now() - H.store.windowMs;
      for (const span of changed) {
        if (span.lane !== 'worker') continue;
        const card = this.card(span.worker);
        let rect = card.gateRects.get(span.id);
        if (!rect) {
          rect = H.svg('rect', { class: `gate ${span.state}`, y: 0, height: card.rows.length * ROW_H, 'data-id': span.id }, [H.svg('title')]);
          card.gates.append(rect);
          card.gateRects.set(span.id, rect);
        }
        rect.dataset.open = String(span.end_ms === null);
        rect.firstChild.textContent = `${H.spanState(span)} from ${H.clock(span.start_ms)}`;
        this.placeGate(rect, span);
      }
      for (const name of sampled) this.redraw(name);
    },

    placeGate(rect, span) {
      if (!span) return;
      const x = this.x(span.start_ms);
      const end = span.end_ms === null ? H.now() : span.end_ms;
      rect.setAttribute('x', x.toFixed(1));
      rect.setAttribute('width', Math.max(1, this.x(end) - x).toFixed(1));
    },

    // One worker's lines, from its samples: each row scaled to its own maximum.
    redraw(name) {
      const card = this.card(name);
      const samples = H.store.samples.get(name);
      for (const [id, rect] of card.gateRects) {
        const span = H.store.spans.get(id);
        if (span) this.placeGate(rect, span);
      }
      if (!samples || samples.at_ms.length === 0) return;
      for (const row of card.rows) {
        const values = samples[row.series.key];
        row.max = Math.max(1, ...values);
        const y = (v) => (row.y + ROW_H - 3 - (v / row.max) * (ROW_H - 8)).toFixed(1);
        row.line.setAttribute('points', samples.at_ms.map((at, i) => `${this.x(at).toFixed(1)},${y(values[i])}`).join(' '));
        const last = values[values.length - 1];
        row.tail.setAttribute('x1', this.x(samples.at_ms[samples.at_ms.length - 1]).toFixed(1));
        row.tail.setAttribute('y1', y(last));
        row.tail.setAttribute('y2', y(last));
        const text = `${Number.isInteger(last) ? last : last.toFixed(2)}${row.series.unit} (max ${Number.isInteger(row.max) ? row.max : row.max.toFixed(2)})`;
        if (row.value.textContent !== text) row.value.textContent = text;
      }
    },

    tick(gone) {
      if (this.origin === 0) return;
      const t = H.now();
      const shift = LEFT - this.x(t - H.store.windowMs);
      for (const card of this.cards.values()) {
        card.plot.setAttribute('transform', `translate(${shift.toFixed(1)},0)`);
        for (const id of gone) {
          const rect = card.gateRects.get(id);
          if (rect) rect.remove();
          card.gateRects.delete(id);
        }
        for (const [id, rect] of card.gateRects) {
          if (rect.dataset.open === 'true') this.placeGate(rect, H.store.spans.get(id));
        }
        for (const row of card.rows) row.tail.setAttribute('x2', this.x(t).toFixed(1));
      }
    },
  };

  function start() {
    if (charts.init()) H.views.push(charts);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
}());
