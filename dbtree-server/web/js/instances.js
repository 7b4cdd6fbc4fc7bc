/**
 * The user's databases: the list (a table, cards on a phone) with status, cost and how long each
 * runs at the current balance, and the detail dialog: connection (host, port, the URI template
 * clearly marked, the engine's command-line client ready to copy), the engine's own usage
 * figures, what billing will do and when, and the start / stop / rotate-password / delete
 * actions. While the view is shown the list is refreshed every few seconds (the server follows
 * the cluster; this only reads).
 */

import { api, session } from './api.js';
import { currentProfile } from './auth.js';
import { instancePlan, instancePlanSentence } from './runway.js';
import { $, copy, fill, h, lemons, perHour, showError, toast, when } from './ui.js';

const ENGINES = { postgresql: 'PostgreSQL', redis: 'Redis', mongodb: 'MongoDB' };
const POLL_MS = 2000;
const LIVE = ['provisioning', 'running', 'stopped', 'paused'];

let list = [];
let poll = 0;
let openId = null;
let fresh = null;
let hooks = { showCredentials: () => {}, afterChange: () => {}, onList: () => {} };

/** Names of the visible instances (to suggest a free one). */
export function names() {
  return list.map((i) => i.name);
}

/** Live databases (those that count toward the limit: failed ones do not). */
export function liveCount() {
  return list.filter((i) => LIVE.includes(i.status)).length;
}

/** The most live databases an account may have. */
export function limit() {
  return currentProfile()?.instanceLimit ?? 2;
}

function sizeText(i) {
  return i.preset ?? `${i.resources.cpu} vCPU / ${i.resources.memoryMib} MiB / ${i.resources.diskGib} GiB`;
}

const STATUS_WORDS = {
  provisioning: 'starting',
  running: 'running',
  stopped: 'stopped',
  paused: 'paused (no lemons)',
  error: 'failed',
  deleting: 'deleting',
  deleted: 'deleted',
};

function statusBadge(status) {
  return h('span', { className: 'status', 'data-status': status }, STATUS_WORDS[status] ?? status);
}

/** What the instance costs per hour now: nothing while it does not run or failed. */
function costText(i) {
  if (i.status === 'error') return 'not billed';
  if (i.status === 'stopped') return `free while stopped (${perHour(i.price.hourlyCost)} running)`;
  return perHour(i.price.hourlyCost);
}

function render() {
  const signedIn = session.signedIn;
  $('instances-signin').hidden = signedIn;
  $('instances-empty').hidden = !signedIn || list.length > 0;
  $('instances-table').hidden = !signedIn || list.length === 0;
  const live = liveCount();
  $('instances-summary').hidden = !signedIn || list.length === 0;
  $('instances-summary').textContent = `${live} of ${limit()} databases in use.`;
  fill($('instances-body'), list.map((i) => {
    const plan = instancePlan(i);
    return h('tr', { 'data-instance': i.name, 'data-status': i.status, className: i.name === fresh ? 'fresh' : '' },
      h('th', { scope: 'row', 'data-label': 'Name' }, i.name),
      h('td', { 'data-label': 'Engine' }, ENGINES[i.engine] ?? i.engine),
      h('td', { 'data-label': 'Size' }, sizeText(i)),
      h('td', { 'data-label': 'Status' }, statusBadge(i.status), i.statusReason && i.status !== 'error' ? h('span', { className: 'muted reason' }, ` ${i.statusReason}`) : null),
      h('td', { className: 'num', 'data-label': 'Port' }, i.nodePort ?? '—'),
      h('td', { className: 'num', 'data-label': 'Cost' }, costText(i)),
      h('td', { 'data-label': 'Runs until', className: i.status === 'paused' ? 'plan warn' : 'plan' }, plan ?? '—'),
      h('td', { className: 'actions' }, h('button', { type: 'button', 'aria-label': `Manage ${i.name}`, onclick: () => openDetail(i.id) }, 'Manage…')));
  }));
}

/** The list's ids and statuses as last seen, to notice a change. */
let known = null;

/** Reloads the list. */
export async function refresh() {
  if (!session.signedIn) {
    list = [];
    render();
    hooks.onList();
    return;
  }
  const before = known;
  try {
    list = await api('GET', '/instances', { auth: true });
  } catch {
    // keep the last list; the next poll tries again
  }
  known = list.map((i) => `${i.id}:${i.status}`).join(',');
  render();
  hooks.onList();
  // a database that started, stopped or was paused changes the runway: reload the profile
  if (before !== null && before !== known) hooks.afterChange();
  if (openId) {
    const open = list.find((i) => i.id === openId);
    if (!open || open.status === 'deleted') closeDetail();
    else if (open.status === 'deleting') renderDetail({ ...open, connection: undefined });
    else refreshDetail();
  }
}

/** After a creation: scroll the new database into view and mark it for a moment. */
export function highlight(name) {
  fresh = name;
  render();
  const row = document.querySelector(`tr[data-instance="${CSS.escape(name)}"]`);
  (row ?? $('instances-title')).scrollIntoView({ block: 'center', behavior: 'smooth' });
  setTimeout(() => {
    fresh = null;
    render();
  }, 4000);
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

function copyButton(text, what) {
  return h('button', { type: 'button', className: 'copy', onclick: () => copy(text, what) }, 'Copy');
}

function renderDetail(d) {
  $('instance-title').textContent = `${d.name} (${ENGINES[d.engine] ?? d.engine})`;
  const c = d.connection;
  const plan = instancePlanSentence(d, currentProfile());
  const billed = d.status === 'error'
    ? 'Not billed: it failed to start, and its creation cost was refunded.'
    : `${perHour(d.price.hourlyCost)} while running (created for ${lemons(d.price.creationCost)}).`;
  fill($('instance-detail'),
    h('dt', {}, 'Status'), h('dd', { id: 'instance-status' }, statusBadge(d.status), d.statusReason ? ` ${d.statusReason}` : ''),
    h('dt', {}, 'Size'), h('dd', {}, `${d.preset ? d.preset + ': ' : ''}${d.resources.cpu} vCPU · ${d.resources.memoryMib} MiB · ${d.resources.diskGib} GiB disk`),
    d.server ? h('dt', {}, 'Server') : null, d.server ? h('dd', { id: 'instance-server' }, d.server) : null,
    h('dt', {}, 'Cost'), h('dd', {}, billed),
    plan ? h('dt', {}, 'Billing') : null, plan ? h('dd', { id: 'instance-plan' }, plan) : null,
    h('dt', {}, 'Host'), h('dd', {}, c ? h('span', { className: 'copy-row' }, h('code', {}, c.host), copyButton(c.host, 'Host')) : 'not assigned yet'),
    h('dt', {}, 'Port'), h('dd', {}, c ? h('span', { className: 'copy-row' }, h('code', {}, String(c.port)), copyButton(String(c.port), 'Port')) : '—'),
    h('dt', {}, 'URI template'), h('dd', {}, c
      ? h('span', {}, h('code', { id: 'instance-uri', className: 'template' }, c.uriTemplate),
        h('span', { className: 'muted hint' }, ' A template, not a working address: put your password in place of {password}. Lost the password? Rotate it to get a full URI.'))
      : '—'),
    h('dt', {}, 'Created'), h('dd', {}, when(d.createdAt)),
    h('dt', {}, 'Last change'), h('dd', {}, when(d.updatedAt)),
    d.pausedAt ? h('dt', {}, 'Paused since') : null, d.pausedAt ? h('dd', {}, when(d.pausedAt)) : null);
  fill($('instance-cli'), c && c.cli
    ? [h('p', { className: 'cli-label' }, `Connect with ${c.cli.tool} (it asks for the password):`),
      h('div', { className: 'copy-row cli' }, h('code', { id: 'instance-cli-command' }, c.cli.command),
        h('button', { type: 'button', id: 'copy-cli', onclick: () => copy(c.cli.command, `${c.cli.tool} command`) }, 'Copy'))]
    : []);
  const can = actionsFor(d.status);
  $('instance-start').disabled = !can.start;
  $('instance-stop').disabled = !can.stop;
  $('instance-rotate').disabled = !can.rotate;
  $('instance-delete').disabled = !can.delete;
  $('instance-dialog').dataset.status = d.status;
}

function bytes(n) {
  if (n === undefined || n === null) return null;
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB'];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

function renderUsage(u) {
  const box = $('instance-usage');
  if (!u) {
    fill(box);
    return;
  }
  if (!u.available) {
    fill(box, h('p', { className: 'muted' }, `Usage: not available (${u.reason ?? 'the engine did not answer'}).`));
    return;
  }
  const row = (label, value, limitText) => h('div', { className: 'usage-item' },
    h('dt', {}, label), h('dd', {}, value ?? 'not reported by the engine', limitText ? h('span', { className: 'muted' }, ` of ${limitText}`) : null));
  fill(box, h('dl', { className: 'usage-list', 'aria-label': 'Usage reported by the engine' },
    row('Memory used', bytes(u.memoryUsedBytes), u.memoryUsedBytes !== undefined ? `${u.memoryLimitMib} MiB` : null),
    row('Disk used', bytes(u.diskUsedBytes), u.diskUsedBytes !== undefined ? `${u.diskLimitGib} GiB` : null),
    row('Connections', u.connections !== undefined ? String(u.connections) : null, null)),
  h('p', { className: 'muted' }, `Reported by the engine at ${new Date(u.measuredAt).toLocaleTimeString()}.`));
}

async function refreshUsage(id) {
  try {
    const usage = await api('GET', `/instances/${id}/usage`, { auth: true });
    if (openId === id) renderUsage(usage);
  } catch (error) {
    if (openId === id) fill($('instance-usage'), h('p', { className: 'muted' }, `Usage: ${error.message}`));
  }
}

async function refreshDetail() {
  if (!openId) return;
  const id = openId;
  try {
    const detail = await api('GET', `/instances/${id}`, { auth: true });
    if (openId !== id) return;
    renderDetail(detail);
    refreshUsage(id);
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
  fill($('instance-usage'));
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
  const name = item?.name ?? 'this database';
  if (verb === 'delete' && !(await confirm(`Delete ${name}?`, 'Its data is destroyed and cannot be recovered. The creation cost is not refunded.', 'Delete'))) return;
  if (verb === 'credentials' && !(await confirm(`Rotate the password of ${name}?`, 'The current password stops working at once; the new one is shown only once.', 'Rotate'))) return;
  showError($('instance-error'), null);
  const buttons = ['instance-start', 'instance-stop', 'instance-rotate', 'instance-delete'].map((b) => $(b));
  for (const b of buttons) b.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    if (verb === 'delete') {
      await api('DELETE', `/instances/${id}`, { auth: true });
      toast(`${name} is being deleted.`);
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
  hooks = { ...hooks, ...given };
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
