// The dashboard's retries and dead letters: per worker with `retry(...)`, its retry, the
// retries waiting and done, its dead letters (kept, evicted) and their last errors, with a
// "requeue" control (hidden in read-only mode). app.js calls the factory with its DOM
// helpers and renders through it on every overview; requeueing is app.js's, like every
// change. An error message is user data: it only ever goes in as text.
'use strict';

window.bpRetries = function retries({ el, syncRows }) {
  const $ = (selector) => document.querySelector(selector);

  // "3 attempts · 1s ×2 up to 1m" from the worker's `retry`.
  function retryWords(retry) {
    const attempts = `${retry.attempts} attempt${retry.attempts === 1 ? '' : 's'}`;
    if (retry.attempts <= 1) return attempts;
    const jitter = retry.jitter > 0 ? ` ±${Math.round(retry.jitter * 100)}%` : '';
    return `${attempts} · ${retry.backoff} ×${retry.multiplier} up to ${retry.max_backoff}${jitter}`;
  }

  function workerRow(worker, controls) {
    const s = worker.stats;
    const dead = worker.dead_letters;
    const control = el('td', { className: 'requeue-control' });
    if (controls && controls.requeue) {
      control.append(el('button', {
        type: 'button', className: 'requeue', text: 'Requeue',
        disabled: dead.count === 0 ? '' : null,
        title: 'Run the kept dead letters again, with a fresh set of attempts',
        dataset: { worker: worker.name, action: 'requeue' },
      }));
    }
    return el('tr', { dataset: { worker: worker.name } }, [
      el('td', null, [el('strong', { text: worker.name })]),
      el('td', { className: 'retry', text: retryWords(worker.retry) }),
      el('td', { className: 'num', dataset: { field: 'retry_waiting' }, text: s.retry_waiting }),
      el('td', { className: 'num', dataset: { field: 'retried' }, text: s.retried }),
      el('td', { className: 'num', dataset: { field: 'timed_out' }, text: s.timed_out }),
      el('td', { className: 'num', dataset: { field: 'dead_lettered' }, text: s.dead_lettered }),
      el('td', {
        className: dead.count > 0 ? 'num alert' : 'num',
        dataset: { field: 'dead_letters' },
        text: dead.count,
      }),
      el('td', { className: 'num', dataset: { field: 'evicted' }, text: dead.evicted }),
      control,
    ]);
  }

  function errorRow(letter) {
    return el('tr', { dataset: { worker: letter.worker, id: String(letter.id) } }, [
      el('td', { text: letter.worker }),
      el('td', { className: 'num', text: letter.id }),
      el('td', { className: 'num', text: letter.attempts }),
      el('td', null, [letter.permanent ? el('span', { className: 'badge permanent', text: 'permanent' }) : null]),
      el('td', { className: 'error-text', text: letter.error }),
    ]);
  }

  function render(workers, controls) {
    const retrying = workers.filter((worker) => worker.retry);
    syncRows($('#retries tbody'), retrying, (worker) => worker.name, (worker) => workerRow(worker, controls));
    $('#no-retries').hidden = retrying.length > 0;
    // Each worker's newest first.
    const letters = retrying.flatMap((worker) => worker.dead_letters.last.slice().reverse()
      .map((letter) => ({ ...letter, worker: worker.name })));
    syncRows($('#dead-letters tbody'), letters, (l) => JSON.stringify([l.worker, l.id]), errorRow);
    $('#dead-letters').hidden = letters.length === 0;
  }

  return { render };
};
