// Actions: the outbox by state (pending, in flight, delivered, dead, cancelled); one action
// with every attempt; Retry (a dead action) and Cancel (a pending one) for operators. Readers
// see the buttons disabled; the API refuses them anyway (403), and the page says so.

import { api, seg } from '../api.js';
import { badge, field, h, json, link, problem, replace, section, table, time } from '../dom.js';

const STATES = ['pending', 'in_flight', 'delivered', 'dead', 'cancelled'];

/** What the last Retry or Cancel answered, shown by the page drawn after it. */
let flash = null;

function takeFlash(notice) {
  if (flash) replace(notice, h('p', { class: 'ok', role: 'status' }, flash));
  flash = null;
}

export async function render(main, { args, query }, ctx) {
  if (args[0]) return one(main, args[0], ctx);
  return list(main, query, ctx);
}

async function list(main, query, ctx) {
  const status = query.get('status') || '';
  const rule = query.get('rule') || '';
  const ruleInput = h('input', { id: 'actions-rule', name: 'rule', value: rule, spellcheck: 'false', placeholder: 'rule id' });
  const tabs = h('nav', { class: 'tabs', 'aria-label': 'Action states' },
    ['', ...STATES].map((s) => h('a', {
      href: `#/actions?${new URLSearchParams(Object.entries({ status: s, rule }).filter(([, v]) => v))}`,
      'aria-current': s === status ? 'page' : null,
    }, s || 'all')));
  const form = h('form', { class: 'search', on: { submit: (e) => { e.preventDefault(); ctx.go('actions', [], { status, rule: ruleInput.value.trim() }); } } },
    field('Rule', ruleInput), h('button', { type: 'submit' }, 'Filter'));
  const results = h('div', {});
  const notice = h('div', { 'aria-live': 'polite' });
  replace(main, h('h1', {}, status ? `Actions: ${status}` : 'Actions'), tabs, roleNote(ctx.me), form, notice, results);
  takeFlash(notice);
  const data = await api('/actions', { query: { status, rule, limit: 100 } });
  const refresh = () => ctx.go('actions', [], { status, rule });
  replace(results, table([
    ['Action', (a) => h('a', { href: `#/actions/${seg(a.id)}`, class: 'id' }, a.id)],
    ['Kind', (a) => a.kind],
    ['Target', (a) => a.target],
    ['Rule', (a) => link(`#/rules/${seg(a.rule_id)}`, a.rule_id)],
    ['Event', (a) => h('a', { href: `#/events/${seg(a.event_id)}`, class: 'id' }, a.event_id)],
    ['State', (a) => badge(a.status)],
    ['Attempts', (a) => String(a.attempts)],
    ['Updated', (a) => time(a.updated_at)],
    ['Last error', (a) => a.last_error || ''],
    ['', (a) => controls(a, ctx.me, notice, refresh)],
  ], data.actions, 'No actions in this state.'));
}

/** For readers: why Retry and Cancel are disabled. */
function roleNote(me) {
  if (me && me.may && me.may.operate) return null;
  return h('p', { class: 'role-note' }, `Signed in as ${me.name} (${me.roles.join(', ') || 'no role'}): `,
    'retrying and cancelling actions needs the operate role, so those buttons are disabled.');
}

/** Retry and Cancel for an action, as the signed-in roles allow. */
function controls(action, me, notice, after) {
  const mayOperate = !!(me && me.may && me.may.operate);
  const why = mayOperate ? null : `needs the operate role (you have: ${me.roles.join(', ') || 'none'})`;
  const act = (verb, label) => h('button', {
    type: 'button', class: `act-${verb}`, disabled: !mayOperate, title: why || `${label} ${action.id}`,
    'aria-label': `${label} ${action.id}`,
    on: {
      click: async (e) => {
        const button = e.currentTarget;
        button.disabled = true;
        try {
          const answer = await api(`/actions/${seg(action.id)}/${verb}`, { method: 'POST' });
          flash = `${action.id}: ${answer.message || `${label}: done`}`;
          await after();
        } catch (err) {
          replace(notice, problem(err));
          button.disabled = false;
        }
      },
    },
  }, label);
  const out = [];
  if (action.status === 'dead') out.push(act('retry', 'Retry'));
  if (action.status === 'pending') out.push(act('cancel', 'Cancel'));
  return out;
}

async function one(main, id, ctx) {
  const notice = h('div', { 'aria-live': 'polite' });
  let action;
  try {
    action = await api(`/actions/${seg(id)}`);
  } catch (e) {
    replace(main, h('h1', {}, `Action ${id}`), problem(e));
    return;
  }
  const a = action.action || action;
  const attempts = [action.attempts, a.attempts, action.attempt_list, action.attempts_list].find(Array.isArray) || [];
  replace(main,
    h('h1', {}, `Action ${a.kind || ''} ${a.status ? `(${a.status})` : ''}`),
    h('p', { class: 'muted' }, h('code', {}, a.id || id)),
    roleNote(ctx.me),
    notice,
    section('Action',
      h('dl', { class: 'facts' },
        h('dt', {}, 'State'), h('dd', {}, badge(a.status)),
        h('dt', {}, 'Kind'), h('dd', {}, a.kind),
        h('dt', {}, 'Target'), h('dd', {}, a.target),
        h('dt', {}, 'Rule'), h('dd', {}, a.rule_id && link(`#/rules/${seg(a.rule_id)}`, a.rule_id)),
        h('dt', {}, 'Event'), h('dd', {}, a.event_id && link(`#/events/${seg(a.event_id)}`, a.event_id)),
        h('dt', {}, 'Attempts'), h('dd', {}, String(typeof a.attempts === 'number' ? a.attempts : attempts.length)),
        h('dt', {}, 'Next attempt'), h('dd', {}, time(a.next_attempt_at)),
        h('dt', {}, 'Last error'), h('dd', {}, a.last_error || '—')),
      h('div', { class: 'buttons' }, controls(a, ctx.me, notice, () => ctx.go('actions', [id]))),
      h('details', {}, h('summary', {}, 'All fields'), json(action))),
    section('Attempts', table([
      ['#', (t) => String(t.attempt)],
      ['Started', (t) => time(t.started_at)],
      ['Took', (t) => `${t.duration_ms} ms`],
      ['Outcome', (t) => badge(t.outcome)],
      ['Status', (t) => (t.status_code ?? '').toString()],
      ['Error', (t) => t.error || ''],
      ['Reply', (t) => (t.reply ? h('code', {}, t.reply.slice(0, 200)) : '')],
    ], attempts, 'No attempt yet.')));
  takeFlash(notice);
}
