/**
 * Buying databases: preset cards per engine, a custom form with a live quote, the create
 * dialog, the one-time credentials dialog, and the system capacity gauge with the sizes that fit.
 *
 * Create buttons are disabled, with the reason next to them, when the limit, the balance or the
 * capacity already refuses. The credentials dialog cannot be dismissed (Escape, or anything
 * else) before the user confirms the password was saved.
 */

import { api, session } from './api.js';
import { currentProfile, onProfile, refreshProfile } from './auth.js';
import * as instances from './instances.js';
import { graceText } from './runway.js';
import { $, busy, copy, fill, h, lemons, perDay, perHour, perMonth, plural, showError, toast } from './ui.js';

export const ENGINES = { postgresql: 'PostgreSQL', redis: 'Redis', mongodb: 'MongoDB' };
const SIZES = ['tiny', 'small', 'medium', 'large'];

let presets = [];
let capacity = null;
/** What the create dialog will create: `{engine, preset?, resources?, price}`. */
let pending = null;
let quoteTimer = 0;
/** The latest quote for the custom form's values, or null. */
let customQuote = null;
let quoteSeq = 0;
/** What the preset cards were last drawn from, to redraw only when it changes. */
let presetsDrawnFor = null;
/** The credentials dialog's instance, until the user confirms the password was saved. */
let unsaved = null;

/** "0.25 vCPU · 512 MiB · 5 GiB disk". */
export function resourcesText(r) {
  return `${r.cpu} vCPU · ${r.memoryMib} MiB · ${r.diskGib} GiB disk`;
}

/** "10 lemons to create, then 2 lemons/h (48 lemons/day, 1,440 lemons/month)". */
export function priceText(p) {
  return `${lemons(p.creationCost)} to create, then ${perHour(p.hourlyCost)} (${perDay(p.dailyCost)}, ${perMonth(p.monthlyCost)})`;
}

function fitOf(engine) {
  return capacity?.fits?.find((f) => f.engine === engine);
}

/** Whether this server can run the engine at all (unknown capacity: assumed yes). */
function available(engine) {
  return fitOf(engine)?.available ?? true;
}

function fits(engine, size) {
  return fitOf(engine)?.presets?.includes(size) ?? true;
}

/**
 * Why creating `spec` would be refused right now (limit, balance, capacity, in the server's
 * order), or null.
 */
function refusal(spec) {
  const profile = currentProfile();
  if (!session.signedIn || !profile) return null;
  const live = instances.liveCount();
  const limit = instances.limit();
  if (live >= limit) return `You have ${live} of ${limit} databases; delete one to create another.`;
  const need = spec.price.creationCost + spec.price.hourlyCost;
  if (profile.balance < need) {
    return `Needs ${lemons(need)} (creation + 1 h); you have ${lemons(profile.balance)}.`;
  }
  if (spec.preset && !fits(spec.engine, spec.preset)) return 'No room for this size on the server right now.';
  return null;
}

function renderCapacity() {
  const box = $('capacity');
  if (!capacity) {
    fill(box, h('p', { className: 'muted' }, 'Capacity is not known right now.'));
    return;
  }
  const cpuMax = Math.max(0, capacity.totalCpu - capacity.reservedCpu);
  const memMax = Math.max(0, capacity.totalMemoryMib - capacity.reservedMemoryMib);
  const gauge = (id, label, used, max, unit, digits) => {
    const share = max > 0 ? used / max : 1;
    return h('div', { className: 'gauge' },
      h('label', { for: id }, label),
      h('meter', { id, min: 0, max, value: used, low: max * 0.6, high: max * 0.85, optimum: 0 }),
      h('span', { className: 'gauge-text' },
        `${used.toFixed(digits)} of ${max.toFixed(digits)} ${unit} in use (${Math.round(share * 100)} %)`));
  };
  const head = h('tr', {}, h('th', { scope: 'col' }, 'Engine'), SIZES.map((s) => h('th', { scope: 'col' }, s)));
  const rows = Object.entries(ENGINES).map(([engine, name]) =>
    h('tr', {}, h('th', { scope: 'row' }, name), SIZES.map((size) => {
      if (!available(engine)) return h('td', { className: 'fit no' }, '✗ not available');
      const ok = fits(engine, size);
      return h('td', { className: ok ? 'fit yes' : 'fit no' }, ok ? '✓ fits' : '✗ full');
    })));
  const holds = capacity.instances === 1 ? 'database holds' : 'databases hold';
  fill(box,
    gauge('cap-cpu', 'vCPU', capacity.usedCpu, cpuMax, 'vCPU', 2),
    gauge('cap-mem', 'Memory', capacity.usedMemoryMib, memMax, 'MiB', 0),
    h('p', { className: 'muted' }, `${capacity.instances} ${holds} resources now.`),
    h('div', { className: 'table-wrap' },
      h('table', { className: 'fits' }, h('caption', {}, 'Which preset sizes can be created right now'),
        h('thead', {}, head), h('tbody', {}, rows))));
}

function renderPresets() {
  const profile = currentProfile();
  const key = JSON.stringify([presets.length, capacity?.fits, profile?.balance, instances.liveCount(), instances.limit(), session.signedIn]);
  if (key === presetsDrawnFor) return;
  presetsDrawnFor = key;
  const groups = Object.entries(ENGINES).map(([engine, name]) => {
    const fit = fitOf(engine);
    if (!available(engine)) {
      return h('section', { className: 'engine', 'aria-label': name }, h('h3', {}, name),
        h('p', { className: 'badge full' }, `Not available on this server: ${fit?.unavailableReason ?? 'the engine is not installed'}`));
    }
    const cards = SIZES.map((size) => presets.find((p) => p.engine === engine && p.preset === size))
      .filter(Boolean)
      .map((p) => {
        const ok = fits(p.engine, p.preset);
        const spec = { engine: p.engine, preset: p.preset, resources: p.resources, price: p.price };
        const why = refusal(spec);
        const whyId = `why-${p.engine}-${p.preset}`;
        return h('li', { className: 'preset card', 'data-engine': p.engine, 'data-preset': p.preset },
          h('h4', {}, p.preset),
          h('p', {}, resourcesText(p.resources)),
          h('p', { className: 'price' }, h('b', {}, lemons(p.price.creationCost)), ' to create, then ',
            h('b', {}, perHour(p.price.hourlyCost))),
          h('p', { className: 'muted' }, `${perDay(p.price.dailyCost)} · ${perMonth(p.price.monthlyCost)}`),
          h('p', { className: ok ? 'badge ok' : 'badge full' }, ok ? 'Fits now' : 'No room right now'),
          h('button', {
            type: 'button', className: 'primary', 'aria-label': `Create ${name} ${p.preset}`,
            disabled: why !== null, 'aria-describedby': why ? whyId : undefined,
            onclick: () => openCreate(spec),
          }, 'Create…'),
          why ? h('p', { className: 'why muted', id: whyId }, why) : null);
      });
    return h('section', { className: 'engine', 'aria-label': name }, h('h3', {}, name),
      fit?.server ? h('p', { className: 'muted' }, `Runs on ${fit.server}`) : null,
      h('ul', { className: 'preset-grid' }, cards));
  });
  fill($('presets'), groups);
  renderBlocked();
}

/** One notice above the presets when every creation is refused for the same reason. */
function renderBlocked() {
  const live = instances.liveCount();
  const notice = $('create-blocked');
  const full = session.signedIn && live >= instances.limit();
  notice.hidden = !full;
  notice.textContent = full ? `You have ${live} of ${instances.limit()} databases, the most an account can have: delete one to create another.` : '';
}

/** Reloads the capacity gauge (and the badges that depend on it). */
export async function refreshCapacity() {
  try {
    capacity = await api('GET', '/system/capacity');
  } catch {
    capacity = null;
  }
  renderCapacity();
  renderPresets();
}

function customSpec() {
  const cpu = Number($('custom-cpu').value);
  const memoryMib = Number($('custom-memory').value);
  const diskGib = Number($('custom-disk').value);
  const problems = [];
  const steps = Math.round(cpu / 0.05);
  if (!(cpu >= 0.1 && cpu <= 2) || Math.abs(steps * 0.05 - cpu) > 1e-9) problems.push('vCPU must be 0.1–2.0 in steps of 0.05');
  if (!Number.isInteger(memoryMib) || memoryMib < 128 || memoryMib > 4096) problems.push('memory must be 128–4096 MiB');
  if (!Number.isInteger(diskGib) || diskGib < 1 || diskGib > 50) problems.push('disk must be 1–50 GiB');
  return { engine: $('custom-engine').value, resources: { cpu, memoryMib, diskGib }, problems };
}

function setCustomBlocked(why) {
  $('custom-create').disabled = why !== null;
  $('custom-blocked').hidden = why === null;
  $('custom-blocked').textContent = why ?? '';
}

async function quoteCustom() {
  const spec = customSpec();
  const out = $('custom-quote');
  const seq = ++quoteSeq;
  for (const [id, bad] of [['custom-cpu', /vCPU/], ['custom-memory', /memory/], ['custom-disk', /disk/]]) {
    $(id).setAttribute('aria-invalid', String(spec.problems.some((p) => bad.test(p))));
  }
  customQuote = null;
  if (spec.problems.length > 0) {
    out.dataset.state = 'invalid';
    out.textContent = `Check the values: ${spec.problems.join('; ')}.`;
    setCustomBlocked('Fix the size first.');
    return;
  }
  try {
    const price = await api('POST', '/quotes', { body: { engine: spec.engine, resources: spec.resources } });
    if (seq !== quoteSeq) return;
    const same = presets.find((p) => p.engine === spec.engine && p.resources.cpu === spec.resources.cpu
      && p.resources.memoryMib === spec.resources.memoryMib && p.resources.diskGib === spec.resources.diskGib);
    out.dataset.state = 'ok';
    out.textContent = `Quote: ${priceText(price)}.${same ? ` The same as the ${same.preset} preset.` : ''}`;
    customQuote = price;
    setCustomBlocked(refusal({ engine: spec.engine, resources: spec.resources, price }));
  } catch (error) {
    if (seq !== quoteSeq) return;
    out.dataset.state = 'invalid';
    out.textContent = error.message;
    setCustomBlocked('Fix the size first.');
  }
}

/** Re-judges the custom form's Create button against the last quote. */
function judgeCustom() {
  if (!customQuote) return;
  const spec = customSpec();
  setCustomBlocked(refusal({ engine: spec.engine, resources: spec.resources, price: customQuote }));
}

function scheduleQuote() {
  clearTimeout(quoteTimer);
  quoteTimer = setTimeout(quoteCustom, 250);
}

function suggestName(engine, preset) {
  const used = new Set(instances.names());
  for (let n = 1; ; n += 1) {
    const name = `${engine === 'postgresql' ? 'pg' : engine}-${preset ?? 'custom'}-${n}`;
    if (!used.has(name)) return name;
  }
}

function openCreate(spec) {
  if (!session.signedIn) {
    location.hash = '#signin';
    return;
  }
  pending = spec;
  const size = spec.preset ? `${spec.preset} preset` : 'custom';
  fill($('create-summary'),
    h('dt', {}, 'Engine'), h('dd', {}, ENGINES[spec.engine]),
    h('dt', {}, 'Size'), h('dd', {}, size),
    h('dt', {}, 'Resources'), h('dd', {}, resourcesText(spec.resources)),
    h('dt', {}, 'Price'), h('dd', {}, priceText(spec.price)));
  const profile = currentProfile();
  const need = spec.price.creationCost + spec.price.hourlyCost;
  const balance = profile?.balance ?? 0;
  $('create-balance').textContent = `You have ${lemons(balance)}; creating needs at least ${lemons(need)} (the creation cost and one hour).`;
  $('create-balance').dataset.short = String(balance < need);
  const burn = (profile?.hourlyBurn ?? 0) + spec.price.hourlyCost;
  const left = balance - spec.price.creationCost;
  const hours = left >= 0 ? Math.floor(left / burn) : 0;
  $('create-runway').textContent = left >= 0
    ? `Afterwards your ${lemons(left)} pay your running databases (${perHour(burn)} together) for about ${plural(hours, 'hour', 'hours')}. Then billing pauses a database (data kept); one paused for ${graceText(profile)} without lemons is deleted with its data.`
    : '';
  $('create-title').textContent = `Create a ${ENGINES[spec.engine]} database`;
  $('create-name').value = suggestName(spec.engine, spec.preset);
  showError($('create-error'), null);
  $('create-dialog').showModal();
  $('create-name').focus();
  $('create-name').select();
}

/** Shows freshly issued credentials once; they stay until the user confirms they saved them. */
export function showCredentials(credentials, name) {
  unsaved = name;
  $('credentials-title').textContent = `Save the password of ${name} now`;
  $('cred-username').value = credentials.username;
  $('cred-password').value = credentials.password;
  $('cred-uri').value = credentials.uri;
  $('cred-saved').checked = false;
  showError($('cred-error'), null);
  const dialog = $('credentials-dialog');
  if (!dialog.open) dialog.showModal();
  $('copy-password').focus();
}

function forgetCredentials() {
  for (const id of ['cred-username', 'cred-password', 'cred-uri']) $(id).value = '';
}

/** The user pressed Done: close only once they confirmed saving the password. */
function credentialsDone() {
  if (!$('cred-saved').checked) {
    showError($('cred-error'), new Error('Tick “I have saved the password” first: it cannot be shown again.'));
    $('cred-saved').focus();
    return;
  }
  const name = unsaved;
  unsaved = null;
  forgetCredentials();
  $('credentials-dialog').close();
  if (name) instances.highlight(name);
}

/** Escape (and any other way of closing) is refused until the password is saved. */
function refuseDismissal(event) {
  if (unsaved === null) return;
  event.preventDefault();
  showError($('cred-error'), new Error('Save the password first: it is shown only this once. Then tick the box and press Done.'));
  $('cred-saved').focus();
}

async function create(event) {
  event.preventDefault();
  const name = $('create-name').value.trim();
  const slot = $('create-error');
  if (!$('create-name').checkValidity()) {
    showError(slot, new Error('The name must be 3–40 lower-case letters, digits and dashes, starting and ending with a letter or digit.'));
    $('create-name').focus();
    return;
  }
  showError(slot, null);
  const body = pending.preset
    ? { name, engine: pending.engine, preset: pending.preset }
    : { name, engine: pending.engine, resources: pending.resources };
  await busy($('create-submit'), async () => {
    try {
      const created = await api('POST', '/instances', { auth: true, body });
      $('create-dialog').close();
      toast(`${created.instance.name} is being created: it is ready in a few seconds.`);
      showCredentials(created.credentials, created.instance.name);
      instances.refresh();
      refreshProfile();
      refreshCapacity();
    } catch (error) {
      showError(slot, error);
      if (['instance_limit', 'insufficient_lemons', 'capacity_exceeded', 'provisioning_failed'].includes(error.code)) {
        instances.refresh();
        refreshProfile();
        refreshCapacity();
      }
    }
  });
}

/** Wires the forms and dialogs and loads the catalogue. */
export function init() {
  instances.init({
    showCredentials,
    afterChange: () => { refreshProfile(); refreshCapacity(); },
    onList: () => { renderPresets(); judgeCustom(); },
  });
  onProfile(() => { renderPresets(); judgeCustom(); });
  for (const id of ['custom-engine', 'custom-cpu', 'custom-memory', 'custom-disk']) {
    $(id).addEventListener('input', scheduleQuote);
  }
  $('custom-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    clearTimeout(quoteTimer);
    await quoteCustom();
    const spec = customSpec();
    if (spec.problems.length === 0 && customQuote && !$('custom-create').disabled) {
      openCreate({ engine: spec.engine, resources: spec.resources, price: customQuote });
    }
  });
  $('create-form').addEventListener('submit', create);
  $('create-cancel').addEventListener('click', () => $('create-dialog').close());
  for (const button of document.querySelectorAll('[data-copy]')) {
    button.addEventListener('click', () => copy($(button.dataset.copy).value, button.dataset.what));
  }
  const dialog = $('credentials-dialog');
  $('credentials-done').addEventListener('click', credentialsDone);
  $('cred-saved').addEventListener('change', () => showError($('cred-error'), null));
  dialog.addEventListener('cancel', refuseDismissal);
  // a browser may still close it (a second Escape): show it again, the password still there
  dialog.addEventListener('close', () => {
    if (unsaved !== null) {
      dialog.showModal();
      showError($('cred-error'), new Error('Save the password first: it is shown only this once. Then tick the box and press Done.'));
    }
  });
  api('GET', '/presets').then((list) => {
    presets = list;
    renderPresets();
  }).catch(() => fill($('presets'), h('p', { className: 'error' }, 'The preset catalogue cannot be loaded.')));
}

/** The databases view. */
export function show() {
  refreshCapacity();
  quoteCustom();
  instances.show();
}

/** Leaving the view. */
export function hide() {
  instances.hide();
}
