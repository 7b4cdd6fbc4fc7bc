/** Small DOM helpers shared by the views: element building, text formats, messages. */

/**
 * Builds an element. `attrs` sets properties (`className`, `textContent`, `onclick`…) or,
 * for names with a dash or `for`/`role`, attributes. Children are nodes or strings.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value);
    } else if (name.includes('-') || name === 'for' || name === 'role' || name === 'scope') {
      el.setAttribute(name, value === true ? '' : String(value));
    } else {
      el[name] = value;
    }
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Shortcut for `document.getElementById`. */
export const $ = (id) => document.getElementById(id);

/** Replaces every child of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** "1 h 02 min", "4 min 05 s", "12 s". */
export function duration(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  const two = (n) => String(n).padStart(2, '0');
  if (hours > 0) return `${hours} h ${two(minutes)} min`;
  if (minutes > 0) return `${minutes} min ${two(seconds)} s`;
  return `${seconds} s`;
}

/** "12:03" (hh:mm:ss under an hour shown as mm:ss) for compact countdowns. */
export function clock(ms) {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const two = (n) => String(n).padStart(2, '0');
  const hours = Math.floor(total / 3600);
  const rest = `${two(Math.floor((total % 3600) / 60))}:${two(total % 60)}`;
  return hours > 0 ? `${hours}:${rest}` : rest;
}

/** A date and time in the reader's locale. */
export function when(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? '—' : date.toLocaleString();
}

/** "1 day", "3 days". */
export function plural(n, one, many) {
  return `${n.toLocaleString()} ${Math.abs(n) === 1 ? one : many}`;
}

/** "1 lemon", "3 lemons". */
export function lemons(n) {
  return plural(n, 'lemon', 'lemons');
}

/** "2 lemons/h" (an hourly price, with its unit). */
export function perHour(n) {
  return `${lemons(n)}/h`;
}

/** "48 lemons/day". */
export function perDay(n) {
  return `${lemons(n)}/day`;
}

/** "1,440 lemons/month". */
export function perMonth(n) {
  return `${lemons(n)}/month`;
}

/** "14:00" in the reader's time zone. */
export function hourMinute(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? '—' : date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/** "today at 14:00", "tomorrow at 03:00", or a date and time. */
export function dayAndTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '—';
  const start = (d) => new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
  const days = Math.round((start(date) - start(new Date())) / 86_400_000);
  const at = hourMinute(iso);
  if (days === 0) return `today at ${at}`;
  if (days === 1) return `tomorrow at ${at}`;
  return date.toLocaleString([], { weekday: 'short', hour: '2-digit', minute: '2-digit' });
}

/** The text of an error: its sentence for people (ApiError.message) or the thrown text. */
export function errorText(error) {
  return error?.message ?? String(error);
}

/**
 * Shows a short message in the live region at the bottom of the page. `message` is a string
 * or an error (its sentence is shown).
 */
export function toast(message, kind = 'info') {
  const region = $('toasts');
  const text = typeof message === 'string' ? message : errorText(message);
  const item = h('div', { className: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
  region.append(item);
  // at most two at a time: older ones make room
  while (region.children.length > 2) region.firstElementChild.remove();
  setTimeout(() => item.remove(), 6000);
}

/**
 * Writes an error (or clears it) in a form's error slot: the sentence for people, and the
 * server's own words behind a "Details" disclosure when they add something.
 */
export function showError(slot, error) {
  if (!slot) return;
  if (!error) {
    slot.replaceChildren();
    slot.hidden = true;
    return;
  }
  slot.replaceChildren(errorText(error));
  if (error.detail) {
    slot.append(' ', h('details', { className: 'detail' }, h('summary', {}, 'Details'), h('span', {}, error.detail)));
  }
  slot.hidden = false;
}

/** Disables a button while `work` runs. */
export async function busy(button, work) {
  const was = button.disabled;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    return await work();
  } finally {
    button.disabled = was;
    button.removeAttribute('aria-busy');
  }
}

/** Copies text, telling the user whether it worked. */
export async function copy(text, what) {
  try {
    await navigator.clipboard.writeText(text);
    toast(`${what} copied to the clipboard.`);
  } catch {
    toast(`Your browser refused the clipboard: select the ${what.toLowerCase()} and copy it by hand.`, 'error');
  }
}

/** A tick every second for countdowns; returns the stop function. */
export function everySecond(fn) {
  fn();
  const id = setInterval(fn, 1000);
  return () => clearInterval(id);
}
