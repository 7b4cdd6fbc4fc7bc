/**
 * The user's instances: the list with status, and the detail dialog with the connection URI
 * and the start / stop / rotate-password / delete actions. While the view is shown the list is
 * refreshed every few seconds (the server follows the cluster; this only reads).
 */

import { api, session } from './api.js';
import { $, copy, fill, h, lemons, showError, when } from './ui.js';

const ENGINES = { postgresql: 'PostgreSQL', redis: 'Redis', mongodb: 'MongoDB' };
const POLL_MS = 2000;

let list = [];
let poll = 0;
let openId = null;
let hooks = { showCredentials: () => {}, afterChange: () => {} };

/** Names of the live instances (to suggest a free one). */
export function names() {
  return list.map((i) => i.name);
}

function sizeText(i) {
  return i.preset ?? `${i.resources.cpu} vCPU / ${i.resources.memoryMib} MiB / ${i.resources.diskGib} GiB`;
}

function statusBadge(status) {
  return h('span', { className: 'status', 'data-status': status }, status);
}

function render() {
  const signedIn = session.signedIn;
  $('instances-signin').hidden = signedIn;
  $('instances-empty').hidden = !signedIn || list.length > 0;
  $('instances-table').hidden = !signedIn || list.length === 0;
  fill($('instances-body'), list.map((i) => h('tr', { 'data-instance': i.name, 'data-status': i.status },
    h('th', { scope: 'row' }, i.name),
    h('td', {}, ENGINES[i.engine] ?? i.engine),
    h('td', {}, sizeText(i)),
    h('td', {}, statusBadge(i.status), i.statusReason ? h('span', { className: 'muted reason' }, ` ${i.statusReason}`) : null),
    h('td', { className: 'num' }, i.nodePort ?? '—'),
    h('td', { className: 'num' }, i.status === 'error' ? '—' : `${i.price.hourlyCost}`),
    h('td', {}, h('button', { type: 'button', 'aria-label': `Manage ${i.name}`, onclick: () => openDetail(i.id) }, 'Manage…')))));
}

/** Reloads the list. */
export async function refresh() {
  if (!session.signedIn) {
    list = [];
    render();
    return;
  }
  try {
    list = await api('GET', '/instances', { auth: true });
  } catch {
    // keep the last list; the next poll tries again
  }
  render();
  if (openId) {
    const open = list.find((i) => i.id === openId);
    if (!open || open.status === 'deleted') closeDetail();
    else if (open.status === 'deleting') renderDetail({ ...open, connection: undefined });
    else refreshDetail();
  }
}

function closeDetail() {
  openId = null;
  if ($('instance-dialog').open) $('instance-dialog').close();
}

function actionsFor(status) {
  return {
    start: status === 'stopped' || status === 'paused',
    stop: status === 'running',
    rotate: status === 'running',
    delete: !['deleting', 'deleted'].includes(status),
  };
}

function renderDetail(d) {
  $('instance-title').textContent = `${d.name} (${ENGINES[d.engine] ?? d.engine})`;
  const uri = d.connection?.uriTemplate;
  fill($('instance-detail'),
    h('dt', {}, 'Status'), h('dd', { id: 'instance-status' }, statusBadge(d.status), d.statusReason ? ` ${d.statusReason}` : ''),
    h('dt', {}, 'Size'), h('dd', {}, `${d.preset ? d.preset + ': ' : ''}${d.resources.cpu} vCPU · ${d.resources.memoryMib} MiB · ${d.resources.diskGib} GiB disk`),
    d.server ? h('dt', {}, 'Server') : null, d.server ? h('dd', { id: 'instance-server' }, d.server) : null,
    h('dt', {}, 'Price'), h('dd', {}, d.status === 'error'
      ? 'nothing per hour (it failed; the creation cost was refunded)'
      : `${lemons(d.price.hourlyCost)} per hour (created for ${lemons(d.price.creationCost)})`),
    h('dt', {}, 'Host and port'), h('dd', {}, d.connection ? `${d.connection.host}:${d.connection.port}` : 'not assigned yet'),
    h('dt', {}, 'Connection URI'), h('dd', {}, uri
      ? h('span', { className: 'copy-row' }, h('code', { id: 'instance-uri' }, uri),
        h('button', { type: 'button', onclick: () => copy(uri, 'Connection URI') }, 'Copy'))
      : '—'),
    uri ? h('dd', { className: 'muted' }, 'Replace {password} with the password you saved when it was created or last rotated.') : null,
    h('dt', {}, 'Created'), h('dd', {}, when(d.createdAt)),
    h('dt', {}, 'Last change'), h('dd', {}, when(d.updatedAt)),
    d.pausedAt ? h('dt', {}, 'Paused since') : null, d.pausedAt ? h('dd', {}, when(d.pausedAt)) : null);
  const can = actionsFor(d.status);
  $('instance-start').disabled = !can.start;
  $('instance-stop').disabled = !can.stop;
  $('instance-rotate').disabled = !can.rotate;
  $('instance-delete').disabled = !can.delete;
  $('instance-dialog').dataset.status = d.status;
}

async function refreshDetail() {
  if (!openId) return;
  const id = openId;
  try {
    const detail = await api('GET', `/instances/${id}`, { auth: true });
    if (openId === id) renderDetail(detail);
  } catch (error) {
    if (openId !== id) return;
    if (error.status === 404) {
      closeDetail();
    } else {
      showError($('instance-error'), error);
    }
  }
}

async function openDetail(id) {
  openId = id;
  showError($('instance-error'), null);
  const dialog = $('instance-dialog');
  await refreshDetail();
  if (openId === id && !dialog.open) dialog.showModal();
  $('instance-close').focus();
}

/** Asks a yes/no question in the confirm dialog. */
export function confirm(title, text, yes) {
  return new Promise((resolve) => {
    const dialog = $('confirm-dialog');
    $('confirm-title').textContent = title;
    $('confirm-text').textContent = text;
    $('confirm-yes').textContent = yes;
    const done = (answer) => {
      $('confirm-yes').removeEventListener('click', onYes);
      dialog.removeEventListener('close', onClose);
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    const onYes = () => done(true);
    const onClose = () => done(false);
    $('confirm-yes').addEventListener('click', onYes);
    dialog.addEventListener('close', onClose);
    dialog.showModal();
    $('confirm-no').focus();
  });
}

async function act(button, verb) {
  const id = openId;
  const item = list.find((i) => i.id === id);
  const name = item?.name ?? 'this instance';
  if (verb === 'delete' && !(await confirm(`Delete ${name}?`, 'Its data is destroyed and cannot be recovered. The creation cost is not refunded.', 'Delete'))) return;
  if (verb === 'credentials' && !(await confirm(`Rotate the password of ${name}?`, 'The current password stops working at once; the new one is shown only once.', 'Rotate'))) return;
  showError($('instance-error'), null);
  const buttons = ['instance-start', 'instance-stop', 'instance-rotate', 'instance-delete'].map((b) => $(b));
  for (const b of buttons) b.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    if (verb === 'delete') {
      await api('DELETE', `/instances/${id}`, { auth: true });
    } else {
      const answer = await api('POST', `/instances/${id}/${verb}`, { auth: true });
      if (verb === 'credentials') hooks.showCredentials(answer, name);
    }
    if (verb === 'delete') closeDetail();
    await refresh();
    hooks.afterChange();
  } catch (error) {
    showError($('instance-error'), error);
    await refreshDetail();
  } finally {
    button.removeAttribute('aria-busy');
  }
}

/** Wires the detail dialog. */
export function init(given) {
  hooks = given;
  $('instances-refresh').addEventListener('click', refresh);
  $('instance-close').addEventListener('click', closeDetail);
  $('instance-dialog').addEventListener('close', () => {
    openId = null;
  });
  $('instance-start').addEventListener('click', (e) => act(e.currentTarget, 'start'));
  $('instance-stop').addEventListener('click', (e) => act(e.currentTarget, 'stop'));
  $('instance-rotate').addEventListener('click', (e) => act(e.currentTarget, 'credentials'));
  $('instance-delete').addEventListener('click', (e) => act(e.currentTarget, 'delete'));
  $('confirm-no').addEventListener('click', () => $('confirm-dialog').close());
}

/** Shown: load and keep polling. */
export function show() {
  refresh();
  clearInterval(poll);
  poll = setInterval(refresh, POLL_MS);
}

/** Hidden: stop polling. */
export function hide() {
  clearInterval(poll);
  poll = 0;
}
