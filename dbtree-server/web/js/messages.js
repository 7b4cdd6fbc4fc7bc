/**
 * What each error code of the API means for a person. The server's own message (which may name
 * an internal cause) is kept as a detail, shown on request; the sentence here is what the page
 * says. A server unit test checks that every code the API can answer has a sentence here.
 */

const n = (value, fallback = '?') => (Number.isFinite(Number(value)) ? Number(value) : fallback);
const lemonsOf = (value) => `${n(value)} ${n(value) === 1 ? 'lemon' : 'lemons'}`;
const time = (iso) => {
  const date = new Date(iso ?? '');
  return Number.isNaN(date.getTime()) ? null : date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
};
const seconds = (d) => `${n(d.retryAfterSeconds)} s`;

/** code → (details) → sentence. */
export const SENTENCES = {
  // sign-in
  invalid_email: () => 'That does not look like an email address. Check it and try again.',
  disposable_email: () => 'Addresses from throwaway mail services cannot sign in. Please use an address you keep.',
  invalid_code: () => 'The code is the six digits from the email.',
  wrong_code: (d) => `That code is not right. ${n(d.attemptsLeft)} ${n(d.attemptsLeft) === 1 ? 'try is' : 'tries are'} left before it locks.`,
  code_locked: () => 'This code is locked after too many wrong tries. Ask for a new code.',
  code_expired: () => 'This code has expired (codes last 10 minutes). Ask for a new code.',
  no_pending_code: () => 'There is no code waiting for this address. Ask for one first.',
  resend_too_soon: (d) => `A code is already on its way. You can ask for another in ${seconds(d)}.`,
  too_many_codes: (d) => `Too many codes were asked for this address. Try again in ${seconds(d)}.`,
  too_many_requests: (d) => `Too many tries in a short time. Please wait ${seconds(d)} and try again.`,
  mail_unavailable: () => 'We could not send the email just now. Please try again in a moment.',
  unauthenticated: () => 'Please sign in first.',
  invalid_token: () => 'Your session is not valid any more. Please sign in again.',
  session_invalid: () => 'Your session has ended. Please sign in again.',
  forbidden: () => 'Only administrators may do that.',
  account_not_found: () => 'This account does not exist any more.',
  // the tree
  invalid_position: () => 'There is no lemon there.',
  harvest_cooldown: (d) => `You harvested recently: the tree rests for you until ${time(d.until) ?? 'later'}.`,
  lemon_storage_full: (d) => `Your lemon storage is full (${lemonsOf(d.cap)}). Spend some on a database first.`,
  lemon_not_ripe: () => 'That lemon is still regrowing. Pick a ripe one.',
  quiz_in_progress: (d) => {
    const until = time(d.until);
    return until
      ? `You have a quiz open in another tab or device. It ends at ${until}; close it there to play here now.`
      : 'You have a quiz open in another tab or device. Close it there to play here.';
  },
  attempt_not_found: () => 'This quiz is not yours or no longer exists. Pick a lemon to start a new one.',
  invalid_option: () => 'That answer is not one of the options.',
  already_answered: () => 'You already answered this quiz.',
  quiz_abandoned: () => 'You gave this quiz up. Pick a lemon to start a new one.',
  quiz_time_expired: () => 'Too late: the time to answer ran out. Pick another lemon.',
  no_quiz_passed: () => 'This lemon needs a right answer in time before you can harvest it.',
  lemon_already_harvested: () => 'Someone was faster: the lemon was already harvested.',
  harvest_window_closed: () => 'Too late: the 5 seconds to click ran out.',
  click_after_window: () => 'Too late: the click came after the 5-second window.',
  click_missed: () => 'Missed the circle.',
  invalid_click: () => 'That click was outside the play area.',
  // databases
  invalid_name: () => 'Names are 3–40 lower-case letters, digits and dashes, starting and ending with a letter or digit.',
  name_taken: () => 'You already have a database with this name. Pick another name.',
  invalid_resources: () => 'Check the size: vCPU 0.1–2.0 in steps of 0.05, memory 128–4096 MiB, disk 1–50 GiB.',
  invalid_spec: () => 'Choose a preset size or enter a custom size.',
  instance_limit: (d) => `You already have ${n(d.used)} of ${n(d.limit)} databases, the most an account can have. Delete one to create another.`,
  insufficient_lemons: (d) => `This needs ${lemonsOf(d.required)} and you have ${lemonsOf(d.available)}. Harvest lemons on the tree first.`,
  capacity_exceeded: () => 'The server has no room for a database of this size right now. Try a smaller size, or later.',
  node_ports_exhausted: () => 'All connection ports are taken right now. Please try again later.',
  port_busy: () => 'Another program on the server is using this database\'s port, so it could not start. It stays stopped with its data and its port; try starting it again in a few minutes.',
  provisioning_failed: () => 'The database could not be started, so its creation cost was refunded. It shows as failed in your list; delete it and try again, or pick another engine.',
  invalid_state: (d) => `That is not possible while the database is ${d.status ?? 'in its current state'}.`,
  instance_not_running: () => 'The database must be running for that. Start it first.',
  instance_not_found: () => 'This database does not exist any more.',
  cluster_unavailable: () => 'The database host could not apply that just now; nothing changed. Please try again in a moment.',
  // dashboard and support
  out_of_range: (d) => `${d.field ?? 'A value'} must be between ${n(d.min)} and ${n(d.max)}.`,
  invalid_inquiry: (d) => `The ${d.field ?? 'message'} must be ${n(d.min)}–${n(d.max)} characters long.`,
  // administrators
  invalid_quiz: () => 'The quiz is not valid; check the highlighted field.',
  quiz_exists: () => 'This question is in the bank already.',
  quiz_not_found: () => 'This quiz does not exist.',
  // anything
  invalid_id: () => 'That link points to nothing we know. Reload the page.',
  invalid_json: () => 'The page sent something the server could not read. Reload the page and try again.',
  invalid_body: () => 'The page sent something the server could not read. Reload the page and try again.',
  invalid_request: () => 'The page sent something the server could not read. Reload the page and try again.',
  payload_too_large: () => 'That is too long to send.',
  request_timeout: () => 'That took too long to arrive. Please send it again.',
  too_many_streams: (d) => `Too many live views are open from here. Close a tab, then try again in ${seconds(d)}.`,
  stream_capacity_reached: (d) => `Live updates are full right now; the page will retry in ${seconds(d)}.`,
  service_unavailable: (d) => `The service is busy or restarting. Please try again in ${seconds(d)}.`,
  internal_error: () => 'Something went wrong on our side. Please try again in a moment.',
  network: () => 'The server cannot be reached. Check your connection.',
};

/**
 * The sentence for an error (an `ApiError` or any `Error`) and the server's own words, if they
 * add something.
 * @returns {{text: string, detail: string | null}}
 */
export function explain(error) {
  const sentence = SENTENCES[error?.code];
  if (!sentence) return { text: error?.message ?? String(error), detail: null };
  const text = sentence(error.details ?? {});
  const server = error.serverMessage ?? null;
  return { text, detail: server && server !== text ? server : null };
}
