/**
 * Signing in with an emailed code (with the resend countdown the server's `Retry-After` or
 * `resendAfterSeconds` sets), signing out, and the signed-in user's profile shown in the header.
 */

import { api, session } from './api.js';
import { $, busy, clock, duration, everySecond, plural, showError, toast } from './ui.js';

let profile = null;
const listeners = new Set();
let resendReadyAt = 0;
let stopResendTick = null;
let stopCooldownTick = null;

/** The signed-in user's profile, or null. */
export function currentProfile() {
  return profile;
}

/** Calls `fn(profile)` whenever the profile changes. */
export function onProfile(fn) {
  listeners.add(fn);
}

function setProfile(next) {
  profile = next;
  renderHeader();
  for (const fn of listeners) fn(profile);
}

/** Reloads the profile (after a harvest, a creation, or on sign-in). */
export async function refreshProfile() {
  if (!session.signedIn) {
    setProfile(null);
    return null;
  }
  try {
    setProfile(await api('GET', '/me', { auth: true }));
  } catch (error) {
    if (error.status !== 401) toast(error, 'error');
  }
  return profile;
}

/** Updates only the balance (the harvest answer carries it). */
export function setBalance(balance) {
  if (profile) setProfile({ ...profile, balance });
}

/**
 * Milliseconds of harvest cooldown left: the one source every countdown of the rest reads
 * (the header chip, the tree's banner, the lemons' labels, the messages).
 */
export function cooldownLeftMs() {
  if (!profile?.cooldownUntil) return 0;
  return Math.max(0, Date.parse(profile.cooldownUntil) - Date.now());
}

/** The cooldown left as "59:58" (or "1:00:00"), the one format every countdown uses. */
export function cooldownText() {
  return clock(cooldownLeftMs());
}

function renderHeader() {
  const signedIn = profile !== null;
  $('balance-chip').hidden = !signedIn;
  $('streak-chip').hidden = !signedIn;
  if (signedIn) {
    $('balance').textContent = String(profile.balance);
    $('balance-unit').textContent = profile.balance === 1 ? 'lemon' : 'lemons';
    $('streak').textContent = plural(profile.streakDays, 'day', 'days');
  }
  stopCooldownTick?.();
  stopCooldownTick = everySecond(() => {
    const left = cooldownLeftMs();
    $('cooldown-chip').hidden = left === 0;
    $('cooldown').textContent = cooldownText();
    $('cooldown-chip').title = left > 0 ? `Your lemons rest: you can harvest again in ${duration(left)}` : '';
    document.dispatchEvent(new CustomEvent('dbtree:cooldown-tick'));
    if (left === 0 && profile?.cooldownUntil) {
      stopCooldownTick?.();
      refreshProfile();
    }
  });
}

/** Called when a token is stored or cleared. */
export function sessionChanged() {
  refreshProfile();
}

/** Ends this device's session. */
export async function signOut() {
  try {
    await api('DELETE', '/auth/session', { auth: true });
  } catch (error) {
    if (error.status !== 401) toast(error, 'error');
  }
  session.clear();
  location.hash = '#tree';
}

/** Ends every session of this account. */
export async function signOutEverywhere() {
  await api('DELETE', '/auth/sessions', { auth: true });
  session.clear();
  toast('Signed out on every device.');
  location.hash = '#tree';
}

function startResendCountdown(seconds) {
  resendReadyAt = Date.now() + seconds * 1000;
  stopResendTick?.();
  stopResendTick = everySecond(() => {
    const left = resendReadyAt - Date.now();
    const button = $('resend-code');
    if (left <= 0) {
      button.disabled = false;
      $('resend-wait').textContent = '';
      stopResendTick?.();
    } else {
      button.disabled = true;
      $('resend-wait').textContent = `You can ask for another code in ${duration(left)}.`;
    }
  });
}

async function requestCode(email) {
  try {
    const sent = await api('POST', '/auth/code', { body: { email } });
    $('code-sent-to').textContent = `We sent a code to ${sent.email}. It expires at ${new Date(sent.expiresAt).toLocaleTimeString()}.`;
    $('email-form').hidden = true;
    $('code-form').hidden = false;
    showError($('code-error'), null);
    startResendCountdown(sent.resendAfterSeconds);
    $('code').focus();
    return true;
  } catch (error) {
    if (error.retryAfterSeconds !== undefined) startResendCountdown(error.retryAfterSeconds);
    throw error;
  }
}

function pendingEmail() {
  return $('email').value.trim();
}

/** Wires the sign-in forms. */
export function init() {
  $('email-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const email = pendingEmail();
    const slot = $('email-error');
    if (!$('email').checkValidity() || email === '') {
      showError(slot, new Error('Enter a valid email address.'));
      $('email').focus();
      return;
    }
    showError(slot, null);
    await busy($('send-code'), async () => {
      try {
        await requestCode(email);
      } catch (error) {
        // a resend too soon still means a code is on its way: let the user type it
        if (error.code === 'resend_too_soon') {
          $('email-form').hidden = true;
          $('code-form').hidden = false;
          $('code-sent-to').textContent = `A code was already sent to ${email}.`;
          $('code').focus();
        } else {
          showError(slot, error);
        }
      }
    });
  });

  $('code-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const code = $('code').value.trim();
    const slot = $('code-error');
    if (!/^[0-9]{6}$/.test(code)) {
      showError(slot, new Error('The code is six digits.'));
      $('code').focus();
      return;
    }
    showError(slot, null);
    await busy($('verify-code'), async () => {
      try {
        const created = await api('POST', '/auth/session', { body: { email: pendingEmail(), code } });
        session.set(created.token);
        setProfile(created.profile);
        $('code').value = '';
        $('code-form').hidden = true;
        $('email-form').hidden = false;
        toast(created.isNewUser ? `Welcome! ${created.profile.balance} lemons to start with.` : 'Signed in.');
        location.hash = '#tree';
      } catch (error) {
        showError(slot, error);
        $('code').focus();
      }
    });
  });

  $('resend-code').addEventListener('click', async () => {
    await busy($('resend-code'), async () => {
      try {
        await requestCode(pendingEmail());
        toast('A new code is on its way.');
      } catch (error) {
        showError($('code-error'), error);
      }
    });
    if (resendReadyAt > Date.now()) $('resend-code').disabled = true;
  });

  $('change-email').addEventListener('click', () => {
    $('code-form').hidden = true;
    $('email-form').hidden = false;
    $('email').focus();
  });
}

/** The sign-in view. */
export function show() {
  if (session.signedIn) {
    $('code-sent-to').textContent = '';
  }
  (($('code-form').hidden ? $('email') : $('code'))).focus();
}
