/**
 * Buying databases: preset cards per engine, a custom form with a live quote, the create
 * dialog, the one-time credentials dialog, and the system capacity gauge with the sizes that fit.
 */

import { api, session } from './api.js';
import { currentProfile, refreshProfile } from './auth.js';
import * as instances from './instances.js';
import { $, busy, copy, fill, h, lemons, showError } from './ui.js';

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

/** "0.25 vCPU · 512 MiB · 5 GiB disk". */
export function resourcesText(r) {
  return `${r.cpu} vCPU · ${r.memoryMib} MiB · ${r.diskGib} GiB disk`;
}

/** "3 to create, then 1 per hour". */
export function priceText(p) {
  return `${lemons(p.creationCost)} to create, then ${p.hourlyCost} per hour (${p.dailyCost} a day, ${p.monthlyCost} a month)`;
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
  fill(box,
    gauge('cap-cpu', 'vCPU', capacity.usedCpu, cpuMax, 'vCPU', 2),
    gauge('cap-mem', 'Memory', capacity.usedMemoryMib, memMax, 'MiB', 0),
    h('p', { className: 'muted' }, `${capacity.instances} instance${capacity.instances === 1 ? '' : 's'} hold resources now.`),
    h('div', { className: 'table-wrap' },
      h('table', { className: 'fits' }, h('caption', {}, 'Which preset sizes can be created right now'),
        h('thead', {}, head), h('tbody', {}, rows))));
}

function renderPresets() {
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
        return h('li', { className: 'preset card', 'data-engine': p.engine, 'data-preset': p.preset },
          h('h4', {}, p.preset),
          h('p', {}, resourcesText(p.resources)),
          h('p', { className: 'price' }, h('b', {}, lemons(p.price.creationCost)), ' to create, then ',
            h('b', {}, `${p.price.hourlyCost}/h`)),
          h('p', { className: 'muted' }, `${p.price.dailyCost} a day · ${p.price.monthlyCost} a month`),
          h('p', { className: ok ? 'badge ok' : 'badge full' }, ok ? 'Fits now' : 'No room right now'),
          h('button', {
            type: 'button', className: 'primary', 'aria-label': `Create ${name} ${p.preset}`,
            onclick: () => openCreate({ engine: p.engine, preset: p.preset, resources: p.resources, price: p.price }),
          }, 'Create…'));
      });
    return h('section', { className: 'engine', 'aria-label': name }, h('h3', {}, name),
      fit?.server ? h('p', { className: 'muted' }, `Runs on ${fit.server}`) : null,
      h('ul', { className: 'preset-grid' }, cards));
  });
  fill($('presets'), groups);
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
    $('custom-create').disabled = true;
    return;
  }
  try {
    const price = await api('POST', '/quotes', { body: { engine: spec.engine, resources: spec.resources } });
    if (seq !== quoteSeq) return;
    out.dataset.state = 'ok';
    out.textContent = `Quote: ${priceText(price)}.`;
    $('custom-create').disabled = false;
    customQuote = price;
  } catch (error) {
    if (seq !== quoteSeq) return;
    out.dataset.state = 'invalid';
    out.textContent = error.message;
    $('custom-create').disabled = true;
  }
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
  const need = spec.price.creationCost + spec.price.hourlyCost;
  const balance = currentProfile()?.balance ?? 0;
  $('create-balance').textContent = `You have ${lemons(balance)}; creating needs at least ${lemons(need)} (the creation cost and one hour).`;
  $('create-balance').dataset.short = String(balance < need);
  $('create-title').textContent = `Create a ${ENGINES[spec.engine]} database`;
  $('create-name').value = suggestName(spec.engine, spec.preset);
  showError($('create-error'), null);
  $('create-dialog').showModal();
  $('create-name').focus();
  $('create-name').select();
}

/** Shows freshly issued credentials once; the fields are emptied when the dialog closes. */
export function showCredentials(credentials, name) {
  $('credentials-title').textContent = `Save the password of ${name} now`;
  $('cred-username').value = credentials.username;
  $('cred-password').value = credentials.password;
  $('cred-uri').value = credentials.uri;
  $('credentials-dialog').showModal();
  $('copy-password').focus();
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
      showCredentials(created.credentials, created.instance.name);
      instances.refresh();
      refreshProfile();
      refreshCapacity();
    } catch (error) {
      showError(slot, error);
    }
  });
}

/** Wires the forms and dialogs and loads the catalogue. */
export function init() {
  instances.init({ showCredentials, afterChange: () => { refreshProfile(); refreshCapacity(); } });
  for (const id of ['custom-engine', 'custom-cpu', 'custom-memory', 'custom-disk']) {
    $(id).addEventListener('input', scheduleQuote);
  }
  $('custom-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    clearTimeout(quoteTimer);
    await quoteCustom();
    const spec = customSpec();
    if (spec.problems.length === 0 && customQuote) {
      openCreate({ engine: spec.engine, resources: spec.resources, price: customQuote });
    }
  });
  $('create-form').addEventListener('submit', create);
  $('create-cancel').addEventListener('click', () => $('create-dialog').close());
  for (const button of document.querySelectorAll('[data-copy]')) {
    button.addEventListener('click', () => copy($(button.dataset.copy).value, button.dataset.what));
  }
  const forget = () => {
    for (const id of ['cred-username', 'cred-password', 'cred-uri']) $(id).value = '';
  };
  $('credentials-done').addEventListener('click', () => {
    forget();
    $('credentials-dialog').close();
  });
  $('credentials-dialog').addEventListener('close', forget);
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
