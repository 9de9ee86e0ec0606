// Sign in: paste an API token. It is kept in this tab's sessionStorage only and sent as
// `Authorization: Bearer` to the API; closing the tab forgets it.

import { api, setToken } from '../api.js';
import { field, h, problem, replace } from '../dom.js';

export async function render(main, { onSignedIn }) {
  const input = h('input', {
    type: 'password', id: 'token', name: 'token', autocomplete: 'off', required: true,
    spellcheck: 'false', placeholder: 'sbt_…',
  });
  const message = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'card signin', on: { submit } },
    h('h1', {}, 'Sign in'),
    h('p', {}, 'Paste an API token (', h('code', {}, 'signalbox tokens create NAME --role read'),
      '). It is kept in this tab only and sent to this engine\u2019s API; what you may do follows its roles.'),
    field('API token', input),
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'),
    message);
  replace(main, form);
  input.focus();

  async function submit(event) {
    event.preventDefault();
    const value = input.value.trim();
    try {
      const me = await api('/whoami', { token: value });
      setToken(value);
      replace(message, h('p', {}, `Signed in as ${me.name || 'open API'}.`));
      await onSignedIn();
    } catch (e) {
      replace(message, problem(e));
    }
  }
}
