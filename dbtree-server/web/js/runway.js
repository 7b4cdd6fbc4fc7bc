/**
 * The runway: how long the balance keeps the running databases going (from the profile the
 * server computes: `hourlyBurn`, `runwayHours`, `runwayEndsAt`, `lowBalance`), shown next to the
 * balance, on each database, and as a banner when it is low; and what pausing and deletion mean,
 * said before they happen.
 */

import { onProfile } from './auth.js';
import { $, dayAndTime, perHour, plural } from './ui.js';

/** "an hour", "90 minutes". */
export function graceText(profile) {
  const minutes = profile?.pauseGraceMinutes ?? 60;
  if (minutes === 60) return 'an hour';
  if (minutes % 60 === 0) return plural(minutes / 60, 'hour', 'hours');
  return plural(minutes, 'minute', 'minutes');
}

/** "7 h" / "less than an hour" for the header, or null when nothing runs. */
export function runwayShort(profile) {
  if (!profile || profile.runwayHours === undefined || profile.runwayHours === null) return null;
  if (profile.runwayHours === 0) return 'lasts < 1 h';
  return `lasts ${profile.runwayHours} h`;
}

/** A sentence about the runway, or null when nothing runs. */
export function runwaySentence(profile) {
  if (!profile || profile.runwayHours === undefined || profile.runwayHours === null) return null;
  const hours = profile.runwayHours === 0 ? 'less than an hour' : `about ${plural(profile.runwayHours, 'hour', 'hours')}`;
  const pause = profile.runwayEndsAt ? ` Billing pauses a database ${dayAndTime(profile.runwayEndsAt)} unless you harvest more.` : '';
  return `Your lemons pay your running databases (${perHour(profile.hourlyBurn)}) for ${hours}.${pause}`;
}

/**
 * What happens to one database at the current burn, for the list's "Runs until" column: when
 * a running one will be paused, or when a paused one will be deleted; null otherwise.
 */
export function instancePlan(instance) {
  if (instance.status === 'running' && instance.pausesAt) {
    return dayAndTime(instance.pausesAt);
  }
  if (instance.status === 'paused' && instance.deletesAt) {
    return `deleted ${dayAndTime(instance.deletesAt)} unless you harvest lemons`;
  }
  return null;
}

/** The same, in a full sentence for the detail view. */
export function instancePlanSentence(instance, profile) {
  const grace = graceText(profile);
  if (instance.status === 'running' && instance.pausesAt) {
    return `At your balance it runs until ${dayAndTime(instance.pausesAt)}; then it is paused (data kept), and deleted with its data ${dayAndTime(instance.deletesAt)} if your lemons still cannot pay (${grace} later).`;
  }
  if (instance.status === 'paused' && instance.deletesAt) {
    return `Paused for lack of lemons. Harvest lemons and it starts again by itself; otherwise it is deleted with its data ${dayAndTime(instance.deletesAt)}.`;
  }
  if (instance.status === 'stopped') return 'Stopped: it costs nothing and keeps its data.';
  return null;
}

function render(profile) {
  const short = runwayShort(profile);
  $('runway-chip').hidden = short === null;
  $('runway').textContent = short ?? '';
  const sentence = runwaySentence(profile);
  $('balance-chip').title = sentence ?? 'Your lemons';
  const low = Boolean(profile?.lowBalance);
  $('runway-chip').classList.toggle('low', low);
  $('low-balance').hidden = !low;
  if (low) {
    const hours = profile.runwayHours === 0 ? 'less than an hour' : `about ${plural(profile.runwayHours, 'hour', 'hours')}`;
    const when = profile.runwayEndsAt ? ` Billing pauses a database ${dayAndTime(profile.runwayEndsAt)} (data kept) and deletes it ${graceText(profile)} later unless you harvest lemons.` : '';
    $('low-balance-text').textContent = `Low on lemons: ${perHour(profile.hourlyBurn)} leaves ${hours}.${when}`;
  }
  const grace = $('grace-text');
  if (grace) grace.textContent = graceText(profile);
}

/** Follows the profile. */
export function init() {
  onProfile(render);
}
