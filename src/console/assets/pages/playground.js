// The playground: edit a rule in the browser and ask the engine what it would do, without
// saving or sending anything: check it and run its inline tests (`POST /rules/validate`), try
// it on a stored event, and backtest it over a chosen period with the diff against what
// happened (`POST /backtest`). Both calls take the files in the request; nothing is written.

import { api, seg } from '../api.js';
import { badge, field, h, json, link, problem, replace, section, table, time } from '../dom.js';
import { highlight } from '../yaml.js';

/** The request bodies, in one place (the API's shapes). */
export const bodies = {
  validate: (files) => ({ files }),
  backtest: (files, from, to) => ({ from, to, rules: { files } }),
};

const BLANK = `version: 1
id: my_rule
on: [promise_to_pay.expired]
when: event.amount.value > 100
actions:
  - type: emit
    event_type: my_rule.fired
`;

export async function render(main, { query }) {
  const ruleId = query.get('rule');
  let file = 'playground.yaml';
  let text = BLANK;
  let loadProblem = null;
  // Files are named as in the rules folder (`escalate.yaml`), not by their path on the server.
  const status = await api('/rules/status').catch(() => ({ dir: '' }));
  const relative = (path) => {
    const dir = String(status.dir || '').replace(/\/+$/, '');
    if (dir && path.startsWith(`${dir}/`)) return path.slice(dir.length + 1);
    return path.split('/').pop();
  };
  if (ruleId) {
    try {
      const r = await api(`/rules/${seg(ruleId)}`);
      file = relative(r.file);
      text = r.source || text;
    } catch (e) {
      loadProblem = e;
    }
  }
  const editor = h('textarea', { id: 'rule-text', name: 'rule', rows: Math.min(30, Math.max(10, text.split('\n').length + 2)), spellcheck: 'false', autocapitalize: 'off', 'aria-describedby': 'rule-help' }, text);
  const fileInput = h('input', { id: 'rule-file', name: 'file', value: file, spellcheck: 'false' });
  const withOthers = h('input', { type: 'checkbox', id: 'with-others', checked: true });
  const preview = h('div', { class: 'preview' }, highlight(text));
  editor.addEventListener('input', () => replace(preview, highlight(editor.value)));

  const now = new Date();
  const monthAgo = new Date(now.getTime() - 30 * 24 * 3600 * 1000);
  const from = h('input', { type: 'datetime-local', id: 'backtest-from', value: local(monthAgo), step: 1 });
  const to = h('input', { type: 'datetime-local', id: 'backtest-to', value: local(now), step: 1 });
  const eventId = h('input', { id: 'try-event', value: query.get('event') || '', placeholder: 'evt_…', spellcheck: 'false' });
  const out = h('div', { id: 'playground-result', 'aria-live': 'polite' });

  const busy = (fn) => async (e) => {
    e.preventDefault();
    const button = e.submitter || e.currentTarget;
    if (button && 'disabled' in button) button.disabled = true;
    replace(out, h('p', { class: 'loading' }, 'Working…'));
    try {
      replace(out, await fn());
      out.scrollIntoView({ block: 'nearest' });
    } catch (err) {
      replace(out, problem(err));
    } finally {
      if (button && 'disabled' in button) button.disabled = false;
    }
  };

  const files = async () => {
    const edited = { [fileInput.value.trim() || 'playground.yaml']: editor.value };
    if (!withOthers.checked) return edited;
    // The other rules in force, as their files say, so the diff is about this change alone.
    const set = await api('/rules');
    const all = {};
    const others = [...new Set(set.rules.map((r) => r.file).filter((f) => !(relative(f) in edited)))];
    await Promise.all(others.map(async (f) => {
      const r = set.rules.find((x) => x.file === f);
      const one = await api(`/rules/${seg(r.id)}`);
      if (one.source) all[relative(f)] = one.source;
    }));
    return { ...all, ...edited };
  };

  replace(main,
    h('h1', {}, 'Playground'),
    h('p', { id: 'rule-help' }, 'Edit a rule and ask what it would do. Nothing is saved and nothing is sent to anyone: ',
      'to put a change in force, change the file in the rules folder.'),
    loadProblem && problem(loadProblem),
    section('Rule',
      field('File name', fileInput),
      field('Rule (YAML)', editor),
      h('label', { class: 'check' }, withOthers, ' Run it with the other rules in force (so the diff shows this change only)'),
      h('details', { open: true }, h('summary', {}, 'Highlighted'), preview),
      h('div', { class: 'buttons' },
        h('button', { type: 'button', id: 'check', class: 'primary', on: { click: busy(async () => checked(await api('/rules/validate', { method: 'POST', body: bodies.validate(await files()) }))) } }, 'Check and run tests'))),
    section('Try on a stored event',
      h('form', { class: 'search', on: { submit: busy(() => tryEvent(eventId.value.trim(), files)) } },
        field('Event id', eventId), h('button', { type: 'submit', id: 'try' }, 'Try'))),
    section('Backtest',
      h('form', { class: 'search', on: { submit: busy(async () => backtest(await api('/backtest', { method: 'POST', body: bodies.backtest(await files(), iso(from.value), iso(to.value)) }), fileInput.value, editor.value)) } },
        field('From', from), field('To', to), h('button', { type: 'submit', id: 'backtest', class: 'primary' }, 'Run backtest'))),
    out);
}

function local(d) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function iso(localValue) {
  const d = new Date(localValue);
  if (Number.isNaN(d.getTime())) throw new Error(`'${localValue}' is not a time`);
  return d.toISOString();
}

/** What `validate` answered: its problems and test results, then the whole answer. */
function checked(answer) {
  const problems = answer.problems || answer.errors || [];
  const tests = answer.tests || [];
  const ok = answer.ok ?? answer.valid ?? problems.length === 0;
  const failing = tests.filter((t) => t.passed === false).length;
  let verdict = ok ? 'The rule is valid.' : 'The rule has problems:';
  if (ok && failing > 0) verdict = `The rule is valid, but ${failing} of its inline tests fail: the engine refuses a rules folder whose tests fail.`;
  return section('Check',
    h('p', { class: ok && failing === 0 ? 'ok' : 'problem' }, verdict),
    problems.length > 0 && h('ul', {}, problems.map((p) => h('li', {}, h('code', {}, typeof p === 'string' ? p : JSON.stringify(p))))),
    tests.length > 0 && table([
      ['Test', (t) => t.name || t.test || ''],
      ['Result', (t) => badge(t.passed === undefined ? t.outcome || t.result : (t.passed ? 'passed' : 'failed'))],
      ['Detail', (t) => t.message || t.error || ''],
    ], tests),
    h('details', {}, h('summary', {}, 'Whole answer'), json(answer)));
}

/** A backtest over the instant the event was received: what these rules would do with it. */
async function tryEvent(id, files) {
  if (!id) throw new Error('give an event id');
  const event = await api(`/events/${seg(id)}`);
  const at = new Date(event.received_at);
  const report = await api('/backtest', {
    method: 'POST',
    body: bodies.backtest(await files(), at.toISOString(), new Date(at.getTime() + 1).toISOString()),
  });
  const firings = (report.firings || []).filter((f) => f.event === id);
  return section(`Tried on ${event.type}`,
    h('p', {}, link(`#/events/${seg(id)}`, id), ' received ', time(event.received_at)),
    table([
      ['Rule', (f) => f.rule],
      ['Would plan', (f) => (f.actions || []).map((a) => a.type).join(', ')],
      ['At', (f) => time(f.at)],
    ], firings, 'No rule would fire for this event.'),
    diffTable(report.rules || []));
}

/** The backtest's report: per rule, fired now and then, and the events on either side only. */
function backtest(report, file, text) {
  const idLine = /^id:\s*(\S+)/m.exec(text);
  const edited = idLine ? idLine[1].replace(/^['"]|['"]$/g, '') : null;
  const rows = report.rules || [];
  const changed = rows.filter((r) => (r.only_now || []).length || (r.only_then || []).length);
  return section('Backtest',
    h('p', {}, `${report.events} events from `, time(report.from), ' to ', time(report.to), '. ',
      changed.length === 0 ? 'These rules would have done exactly what was done.' : `${changed.length} rule(s) would have acted differently.`),
    diffTable(rows, edited),
    (report.firings || []).length > 0 && h('details', {}, h('summary', {}, `What would fire (${report.firings.length})`),
      table([
        ['At', (f) => time(f.at)],
        ['Rule', (f) => f.rule],
        ['Event', (f) => (f.event.startsWith('evt_') ? link(`#/events/${seg(f.event)}`, f.event) : f.event)],
        ['Actions', (f) => (f.actions || []).map((a) => a.type).join(', ')],
      ], report.firings.slice(0, 200))),
    h('details', {}, h('summary', {}, 'Whole answer'), json(report)));
}

function diffTable(rows, edited) {
  const ids = (list) => (list || []).map((id, i) => [i ? ', ' : '', id.startsWith('evt_') ? link(`#/events/${seg(id)}`, id) : id]);
  return h('div', { class: 'diff' }, table([
    ['Rule', (r) => (r.rule === edited ? h('strong', {}, r.rule, ' (edited)') : r.rule)],
    ['Now', (r) => String(r.now ?? 0)],
    ['Then', (r) => String(r.then ?? 0)],
    ['Both', (r) => String(r.both ?? 0)],
    ['Fires now, did not then', (r) => h('span', { class: 'added' }, ids(r.only_now))],
    ['Fired then, would not now', (r) => h('span', { class: 'removed' }, ids(r.only_then))],
  ], rows, 'No rule fired in the period, then or now.'));
}
