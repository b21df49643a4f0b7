// apheresisd dashboard. Plain JavaScript, no framework, no build step: it ships inside the daemon's
// binary and the workstations are offline.
//
// Rules this file keeps:
// - Text from the API only ever reaches the page through textContent or attributes, never as markup.
// - Live data comes from the Server-Sent Events stream (/api/v1/stream); nothing polls for alarms.
// - Data that is not current is never shown as current: every card knows the age of its data.
'use strict';

(() => {
  const API = '/api/v1';
  /** Every request from the page says it is the dashboard: the server accepts the session cookie
   *  only with this header (CSRF defence) and then never asks the browser for Basic credentials. */
  const CLIENT_HEADER = ['X-Requested-With', 'apheresisd-dashboard'];
  const RECONNECT_DELAY_MS = 2000;
  /** Data older than this (or than 3 sample intervals, if the device sends more slowly) is stale. */
  const MIN_STALE_AFTER_S = 15;
  /** A cleared alarm stays visible, greyed, for this long so that the change is noticed. */
  const CLEARED_VISIBLE_MS = 120000;
  /** The server keeps this many points per run; so do we. */
  const SERIES_LIMIT = 2880;
  /** A beep that could not play (audio locked) is dropped if it would come this late. */
  const BEEP_MAX_DELAY_MS = 10000;
  /** While an alarm waits for acknowledgement the sound repeats: more often for an alarm than a warning. */
  const BEEP_REPEAT_MS = { alarm: 30000, warning: 60000 };
  /** The daemon ends a session after this long without use (docs/api.md; SessionBook's idle limit). */
  const SESSION_IDLE_MS = 30 * 60 * 1000;
  const SVG_NS = 'http://www.w3.org/2000/svg';

  // ---------------------------------------------------------------------------------------------
  // State. One object, exposed as window.dashboardState for diagnostics.

  const state = {
    connection: 'connecting', // connecting | live | reconnecting
    connectedAt: null,
    disconnectedAt: null,
    lastEventAt: null,
    lastEventName: null,
    eventCounts: {},
    reconnects: 0,
    /** The last error thrown by one of the page's own handlers (null if none): the browser test asserts
     *  it stays null. Failed requests and stream drops are not handler errors; they have their own fields. */
    lastError: null,
    lastStreamProblem: null,
    lastRequestProblem: null,
    /** Counts alarm events; each alarm record keeps the count of its last one (see rowIsOutdated). */
    alarmEventSeq: 0,
    /** The newest events, for diagnostics: [client ms, name, summary]. */
    recentEvents: [],
    session: null, // {user, role, expires_at} or null
    /** Client time of the last request that used the session (it moves the daemon's idle limit). */
    sessionUsedAt: null,
    /** device name -> {name, serial, link, linkState, activityAt (client ms), lastError} */
    devices: new Map(),
    /** device name -> the run shown on its card (see newRun) */
    runs: new Map(),
    /** alarm key -> alarm record (see alarmFromRow); key is "id:N" or, before the id is known, "p:serial:code" */
    alarms: new Map(),
    get beeps() { return Number(document.body.dataset.beeps || 0); },
  };
  window.dashboardState = state;

  const $ = (id) => document.getElementById(id);

  /** An error in one of our handlers: kept for diagnostics and logged, and the page goes on. */
  function reportError(where, err) {
    state.lastError = `${where}: ${(err && err.message) || err}`;
    console.error('apheresisd dashboard:', where, err);
  }

  // ---------------------------------------------------------------------------------------------
  // Formatting. Numbers keep their unit next to them; a missing value is an en dash, never 0.

  const DASH = '–';

  function isNum(v) { return typeof v === 'number' && Number.isFinite(v); }

  function fmt(v, digits) { return isNum(v) ? v.toFixed(digits) : DASH; }

  /** UCUM units as a nurse reads them. */
  function unitText(unit) {
    if (!unit) return '';
    if (unit === '{ratio}') return ':1';
    if (unit === '{TBV}') return 'TBV';
    return unit.replace(/[{}]/g, '');
  }

  function valueWithUnit(v, unit) {
    if (!isNum(v)) return '';
    const digits = Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2;
    const u = unitText(unit);
    return u.startsWith(':') ? `${v.toFixed(digits)}${u}` : `${v.toFixed(digits)} ${u}`.trim();
  }

  function formatDuration(seconds) {
    if (!isNum(seconds)) return DASH;
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
    const h = Math.floor(s / 3600);
    return `${h} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
  }

  function formatMinutes(min) {
    if (!isNum(min)) return DASH;
    const m = Math.round(min);
    if (m < 60) return `${m} min`;
    return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
  }

  /** 1.2e9 -> "1.2 × 10⁹ cells" */
  function formatCells(n) {
    if (!isNum(n) || n <= 0) return DASH;
    const exp = Math.floor(Math.log10(n));
    const mant = n / 10 ** exp;
    const sup = String(exp).split('').map((d) => '⁰¹²³⁴⁵⁶⁷⁸⁹'[Number(d)]).join('');
    return `${mant.toFixed(1)} × 10${sup} cells`;
  }

  /** One clock format everywhere (banners, history, tables, chart axes): local wall time, 24-hour,
   *  zero-padded: HH:MM, or HH:MM:SS where seconds matter. Takes ISO 8601 text or milliseconds. */
  function toDate(t) {
    const d = typeof t === 'number' ? new Date(t) : t ? new Date(t) : null;
    return d && !Number.isNaN(d.getTime()) ? d : null;
  }

  const pad2 = (n) => String(n).padStart(2, '0');

  function formatClock(t, withSeconds) {
    const d = toDate(t);
    if (!d) return DASH;
    const hm = `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
    return withSeconds ? `${hm}:${pad2(d.getSeconds())}` : hm;
  }

  /** HH:MM:SS: alarm times, banners and the alarm history. */
  function formatTime(t) { return formatClock(t, true); }

  function formatDateTime(t) {
    const d = toDate(t);
    if (!d) return DASH;
    return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${formatClock(d)}`;
  }

  /** Today's times as HH:MM:SS, earlier days with their date. */
  function formatWhen(t) {
    const d = toDate(t);
    if (!d) return DASH;
    return d.toDateString() === new Date().toDateString() ? formatTime(d) : `${formatDateTime(d)}:${pad2(d.getSeconds())}`;
  }

  /** Sets textContent only when it changed (keeps the DOM quiet at 60x simulator speed). */
  function setText(el, text) {
    if (el && el.textContent !== text) el.textContent = text;
  }

  function setAttr(el, name, value) {
    if (!el) return;
    if (value === null || value === undefined) {
      if (el.hasAttribute(name)) el.removeAttribute(name);
    } else if (el.getAttribute(name) !== String(value)) {
      el.setAttribute(name, String(value));
    }
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  // ---------------------------------------------------------------------------------------------
  // HTTP. JSON replies are {"api_version":1,"data":...} or {"error":{"code","message"}}.

  async function request(method, path, body) {
    const headers = { [CLIENT_HEADER[0]]: CLIENT_HEADER[1], Accept: 'application/json' };
    const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
    const isWrite = method !== 'GET' && method !== 'HEAD';
    // The server refuses a write without a JSON content type (also sign-in, and a DELETE without a body).
    if (isWrite) headers['Content-Type'] = 'application/json';
    if (body !== undefined) init.body = JSON.stringify(body);
    let response;
    try {
      response = await fetch(API + path, init);
    } catch (err) {
      return { ok: false, status: 0, message: 'apheresisd does not answer (network error)' };
    }
    let json = null;
    try { json = await response.json(); } catch (_) { /* not JSON: message below */ }
    if (response.ok && json && 'data' in json) {
      // A write with the session touched it: the daemon's idle limit starts again from now.
      if (isWrite && state.session) state.sessionUsedAt = Date.now();
      return { ok: true, status: response.status, data: json.data };
    }
    const message = (json && json.error && json.error.message) || `HTTP ${response.status} ${response.statusText}`;
    if (response.status === 401 && method !== 'GET') onSessionLost();
    return { ok: false, status: response.status, code: json && json.error && json.error.code, message };
  }

  // ---------------------------------------------------------------------------------------------
  // Devices and runs.

  function ensureDevice(name, serial) {
    let d = state.devices.get(name);
    if (!d) {
      d = { name, serial: serial || null, link: null, linkState: 'connecting', activityAt: null, lastError: null };
      state.devices.set(name, d);
    }
    if (serial && !d.serial) d.serial = serial;
    return d;
  }

  /** Alarms and runs name the device by serial number; cards are named by the configured name. */
  function deviceNameForSerial(serial) {
    // A link alarm of a separator that never answered may have no serial: it must not match another.
    if (!serial) return 'unknown separator';
    for (const d of state.devices.values()) if (d.serial === serial) return d.name;
    for (const [name, run] of state.runs) if (run.serial === serial) return name;
    return serial || 'unknown separator';
  }

  function newRun(fields) {
    return {
      ref: null, runId: null, serial: null, procedure: null, profile: null, patient: null,
      openedAt: null, ended: false, endedAt: null,
      values: {}, runTime: null, sampleAt: null, intervalMs: null,
      watch: null, series: [],
      presetNote: null,
      ...fields,
    };
  }

  /** A run from the API's run JSON (snapshot open_runs, GET /runs). */
  function runFromJSON(r) {
    const run = newRun({
      ref: r.id, runId: r.run_id, serial: r.device_serial, procedure: r.procedure, profile: r.profile,
      patient: r.patient || null, openedAt: r.opened_at, ended: r.state !== 'open',
    });
    if (r.latest_sample) {
      run.values = r.latest_sample.values || {};
      run.runTime = r.latest_sample.run_time_minutes;
    }
    if (isNum(r.latest_sample_age_seconds)) run.sampleAt = Date.now() - r.latest_sample_age_seconds * 1000;
    if (r.watch) applyWatch(run, r.watch, true);
    return run;
  }

  /** Takes the watcher's view; the history comes with it only from the snapshot and GET …/watch. */
  function applyWatch(run, watch, withSeries) {
    run.watch = watch;
    if (isNum(watch.run_ref)) run.ref = watch.run_ref;
    if (watch.presets && watch.presets.profile) run.profile = watch.presets.profile;
    if (withSeries && Array.isArray(watch.series)) {
      run.series = watch.series.map(pointFromSeries).filter((p) => isNum(p.t));
      // A point without its receive time (a daemon that does not say it) is placed by its run time
      // from the newest point that has one.
      const anchor = [...run.series].reverse().find((p) => isNum(p.w));
      const at = anchor || (isNum(run.sampleAt) && run.series.length ? { t: run.series[run.series.length - 1].t, w: run.sampleAt } : null);
      if (at) for (const p of run.series) if (!isNum(p.w)) p.w = at.w - (at.t - p.t) * 60000;
    }
  }

  function pointFromSeries(p) {
    return {
      t: p.run_time_minutes, w: serverTime(p.received_at), ratio: p.window_ratio, ac: p.ac_infusion_rate_ml_per_min_per_l,
      citrate: p.citrate_load_rate_mg_per_kg_per_min, collected: p.collected_ml,
    };
  }

  /** Samples are keyed by run time: a repeated or replayed one replaces, never draws backwards. */
  function addPoint(run, point) {
    if (!isNum(point.t)) return;
    const s = run.series;
    if (s.length && s[s.length - 1].t >= point.t) {
      run.series = s.filter((p) => p.t < point.t);
    }
    run.series.push(point);
    if (run.series.length > SERIES_LIMIT) run.series.splice(0, run.series.length - SERIES_LIMIT);
  }

  /** The derived values: the watcher's when there is one, else what the device itself reported. */
  function derivedOf(run) {
    if (run.watch && run.watch.derived) return run.watch.derived;
    const v = (code) => (run.values[code] ? run.values[code].value : null);
    return {
      window_ratio: null, device_ratio: v('AC_RATIO'), ac_infusion_rate_ml_per_min_per_l: v('AC_INF_RATE'),
      citrate_load_rate_mg_per_kg_per_min: null, collected_ml: v('COLLECT_VOL'),
      whole_blood_processed_ml: v('WB_VOL'), blood_volumes_processed: v('TBV_PROCESSED'),
    };
  }

  function presetsOf(run) { return (run.watch && run.watch.presets) || {}; }

  /** Seconds after which this card's data counts as stale. */
  function staleAfterSeconds(run) {
    const interval = run && isNum(run.intervalMs) ? run.intervalMs / 1000 : 0;
    return Math.max(MIN_STALE_AFTER_S, 3 * interval);
  }

  /** How current a card's data is: what it shows is current only if all of this holds. */
  function freshness(name) {
    const device = state.devices.get(name);
    const run = state.runs.get(name);
    const now = Date.now();
    const openRun = run && !run.ended ? run : null;
    const lastAt = openRun ? openRun.sampleAt : device && device.activityAt;
    const ageS = isNum(lastAt) ? (now - lastAt) / 1000 : null;
    const linkState = device ? device.linkState : 'unknown';
    const reasons = [];
    if (state.connection !== 'live') reasons.push('no connection to apheresisd');
    if (device && linkState !== 'up') reasons.push(`link ${linkState.toUpperCase()}`);
    if (openRun && (ageS === null || ageS > staleAfterSeconds(openRun))) reasons.push('no new data');
    return { ageS, stale: openRun !== null && reasons.length > 0, reasons, openRun };
  }

  // ---------------------------------------------------------------------------------------------
  // Cards.

  const cards = new Map(); // device name -> card element

  function cardFor(name) {
    let card = cards.get(name);
    if (card) return card;
    card = $('card-template').content.firstElementChild.cloneNode(true);
    card.dataset.device = name;
    card.querySelector('[data-role="change-presets"]').addEventListener('click', () => openPresetsDialog(name));
    cards.set(name, card);
    // Keep the cards in a stable order (by name) so that nurses find a separator where it was.
    const names = [...cards.keys()].sort();
    const next = names[names.indexOf(name) + 1];
    $('cards').insertBefore(card, next ? cards.get(next) : null);
    $('no-devices').hidden = true;
    return card;
  }

  function removeCard(name) {
    const card = cards.get(name);
    if (card) card.remove();
    cards.delete(name);
    $('no-devices').hidden = cards.size > 0;
  }

  const field = (card, name) => card.querySelector(`[data-field="${name}"]`);

  const dirty = new Set();
  let frameRequested = false;

  /** Samples can arrive many times a second (simulator at 60x): draw at most once per frame. The card
   *  and its link state are updated at once, so they are right even where frames do not run (a
   *  background tab). */
  function scheduleRender(name) {
    cardFor(name);
    renderFreshness(name);
    dirty.add(name);
    if (frameRequested) return;
    frameRequested = true;
    requestAnimationFrame(() => {
      frameRequested = false;
      for (const n of dirty) renderCard(n);
      dirty.clear();
    });
  }

  function renderCard(name) {
    const card = cardFor(name);
    const device = state.devices.get(name);
    const run = state.runs.get(name);
    setText(field(card, 'name'), name);
    setText(field(card, 'serial'), (device && device.serial) || (run && run.serial) || '');
    renderFreshness(name);
    renderRunLine(card, run);
    renderMetrics(card, run);
    renderBars(card, run);
    renderCharts(card, run);
    renderPredictions(card, run);
    renderPresetsLine(card, run);
    renderCardAlarmLevel(name);
  }

  /** Link state and age: refreshed every second as well as on events. */
  function renderFreshness(name) {
    const card = cards.get(name);
    if (!card) return;
    const device = state.devices.get(name);
    const f = freshness(name);
    const linkEl = card.querySelector('[data-role="link-state"]');
    const linkState = device ? device.linkState : 'unknown';
    setText(linkEl, linkState.toUpperCase());
    setAttr(linkEl, 'data-link-state', linkState);
    setAttr(linkEl, 'title', device && device.lastError ? `last error: ${device.lastError}` : null);
    const ageEl = card.querySelector('[data-role="data-age"]');
    let ageText;
    if (f.ageS === null) ageText = f.openRun ? 'no data yet' : 'no activity yet';
    else if (f.stale) ageText = `last data ${formatDuration(f.ageS)} ago`;
    else ageText = `${f.openRun ? 'data' : 'activity'} ${formatDuration(f.ageS)} ago`;
    setText(ageEl, ageText);
    setAttr(ageEl, 'data-stale', f.stale ? 'true' : 'false');
    card.classList.toggle('is-stale', f.stale);
    const note = card.querySelector('[data-role="stale-note"]');
    note.hidden = !f.stale;
    if (f.stale) {
      const age = f.ageS === null ? 'no data received' : `last data ${formatDuration(f.ageS)} ago`;
      setText(note, `NOT CURRENT: ${age} (${f.reasons.join(', ')})`);
    }
  }

  function renderRunLine(card, run) {
    card.classList.toggle('no-run', !run);
    const device = state.devices.get(card.dataset.device);
    const note = card.querySelector('[data-role="device-note"]');
    const error = device && device.linkState !== 'up' && device.lastError ? `Link: ${device.lastError}` : '';
    note.hidden = !error;
    setText(note, error);
    setAttr(note, 'title', error || null);
    if (!run) {
      setText(field(card, 'run-id'), 'No run in progress');
      setText(field(card, 'patient'), '');
      setText(field(card, 'run-state'), '');
      setText(field(card, 'completeness'), '');
      return;
    }
    // Telemetry completeness: said quietly while complete, loudly once anything is missing.
    const c = run.watch && run.watch.completeness;
    const complete = c ? c.complete !== false : true;
    setText(field(card, 'completeness'), c
      ? (complete ? `telemetry ${fmt(c.percent_of_expected_ticks, 0)} %` : `TELEMETRY GAPS: ${c.summary}`)
      : '');
    setAttr(field(card, 'completeness'), 'data-complete', c ? String(complete) : '');
    setText(field(card, 'run-id'), run.runId || DASH);
    const p = run.patient || {};
    const parts = [];
    const fullName = [p.family_name, p.given_name].filter(Boolean).join(', ');
    if (fullName) parts.push(fullName);
    if (p.id) parts.push(p.id);
    if (isNum(p.weight_kilograms)) parts.push(`${p.weight_kilograms} kg`);
    if (run.procedure) parts.push(run.procedure);
    if (run.profile) parts.push(`profile ${run.profile}`);
    setText(field(card, 'patient'), parts.join(' · '));
    const d = derivedOf(run);
    let runState = '';
    if (run.ended) runState = `RUN ENDED${run.endedAt ? ' ' + formatTime(run.endedAt) : ''}: final values`;
    else if (d.rinsing_back) runState = 'RINSEBACK';
    else if (d.paused) runState = 'PAUSED';
    setText(field(card, 'run-state'), runState);
  }

  /** warning/alarm level of a value against an upper warn and alarm limit. */
  function upperLevel(v, warn, alarm) {
    if (!isNum(v)) return null;
    if (isNum(alarm) && v >= alarm) return 'alarm';
    if (isNum(warn) && v >= warn) return 'warning';
    return null;
  }

  function ratioLevel(v, p) {
    if (!isNum(v) || !isNum(p.ratio_set)) return null;
    const dev = Math.abs(v - p.ratio_set);
    if (isNum(p.ratio_alarm_deviation) && dev > p.ratio_alarm_deviation) return 'alarm';
    if (isNum(p.ratio_warn_deviation) && dev > p.ratio_warn_deviation) return 'warning';
    return null;
  }

  function renderMetrics(card, run) {
    const d = run ? derivedOf(run) : {};
    const p = run ? presetsOf(run) : {};
    const metric = (name) => card.querySelector(`[data-metric="${name}"]`);

    const ratio = isNum(d.window_ratio) ? d.window_ratio : d.device_ratio;
    setText(field(card, 'ratio'), fmt(ratio, 1));
    const ratioSub = [];
    if (isNum(p.ratio_set)) ratioSub.push(`set ${fmt(p.ratio_set, 1)} ± ${fmt(p.ratio_warn_deviation, 1)}`);
    if (isNum(d.window_ratio) && isNum(d.device_ratio)) ratioSub.push(`device ${fmt(d.device_ratio, 1)}`);
    else if (!isNum(d.window_ratio) && isNum(d.device_ratio)) ratioSub.push('as the device reports it');
    if (isNum(d.run_ratio)) ratioSub.push(`run ${fmt(d.run_ratio, 1)}`);
    if (d.ac_pump_delivering_nothing) ratioSub.push('AC PUMP DELIVERS NOTHING');
    setText(field(card, 'ratio-sub'), ratioSub.join(' · '));
    setAttr(metric('ratio'), 'data-level', d.ac_pump_delivering_nothing ? 'alarm' : ratioLevel(d.window_ratio, p));

    const ac = d.ac_infusion_rate_ml_per_min_per_l;
    setText(field(card, 'ac-rate'), fmt(ac, 2));
    setText(field(card, 'ac-rate-sub'), limitsText(p.ac_infusion_rate_warn_ml_per_min_per_l, p.ac_infusion_rate_alarm_ml_per_min_per_l, 2));
    setAttr(metric('ac-rate'), 'data-level', upperLevel(ac, p.ac_infusion_rate_warn_ml_per_min_per_l, p.ac_infusion_rate_alarm_ml_per_min_per_l));

    const cit = d.citrate_load_rate_mg_per_kg_per_min;
    setText(field(card, 'citrate'), fmt(cit, 2));
    const citSub = [limitsText(p.citrate_load_warn_mg_per_kg_per_min, p.citrate_load_alarm_mg_per_kg_per_min, 1)];
    if (isNum(d.citrate_load_total_mg_per_kg)) citSub.push(`total ${fmt(d.citrate_load_total_mg_per_kg, 1)} mg/kg`);
    setText(field(card, 'citrate-sub'), citSub.filter(Boolean).join(' · '));
    setAttr(metric('citrate'), 'data-level', upperLevel(cit, p.citrate_load_warn_mg_per_kg_per_min, p.citrate_load_alarm_mg_per_kg_per_min));

    const col = d.collected_ml;
    setText(field(card, 'collected'), fmt(col, 1));
    const colSub = [];
    if (isNum(p.collect_target_ml)) colSub.push(`target ${fmt(p.collect_target_ml, 0)}`);
    if (isNum(p.collect_max_ml)) colSub.push(`max ${fmt(p.collect_max_ml, 0)}`);
    if (isNum(d.collected_fraction_of_tbv)) colSub.push(`${fmt(d.collected_fraction_of_tbv * 100, 1)} % of TBV`);
    setText(field(card, 'collected-sub'), colSub.join(' · '));
    setAttr(metric('collected'), 'data-level', isNum(col) && isNum(p.collect_max_ml) && col > p.collect_max_ml ? 'alarm' : null);

    // Blood processed: in mL, with blood volumes and the target.
    const wb = d.whole_blood_processed_ml;
    setText(field(card, 'blood'), fmt(wb, 0));
    const bloodSub = [];
    if (isNum(d.blood_volumes_processed)) bloodSub.push(`${fmt(d.blood_volumes_processed, 2)} TBV`);
    if (isNum(p.whole_blood_target_ml)) bloodSub.push(`target ${fmt(p.whole_blood_target_ml, 0)} mL`);
    else if (isNum(p.blood_volumes_target)) bloodSub.push(`target ${fmt(p.blood_volumes_target, 2)} TBV`);
    setText(field(card, 'blood-sub'), bloodSub.join(' · '));

    // State: of the run, as a word (never a colour alone).
    const device = state.devices.get(card.dataset.device);
    const f = freshness(card.dataset.device);
    let st = 'RUNNING';
    let level = null;
    if (!run) st = 'NO RUN';
    else if (run.ended) st = 'ENDED';
    else if (f.stale) { st = 'NOT CURRENT'; level = 'alarm'; }
    else if (d.rinsing_back) st = 'RINSEBACK';
    else if (d.paused) { st = 'PAUSED'; level = 'warning'; }
    setText(field(card, 'state'), st);
    setAttr(metric('state'), 'data-level', level);
    const rt = run ? (isNum(run.watch && run.watch.run_time_minutes) ? run.watch.run_time_minutes : run.runTime) : null;
    const stateSub = [];
    if (isNum(rt)) stateSub.push(`run time ${formatMinutes(rt)}`);
    if (device) stateSub.push(`link ${device.linkState.toUpperCase()}`);
    setText(field(card, 'state-sub'), stateSub.join(' · '));
  }

  function limitsText(warn, alarm, digits) {
    const parts = [];
    if (isNum(warn)) parts.push(`warn ${fmt(warn, digits)}`);
    if (isNum(alarm)) parts.push(`alarm ${fmt(alarm, digits)}`);
    return parts.join(' · ');
  }

  /** One progress bar: fraction filled, an optional mark (target), a level colour, a text. */
  function setBar(card, name, { fraction, mark, level, text }) {
    const row = card.querySelector(`[data-bar="${name}"]`);
    const bar = row.querySelector('[data-role="bar"]');
    const pct = (f) => `${(Math.max(0, Math.min(1, f)) * 100).toFixed(1)}%`;
    // CSSOM property writes are allowed under style-src 'self' (only style attributes are not).
    bar.querySelector('.bar-fill').style.width = isNum(fraction) ? pct(fraction) : '0%';
    const markEl = bar.querySelector('.bar-mark');
    if (markEl) {
      setAttr(markEl, 'data-shown', isNum(mark) ? 'true' : 'false');
      if (isNum(mark)) markEl.style.left = pct(mark);
    }
    setAttr(bar, 'data-level', level || null);
    setText(row.querySelector('.bar-text'), text);
  }

  function renderBars(card, run) {
    const d = run ? derivedOf(run) : {};
    const p = run ? presetsOf(run) : {};

    // Collected volume against target and maximum: the bar's full width is the maximum.
    const col = d.collected_ml;
    const target = p.collect_target_ml;
    const max = p.collect_max_ml;
    const scale = isNum(max) ? max : isNum(target) ? target * 1.25 : isNum(col) ? Math.max(col * 1.25, 1) : 1;
    let colLevel = null;
    if (isNum(col) && isNum(max) && col > max) colLevel = 'alarm';
    else if (isNum(col) && isNum(target) && col >= target) colLevel = 'ok';
    const colText = [`${fmt(col, 1)}`];
    if (isNum(target)) colText.push(`/ ${fmt(target, 0)}`);
    colText.push('mL');
    if (isNum(max)) colText.push(`(max ${fmt(max, 0)})`);
    setBar(card, 'collected', {
      fraction: isNum(col) ? col / scale : null, mark: isNum(target) ? target / scale : null, level: colLevel,
      text: colText.join(' '),
    });

    // Run time against target run time.
    const rt = run ? (isNum(run.watch && run.watch.run_time_minutes) ? run.watch.run_time_minutes : run.runTime) : null;
    const trt = p.target_run_time_minutes;
    setBar(card, 'run-time', {
      fraction: isNum(rt) && isNum(trt) && trt > 0 ? rt / trt : null,
      level: isNum(rt) && isNum(trt) && rt > trt ? 'warning' : null,
      text: isNum(trt) ? `${fmt(rt, 1)} / ${fmt(trt, 0)} min` : `${fmt(rt, 1)} min (no target)`,
    });

    // Blood processed: against the whole-blood target in mL, else against blood volumes.
    const wb = d.whole_blood_processed_ml;
    const bv = d.blood_volumes_processed;
    let blood;
    if (isNum(p.whole_blood_target_ml) && p.whole_blood_target_ml > 0) {
      blood = { fraction: isNum(wb) ? wb / p.whole_blood_target_ml : null, text: `${fmt(wb, 0)} / ${fmt(p.whole_blood_target_ml, 0)} mL` };
    } else if (isNum(p.blood_volumes_target) && p.blood_volumes_target > 0) {
      blood = { fraction: isNum(bv) ? bv / p.blood_volumes_target : null, text: `${fmt(bv, 2)} / ${fmt(p.blood_volumes_target, 2)} TBV` };
    } else {
      blood = { fraction: null, text: `${fmt(wb, 0)} mL (no target)` };
    }
    if (isNum(bv) && !blood.text.includes('TBV')) blood.text += ` · ${fmt(bv, 2)} TBV`;
    setBar(card, 'blood', blood);
  }

  /** [large text, small text] of a target prediction. */
  function predictionText(pred, unit, digits) {
    if (!pred) return [DASH, 'no target'];
    const target = `${fmt(pred.target, digits)} ${unit}`;
    if (pred.reached) return ['Reached', target];
    if (!isNum(pred.remaining_minutes)) return [DASH, `${fmt(pred.current, digits)} of ${target}`];
    return [`in ${formatMinutes(pred.remaining_minutes)}`, `${target} at run time ${formatMinutes(pred.projected_run_time_minutes)}`];
  }

  function setPrediction(dd, [main, detail]) {
    const key = `${main}\n${detail}`;
    if (dd.dataset.text === key) return;
    dd.dataset.text = key;
    dd.replaceChildren(document.createTextNode(main), el('span', 'pred-detail', detail));
  }

  function renderPredictions(card, run) {
    const pr = (run && run.watch && run.watch.predictions) || {};
    const none = [DASH, run ? 'no prediction yet' : 'no run'];
    setPrediction(field(card, 'pred-collect'), run && run.watch ? predictionText(pr.collect, 'mL', 0) : none);
    let blood = predictionText(null);
    if (pr.whole_blood) blood = predictionText(pr.whole_blood, 'mL', 0);
    else if (pr.blood_volumes) blood = predictionText(pr.blood_volumes, 'TBV', 2);
    setPrediction(field(card, 'pred-blood'), run && run.watch ? blood : none);
    const cd3 = run && run.watch ? formatCells(pr.expected_cd3_yield_cells) : DASH;
    setPrediction(field(card, 'pred-cd3'), [cd3.replace(' cells', ''), cd3 === DASH ? 'not known yet' : 'cells expected']);
  }

  function renderPresetsLine(card, run) {
    const p = run ? presetsOf(run) : {};
    const parts = [];
    if (p.profile) parts.push(`Presets: ${p.profile}`);
    if (Array.isArray(p.overridden) && p.overridden.length) parts.push(`changed for this run: ${p.overridden.join(', ')}`);
    if (run && run.presetNote) parts.push(run.presetNote);
    setText(field(card, 'presets'), parts.join(' · '));
    const button = card.querySelector('[data-role="change-presets"]');
    button.hidden = !(state.session && run && !run.ended && isNum(run.ref) && run.watch);
  }

  // ---------------------------------------------------------------------------------------------
  // Charts: hand-drawn SVG in the element's own pixel size (text is never stretched). Each has a
  // time axis in local wall-clock time (the daemon's receive time of each sample), a y axis with
  // ticks and the unit in its title, the limit lines that apply with their values, and markers
  // where alarms were raised and cleared.

  function svgEl(tag, attrs, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /** Time-axis steps (ms): the first that leaves room for the labels is used. */
  const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600].map((s) => s * 1000);

  /** Ticks on local wall-clock boundaries (whole minutes, quarter hours, ...) between t0 and t1. */
  function timeTicks(t0, t1, maxCount) {
    const span = Math.max(t1 - t0, 1);
    const step = TIME_STEPS.find((s) => span / s <= maxCount) || TIME_STEPS[TIME_STEPS.length - 1];
    // Local midnight as the origin, so that ticks fall on the local clock's round values.
    const day = new Date(t0);
    day.setHours(0, 0, 0, 0);
    const origin = day.getTime();
    const ticks = [];
    for (let t = origin + Math.ceil((t0 - origin) / step) * step; t <= t1; t += step) ticks.push(t);
    return { ticks, withSeconds: step < 60000 };
  }

  /** Round steps (1, 2, 2.5, 5 × 10^k) for a value axis. */
  function valueTicks(min, max, maxCount) {
    const span = Math.max(max - min, 1e-9);
    const raw = span / Math.max(1, maxCount);
    const mag = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || 10 * mag;
    const ticks = [];
    for (let v = Math.ceil(min / step - 1e-9) * step; v <= max + 1e-9; v += step) ticks.push(Number(v.toPrecision(10)));
    const digits = step >= 1 ? 0 : Math.min(3, Math.ceil(-Math.log10(step) - 1e-9));
    return { ticks, digits };
  }

  /**
   * spec: {t0, t1 (ms), yMin, yMax, unit (axis title), zones: [{from, to, cls}],
   *        lines: [{y, cls, label, kind}], points: [[ms, v|null]], markers: [{t, cls, label, code, kind}]}
   */
  function drawChart(svg, spec) {
    const w = Math.max(svg.clientWidth, 160);
    const h = Math.max(svg.clientHeight, 100);
    svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
    svg.removeAttribute('preserveAspectRatio');
    const pad = { l: 62, r: 10, t: 40, b: 26 };
    const plotW = w - pad.l - pad.r;
    const plotH = h - pad.t - pad.b;
    const x = (t) => pad.l + ((t - spec.t0) / (spec.t1 - spec.t0)) * plotW;
    const y = (v) => pad.t + (1 - (v - spec.yMin) / (spec.yMax - spec.yMin)) * plotH;
    const clampY = (v) => Math.max(pad.t, Math.min(h - pad.b, y(v)));
    const parts = [];
    for (const z of spec.zones) {
      const top = clampY(Math.min(z.to, spec.yMax));
      const bottom = clampY(Math.max(z.from, spec.yMin));
      if (bottom > top) parts.push(svgEl('rect', { x: pad.l, y: top, width: plotW, height: bottom - top, class: z.cls }));
    }
    // Value axis: grid lines and tick labels, the unit as the axis title.
    const vt = valueTicks(spec.yMin, spec.yMax, Math.max(2, Math.floor(plotH / 32)));
    for (const v of vt.ticks) {
      parts.push(svgEl('line', { x1: pad.l, x2: w - pad.r, y1: y(v), y2: y(v), class: 'line-grid' }));
      parts.push(svgEl('text', { x: pad.l - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'tick-label tick-y' }, v.toFixed(vt.digits)));
    }
    parts.push(svgEl('text', {
      x: 14, y: pad.t + plotH / 2, 'text-anchor': 'middle', class: 'axis-title',
      transform: `rotate(-90 14 ${pad.t + plotH / 2})`,
    }, spec.unit));
    // Time axis: local wall clock.
    const tt = timeTicks(spec.t0, spec.t1, Math.max(2, Math.floor(plotW / 86)));
    for (const t of tt.ticks) {
      parts.push(svgEl('line', { x1: x(t), x2: x(t), y1: pad.t, y2: h - pad.b + 4, class: 'line-grid' }));
      // A label that would not fit inside the chart is left out (its grid line stays).
      if (x(t) + (tt.withSeconds ? 30 : 20) > w) continue;
      parts.push(svgEl('text', { x: x(t), y: h - 7, 'text-anchor': 'middle', class: 'tick-label tick-x', 'data-t': t },
        formatClock(t, tt.withSeconds)));
    }
    parts.push(svgEl('rect', { x: pad.l, y: pad.t, width: plotW, height: plotH, class: 'plot-frame' }));
    // Limit lines, each labelled with what it is and its value.
    const labelled = [];
    for (const l of spec.lines) {
      if (!isNum(l.y) || l.y < spec.yMin || l.y > spec.yMax) continue;
      parts.push(svgEl('line', { x1: pad.l, x2: w - pad.r, y1: y(l.y), y2: y(l.y), class: l.cls, 'data-limit': l.kind, 'data-value': l.y }));
      if (!l.label) continue;
      // Labels that would overlap move apart.
      let ly = y(l.y) - 4;
      while (labelled.some((o) => Math.abs(o - ly) < 14)) ly += 14;
      labelled.push(ly);
      parts.push(svgEl('text', { x: w - pad.r - 4, y: ly, 'text-anchor': 'end', class: `limit-label ${l.cls}-label`, 'data-limit': l.kind }, l.label));
    }
    // Alarm markers: a vertical line at the time, its label at the top (two rows, so that
    // markers close together keep their labels).
    const rowEnds = [-Infinity, -Infinity];
    for (const m of spec.markers) {
      if (!isNum(m.t) || m.t < spec.t0 || m.t > spec.t1) continue;
      const mx = x(m.t);
      parts.push(svgEl('line', {
        x1: mx, x2: mx, y1: pad.t - 6, y2: h - pad.b, class: `marker ${m.cls}`,
        'data-marker': m.kind, 'data-alarm-code': m.code, 'data-t': m.t,
      }));
      parts.push(svgEl('path', { d: `M${mx - 5},${pad.t - 12} L${mx + 5},${pad.t - 12} L${mx},${pad.t - 4} Z`, class: `marker-head ${m.cls}` }));
      const width = m.label.length * 8.6 + 10;
      const right = mx + width > w;
      const from = right ? mx - width : mx;
      const row = rowEnds.findIndex((end) => from > end + 6);
      if (row >= 0) {
        parts.push(svgEl('text', {
          x: right ? mx - 7 : mx + 7, y: row === 0 ? pad.t - 6 : pad.t - 22, 'text-anchor': right ? 'end' : 'start', class: `marker-label ${m.cls}`,
        }, m.label));
        rowEnds[row] = from + width;
      }
    }
    // The data line, broken where a value is missing or the samples have a gap.
    let d = '';
    let pen = false;
    let prevT = null;
    let last = null;
    const gap = spec.gapMs || Infinity;
    for (const [t, v] of spec.points) {
      if (!isNum(t) || !isNum(v) || t < spec.t0) { pen = false; continue; }
      if (prevT !== null && t - prevT > gap) pen = false;
      d += `${pen ? 'L' : 'M'}${x(t).toFixed(1)},${clampY(v).toFixed(1)}`;
      pen = true;
      prevT = t;
      last = [t, v];
    }
    if (d) {
      parts.push(svgEl('path', { d, class: 'line-data' }));
      parts.push(svgEl('circle', { cx: x(last[0]), cy: clampY(last[1]), r: 4, class: 'point-last' }));
    } else {
      parts.push(svgEl('text', { x: pad.l + plotW / 2, y: pad.t + plotH / 2, 'text-anchor': 'middle', class: 'chart-empty' }, 'no data yet'));
    }
    svg.replaceChildren(...parts);
    svg.dataset.drawn = String(Date.now());
  }

  /** The card's time window: from the run's first point (or start) to now, at least a minute. */
  function chartWindow(run) {
    const now = Date.now();
    const first = run.series.find((p) => isNum(p.w));
    const opened = serverTime(run.openedAt);
    let t0 = first ? first.w : isNum(opened) ? opened : now - 60000;
    const lastW = run.series.length ? run.series[run.series.length - 1].w : null;
    // A run that ended stops at its last point; an open one runs on to now, so silence shows.
    let t1 = run.ended && isNum(lastW) ? lastW : Math.max(now, isNum(lastW) ? lastW : now);
    if (t1 - t0 < 60000) t1 = t0 + 60000;
    return { t0, t1 };
  }

  function extent(values) {
    const nums = values.filter(isNum);
    return nums.length ? [Math.min(...nums), Math.max(...nums)] : null;
  }

  /** Which chart an alarm's marker belongs on; the rest (link, data, device) go on the ratio chart. */
  const CHART_OF_CODE = { AC_RATIO: 'ratio', AC_RATIO_AGREEMENT: 'ratio', AC_INF_RATE: 'ac-rate', CITRATE_LOAD: 'citrate', COLLECT_VOL: 'collected' };

  /** Markers of a card's alarms (open ones and those in the history) for one chart. */
  function alarmMarkers(name, chart) {
    const markers = [];
    const seen = new Set();
    const records = [...state.alarms.values(), ...alarmHistory.values()];
    for (const a of records) {
      if (a.device !== name || (CHART_OF_CODE[a.code] || 'ratio') !== chart) continue;
      const key = a.id !== null ? `id:${a.id}` : a;
      if (seen.has(key)) continue;
      seen.add(key);
      const lvl = a.level === 'alarm' ? 'alarm' : 'warning';
      markers.push({ t: a.raisedAt, cls: `marker-${lvl}`, kind: 'raised', code: a.code, label: `${a.code} ${formatTime(a.raisedAt)}` });
      if (isNum(a.escalatedAt) && a.escalatedAt > a.raisedAt) {
        markers.push({ t: a.escalatedAt, cls: 'marker-alarm', kind: 'escalated', code: a.code, label: `${a.code} ALARM ${formatTime(a.escalatedAt)}` });
      }
      if (isNum(a.clearedAt)) {
        markers.push({ t: a.clearedAt, cls: 'marker-cleared', kind: 'cleared', code: a.code, label: `${a.code} cleared ${formatTime(a.clearedAt)}` });
      }
    }
    return markers.sort((p, q) => p.t - q.t);
  }

  function renderCharts(card, run) {
    const svgs = ['ratio', 'ac-rate', 'citrate', 'collected'].map((c) => card.querySelector(`[data-chart="${c}"]`));
    if (!run) return;
    const name = card.dataset.device;
    const p = presetsOf(run);
    const { t0, t1 } = chartWindow(run);
    const series = run.series;
    // A gap of more than 3 sample intervals (the median of the newest ones) breaks the line.
    const steps = [];
    for (let i = Math.max(1, series.length - 30); i < series.length; i++) {
      if (isNum(series[i].w) && isNum(series[i - 1].w)) steps.push(series[i].w - series[i - 1].w);
    }
    steps.sort((p, q) => p - q);
    const typical = steps.length ? steps[Math.floor(steps.length / 2)] : 5000;
    const gapMs = Math.max(1000, 3 * typical);
    const base = { t0, t1, gapMs };

    // Ratio: set point, warn band and alarm band around it; the recomputed window ratio as a line.
    const set = p.ratio_set;
    const warnDev = p.ratio_warn_deviation;
    const alarmDev = p.ratio_alarm_deviation;
    const ext = extent(series.map((s) => s.ratio));
    let yMin; let yMax;
    if (isNum(set) && isNum(alarmDev)) {
      yMin = set - alarmDev * 1.6;
      yMax = set + alarmDev * 1.6;
      if (ext) { yMin = Math.min(yMin, ext[0] - 0.5); yMax = Math.max(yMax, ext[1] + 0.5); }
    } else if (ext) {
      yMin = ext[0] - 1; yMax = ext[1] + 1;
    } else {
      yMin = 8; yMax = 16;
    }
    const zones = [];
    const lines = [];
    if (isNum(set) && isNum(alarmDev) && isNum(warnDev)) {
      zones.push({ from: yMin, to: yMax, cls: 'zone-alarm' });
      zones.push({ from: set - alarmDev, to: set + alarmDev, cls: 'zone-warn' });
      zones.push({ from: set - warnDev, to: set + warnDev, cls: 'zone-ok' });
      lines.push({ y: set + alarmDev, cls: 'line-alarm', kind: 'alarm', label: `alarm ${fmt(set + alarmDev, 1)}` });
      lines.push({ y: set - alarmDev, cls: 'line-alarm', kind: 'alarm', label: `alarm ${fmt(set - alarmDev, 1)}` });
      lines.push({ y: set + warnDev, cls: 'line-warn', kind: 'warn', label: `warn ${fmt(set + warnDev, 1)}` });
      lines.push({ y: set - warnDev, cls: 'line-warn', kind: 'warn', label: `warn ${fmt(set - warnDev, 1)}` });
    }
    if (isNum(set)) lines.push({ y: set, cls: 'line-set', kind: 'set', label: `set ${fmt(set, 1)}${p.ratio_set_assumed ? ' (assumed)' : ''}` });
    drawChart(svgs[0], {
      ...base, yMin, yMax, unit: 'ratio (x:1)', zones, lines, points: series.map((s) => [s.w, s.ratio]),
      markers: alarmMarkers(name, 'ratio'),
    });

    drawUpperLimitChart(svgs[1], {
      ...base, unit: 'mL/min/L', points: series.map((s) => [s.w, s.ac]), markers: alarmMarkers(name, 'ac-rate'),
    }, p.ac_infusion_rate_warn_ml_per_min_per_l, p.ac_infusion_rate_alarm_ml_per_min_per_l, 2);
    drawUpperLimitChart(svgs[2], {
      ...base, unit: 'mg/kg/min', points: series.map((s) => [s.w, s.citrate]), markers: alarmMarkers(name, 'citrate'),
    }, p.citrate_load_warn_mg_per_kg_per_min, p.citrate_load_alarm_mg_per_kg_per_min, 1);
    // Collected volume: the target is its warning line, the maximum its alarm line (limits.md).
    drawUpperLimitChart(svgs[3], {
      ...base, unit: 'mL', points: series.map((s) => [s.w, s.collected]), markers: alarmMarkers(name, 'collected'),
    }, p.collect_target_ml, p.collect_max_ml, 0, ['target', 'max']);
  }

  /** A quantity with an upper warn and alarm line: green below warn, amber to alarm, red above. The
   *  axis reaches past the alarm line only if the values do (a far line is shown by its label). */
  function drawUpperLimitChart(svg, spec, warn, alarm, digits, names = ['warn', 'alarm']) {
    const ext = extent(spec.points.map((pt) => pt[1]));
    const dataTop = ext ? ext[1] : 0;
    const limitTop = isNum(alarm) ? alarm : isNum(warn) ? warn : 0;
    let top = Math.max(limitTop * 1.15, dataTop * 1.15, 0.1);
    // A collected-volume maximum far above the data would flatten the line: then show up to the target.
    if (isNum(warn) && isNum(alarm) && alarm > 3 * Math.max(dataTop, 1e-9) && warn < alarm) top = Math.max(warn * 1.15, dataTop * 1.15, 0.1);
    const zones = [];
    const lines = [];
    if (isNum(warn)) zones.push({ from: 0, to: warn, cls: 'zone-ok' });
    if (isNum(warn) && isNum(alarm)) zones.push({ from: warn, to: alarm, cls: 'zone-warn' });
    if (isNum(alarm)) zones.push({ from: alarm, to: Math.max(top, alarm), cls: 'zone-alarm' });
    if (isNum(warn)) lines.push({ y: warn, cls: 'line-warn', kind: 'warn', label: `${names[0]} ${fmt(warn, digits)}` });
    if (isNum(alarm)) lines.push({ y: alarm, cls: 'line-alarm', kind: 'alarm', label: `${names[1]} ${fmt(alarm, digits)}` });
    drawChart(svg, { ...spec, yMin: 0, yMax: top, zones, lines });
    // A limit line above the drawn range is still named, at the top edge.
    const off = [[alarm, names[1]], [warn, names[0]]].filter(([v]) => isNum(v) && v > top);
    const note = svg.closest('figure').querySelector('[data-role="offscale"]');
    setText(note, off.length ? `(${off.map(([v, n]) => `${n} ${fmt(v, digits)}`).join(', ')}: above the scale)` : '');
  }

  // ---------------------------------------------------------------------------------------------
  // Alarms. One element per alarm, in its separator's card; the banner only summarises.

  /** The page's alarm states: active (needs acknowledging), acknowledged, cleared. */
  function pageState(storeState, acknowledgedBy) {
    if (storeState === 'cleared') return 'cleared';
    if (storeState === 'acknowledged' || acknowledgedBy) return 'acknowledged';
    return 'active';
  }

  function alarmKey(a) { return a.id !== null ? `id:${a.id}` : `p:${a.serial}:${a.code}`; }

  function findAlarmById(id) { return state.alarms.get(`id:${id}`) || null; }

  /** The alarm of that device and code that is still open (the store keeps one open per code). The
   *  device is named by serial; without one (a link alarm before the separator answered) by its name. */
  function findOpenAlarm(serial, code, device) {
    for (const a of state.alarms.values()) {
      if (a.code !== code || a.state === 'cleared') continue;
      if (serial ? a.serial === serial : device !== undefined && a.device === device) return a;
    }
    return null;
  }

  function putAlarm(a) {
    for (const [k, v] of state.alarms) if (v === a) state.alarms.delete(k);
    state.alarms.set(alarmKey(a), a);
  }

  /** A time from the daemon (ISO 8601, whole seconds) in ms, or null. */
  function serverTime(iso) {
    const t = typeof iso === 'string' ? Date.parse(iso) : NaN;
    return Number.isFinite(t) ? t : null;
  }

  /** The newest moment an alarm row speaks for: its raise, acknowledgement or clear. */
  function rowAsOf(row) {
    const times = [row.raised_at, row.acknowledged_at, row.cleared_at].map(serverTime).filter(isNum);
    return times.length ? Math.max(...times) : null;
  }

  /** Notes that the record now reflects something that happened at server time `at`. */
  function advanceAsOf(a, at) {
    if (isNum(at)) a.asOf = isNum(a.asOf) ? Math.max(a.asOf, at) : at;
  }

  /**
   * Whether a row from a request (acknowledge reply, GET /alarms) may be older than what the stream has
   * told us about this alarm since: an event for it arrived after the request went out (sentSeq is
   * the event count then), or the row's newest time is before that of the record's last event. Such a
   * row must not overwrite the record: e.g. an `escalated` event between an acknowledge click and its
   * reply needs a new acknowledgement, which the reply's "acknowledged" would hide.
   */
  function rowIsOutdated(a, row, sentSeq) {
    if (a.seq > sentSeq) return true;
    const t = rowAsOf(row);
    return isNum(t) && isNum(a.asOf) && t < a.asOf;
  }

  /** An alarm record from the API's alarm JSON (snapshot, GET /alarms, acknowledge reply). */
  function updateAlarmFromRow(a, row) {
    a.id = row.id;
    a.serial = row.device_serial;
    a.code = row.code;
    a.level = row.level;
    a.state = pageState(row.state, row.acknowledged_by);
    a.value = row.value;
    a.valueNow = isNum(row.value_now) ? row.value_now : null;
    if (isNum(a.valueNow)) a.lastSeen = a.valueNow;
    if (isNum(row.run_ref)) a.runRef = row.run_ref;
    if (typeof row.run_id === 'string') a.runId = row.run_id;
    a.limit = row.limit;
    a.unit = row.unit;
    a.message = row.message;
    if (isNum(row.age_seconds)) a.raisedAt = Date.now() - row.age_seconds * 1000;
    a.runTime = row.raised_run_time_minutes;
    a.acknowledgedBy = row.acknowledged_by;
    a.acknowledgedAt = row.acknowledged_at;
    if (row.cleared_at) a.clearedAt = Date.parse(row.cleared_at) || Date.now();
    advanceAsOf(a, rowAsOf(row));
  }

  function newAlarm(fields) {
    return {
      id: null, serial: null, device: null, code: null, level: 'warning', state: 'active', value: null, valueNow: null, limit: null,
      runId: null, runRef: null,
      unit: null, message: null, raisedAt: Date.now(), runTime: null, acknowledgedBy: null, acknowledgedAt: null,
      clearedAt: null, idKnownAt: null, el: null, lastSeen: null, escalatedAt: null, clearReason: null,
      // seq: the page's count of the last alarm event applied to it; asOf: the daemon's time of the
      // newest thing it reflects. Together they tell an outdated row or duplicate event (rowIsOutdated).
      seq: 0, asOf: null,
      ...fields,
    };
  }

  /** Whether the record is still shown (a cleared one is dropped after a while). */
  function isTracked(a) { return [...state.alarms.values()].includes(a); }

  /** Creates or updates an alarm from a row; returns [record, isNew]. sentSeq: the alarm event count
   *  when the request went out; null for the snapshot, which is the daemon's whole state when this
   *  connection began (events missed while disconnected are in it, not in our records). */
  function mergeAlarmRow(row, sentSeq) {
    let a = findAlarmById(row.id);
    if (!a) {
      // A provisional element (from an `alarm` event) for the same condition: it gets its id now.
      const open = findOpenAlarm(row.device_serial, row.code);
      if (open && open.id === null) a = open;
    }
    const isNew = !a;
    if (!a) a = newAlarm({});
    // The id is always worth learning (the button needs it); the rest only from a row that is not
    // older than the stream, and never to bring a cleared alarm back (a clear is final: a new
    // occurrence has a new id).
    if (a.id === null) { a.id = row.id; a.idKnownAt = Date.now(); }
    const current = sentSeq === null || (a.state !== 'cleared' && !rowIsOutdated(a, row, sentSeq));
    if (isNew || current) updateAlarmFromRow(a, row);
    // The store names the device by serial; once the device is known, the alarm goes to its card.
    const name = deviceNameForSerial(a.serial);
    if (!a.device || name !== a.serial) a.device = name;
    putAlarm(a);
    renderAlarm(a);
    return [a, isNew];
  }

  function renderAlarm(a) {
    const card = cardFor(a.device);
    if (!a.el) {
      a.el = $('alarm-template').content.firstElementChild.cloneNode(true);
      // When it was first shown: the test measures the time from the event to the screen with this.
      a.el.dataset.shownAt = String(Date.now());
      a.el.querySelector('.ack-button').addEventListener('click', () => acknowledge(a));
    }
    // New, or its card was replaced (a device named after a snapshot): in its card's list.
    const box = card.querySelector('[data-role="alarms"]');
    if (a.el.parentNode !== box) box.prepend(a.el);
    const e = a.el;
    setAttr(e, 'data-alarm-id', a.id !== null ? a.id : null);
    setAttr(e, 'data-alarm-code', a.code);
    setAttr(e, 'data-alarm-level', a.level);
    setAttr(e, 'data-state', a.state);
    setAttr(e, 'data-device', a.device);
    setAttr(e, 'aria-label', `${a.level} ${a.code} on ${a.device}`);
    setText(e.querySelector('[data-field="level"]'), a.state === 'cleared' ? `${a.level} (cleared)` : a.level === 'alarm' ? 'ALARM' : 'WARNING');
    setText(e.querySelector('[data-field="code"]'), a.code);
    setText(e.querySelector('[data-field="value"]'), alarmValueText(a));
    setText(e.querySelector('[data-field="message"]'), a.message || '');
    renderAlarmTimes(a);
    orderAlarms(card);
    const button = e.querySelector('.ack-button');
    // The button needs the store's id; a provisional alarm shows it as soon as the id is known.
    button.hidden = a.state !== 'active' || a.id === null;
    setAttr(button, 'data-ack', a.id !== null ? a.id : null);
    setText(e.querySelector('[data-field="acked"]'),
      a.state === 'acknowledged' ? `Acknowledged${a.acknowledgedBy ? ' by ' + a.acknowledgedBy : ''}${a.acknowledgedAt ? ' at ' + formatTime(a.acknowledgedAt) : ''}` : '');
    renderCardAlarmLevel(a.device);
    scheduleBanner();
  }

  /** The value now beside the value at the raise, and the line: "8.1 now (7.9 at raise; limit 10)". */
  function alarmValueText(a) {
    const value = valueWithUnit(a.value, a.unit);
    const now = a.state !== 'cleared' && isNum(a.valueNow) ? valueWithUnit(a.valueNow, a.unit) : '';
    const limit = valueWithUnit(a.limit, a.unit);
    const notes = [];
    if (now && value) notes.push(`${value} at raise`);
    if (limit) notes.push(`limit ${limit}`);
    const head = now ? `${now} now` : value;
    return head ? (notes.length ? `${head} (${notes.join('; ')})` : head) : (limit ? `limit ${limit}` : '');
  }

  /** The daemon's own alarm: its record store refuses writes. Not a separator's; it clears by itself. */
  function renderStoreAlarm(row) {
    const banner = $('store-banner');
    const wasHidden = banner.hidden;
    banner.hidden = !row;
    if (!row) return;
    const since = serverTime(row.since || row.raised_at);
    setText(banner, `ALARM ${row.code || 'STORE_WRITE_FAILED'}: ${row.message}` +
      (isNum(since) ? ` (since ${formatTime(row.since || row.raised_at)})` : ''));
    if (wasHidden) beep('alarm', 'the record store refuses writes');
  }

  function onStore(ev) {
    renderStoreAlarm(ev.state === 'failing' ? ev : null);
  }

  /** Unacknowledged first, then acknowledged, then cleared; alarms before warnings; newest first. */
  function orderAlarms(card) {
    const box = card.querySelector('[data-role="alarms"]');
    const rank = { active: 0, acknowledged: 1, cleared: 2 };
    const records = [...state.alarms.values()].filter((a) => a.el && a.el.parentNode === box);
    records.sort((x, y) => (rank[x.state] - rank[y.state]) || ((y.level === 'alarm') - (x.level === 'alarm')) || (y.raisedAt - x.raisedAt));
    const wanted = records.map((a) => a.el);
    const current = [...box.children];
    // Move nodes only when the order changed: moving restarts the flashing animation.
    if (wanted.length === current.length && wanted.every((n, i) => n === current[i])) return;
    box.append(...wanted);
  }

  function renderAlarmTimes(a) {
    if (!a.el) return;
    let since = `raised ${formatTime(a.raisedAt)} (${formatDuration((Date.now() - a.raisedAt) / 1000)} ago`;
    since += isNum(a.runTime) ? `, run time ${fmt(a.runTime, 1)} min)` : ')';
    if (a.state === 'cleared' && a.clearedAt) since = `cleared ${formatTime(a.clearedAt)} (${formatDuration((Date.now() - a.clearedAt) / 1000)} ago)`;
    setText(a.el.querySelector('[data-field="since"]'), since);
  }

  function removeAlarm(a) {
    for (const [k, v] of state.alarms) if (v === a) state.alarms.delete(k);
    if (a.el) a.el.remove();
    a.el = null;
    renderCardAlarmLevel(a.device);
    scheduleBanner();
  }

  function markCleared(a) {
    a.state = 'cleared';
    a.clearedAt = a.clearedAt || Date.now();
    renderAlarm(a);
    addToHistory(a);
    // Gone from view after a while; a new snapshot removes it at once.
    setTimeout(() => { if (a.state === 'cleared') removeAlarm(a); }, CLEARED_VISIBLE_MS);
  }

  /** The card's frame takes the colour of its worst open alarm, acknowledged or not. */
  function renderCardAlarmLevel(name) {
    const card = cards.get(name);
    if (!card) return;
    let level = null;
    for (const a of state.alarms.values()) {
      if (a.device !== name || a.state === 'cleared') continue;
      if (a.level === 'alarm') level = 'alarm';
      else if (!level) level = 'warning';
    }
    setAttr(card, 'data-alarm-level', level);
  }

  let bannerScheduled = false;
  function scheduleBanner() {
    if (bannerScheduled) return;
    bannerScheduled = true;
    queueMicrotask(() => { bannerScheduled = false; renderBanner(); });
  }

  /** Names of the alarm codes as a nurse says them (the code stays beside it). */
  const ALARM_NAMES = {
    AC_RATIO: 'ACD-A ratio', AC_RATIO_AGREEMENT: 'Device ratio disagrees', AC_INF_RATE: 'AC infusion rate',
    CITRATE_LOAD: 'Citrate load', COLLECT_VOL: 'Collected volume', ECV: 'Extracorporeal volume',
    WB_PROCESSED: 'Blood processed', TBV_PROCESSED: 'Blood volumes processed', RUN_TIME: 'Run time',
    STALE_TELEMETRY: 'No telemetry', LINK_DOWN: 'Separator link down', DATA_DECREASING: 'Data: value decreasing',
    DATA_RANGE: 'Data: value out of range', DATA_CLOCK_JUMP: 'Data: clock jump', DATA_RUN_START_MISSING: 'Data: run start missing',
    DATA_GAP: 'Data: telemetry gap', STORE_WRITE_FAILED: 'Record store refuses writes',
  };

  function alarmName(code) {
    if (!code) return 'Alarm';
    if (ALARM_NAMES[code]) return ALARM_NAMES[code];
    if (code.startsWith('DEVICE_')) return `Separator alarm ${code.slice(7)}`;
    return code;
  }

  /** Every open alarm across the top of the page, worst and unacknowledged first: its name, the
   *  value now (live), the limit, when it was raised and whether it is acknowledged. The banner
   *  flashes while any of them waits for an acknowledgement. */
  function renderBanner() {
    const banner = $('alarm-banner');
    const open = [...state.alarms.values()].filter((a) => a.state !== 'cleared');
    const rank = (a) => (a.state === 'active' ? 0 : 2) + (a.level === 'alarm' ? 0 : 1);
    open.sort((a, b) => rank(a) - rank(b) || a.raisedAt - b.raisedAt);
    const waiting = open.filter((a) => a.state === 'active');
    banner.hidden = open.length === 0;
    setAttr(banner, 'data-level', open.some((a) => a.level === 'alarm') ? 'alarm' : open.length ? 'warning' : '');
    setAttr(banner, 'data-flash', waiting.length ? 'true' : 'false');
    const key = (a) => (a.id !== null ? `id:${a.id}` : `p:${a.serial}:${a.code}`);
    const existing = new Map([...banner.children].map((n) => [n.dataset.key, n]));
    const items = open.map((a) => {
      let item = existing.get(key(a));
      if (!item) {
        item = el('div', 'banner-item');
        item.dataset.key = key(a);
        item.append(
          el('span', 'banner-level'), el('span', 'banner-name'), el('span', 'banner-now'),
          el('span', 'banner-limit'), el('span', 'banner-since'), el('span', 'banner-ack'));
      }
      const [level, nameEl, nowEl, limitEl, sinceEl, ackEl] = item.children;
      // Not data-alarm-*: those name the alarm elements in the cards (with their buttons).
      setAttr(item, 'data-banner-id', a.id);
      setAttr(item, 'data-banner-code', a.code);
      setAttr(item, 'data-level', a.level);
      setAttr(item, 'data-state', a.state);
      setText(level, a.level === 'alarm' ? 'ALARM' : 'WARNING');
      setText(nameEl, `${a.device}: ${alarmName(a.code)}${alarmName(a.code) !== a.code ? ` (${a.code})` : ''}`);
      const now = isNum(a.valueNow) ? a.valueNow : null;
      setText(nowEl, now !== null ? `now ${valueWithUnit(now, a.unit)}` : isNum(a.value) ? `${valueWithUnit(a.value, a.unit)} at raise` : '');
      setAttr(nowEl, 'data-value', now);
      setText(limitEl, isNum(a.limit) ? `limit ${valueWithUnit(a.limit, a.unit)}` : '');
      setText(sinceEl, `since ${formatTime(a.raisedAt)}`);
      setText(ackEl, a.state === 'active' ? 'NOT ACKNOWLEDGED'
        : `acknowledged${a.acknowledgedBy ? ' by ' + a.acknowledgedBy : ''}${a.acknowledgedAt ? ' ' + formatTime(a.acknowledgedAt) : ''}`);
      return item;
    });
    const current = [...banner.children];
    if (items.length !== current.length || items.some((n, i) => n !== current[i])) banner.replaceChildren(...items);
    document.title = waiting.length ? `(${waiting.length}) ALARM: apheresisd` : open.length ? `(${open.length}) apheresisd` : 'apheresisd: separators';
  }

  // ---------------------------------------------------------------------------------------------
  // Alarm history: cleared alarms, loaded from the store (GET /alarms?state=all) when the page
  // loads and after each clear, so that a reload keeps them.

  /** alarm key -> history entry (as an alarm record, state cleared) */
  const alarmHistory = new Map();
  const HISTORY_LIMIT = 200;
  let historyTimer = null;

  function historyKey(a) { return a.id !== null ? `id:${a.id}` : `p:${a.serial}:${a.code}:${a.raisedAt}`; }

  /** A clear seen on the stream: into the history at once, the store's row (reason) follows. */
  function addToHistory(a) {
    const entry = { ...a, el: null, state: 'cleared' };
    if (a.id !== null) alarmHistory.delete(`p:${a.serial}:${a.code}:${a.raisedAt}`);
    alarmHistory.set(historyKey(entry), entry);
    renderAlarmHistory();
    clearTimeout(historyTimer);
    historyTimer = setTimeout(loadAlarmHistory, 800);
  }

  async function loadAlarmHistory() {
    const reply = await request('GET', '/alarms?state=all');
    if (!reply.ok) { setText($('alarm-history-status'), `Could not load: ${reply.message}`); return; }
    for (const row of reply.data) {
      if (row.scope === 'daemon' || row.state !== 'cleared') continue;
      const previous = alarmHistory.get(`id:${row.id}`) || findHistoryProvisional(row);
      const entry = newAlarm({
        id: row.id, serial: row.device_serial, device: deviceNameForSerial(row.device_serial), code: row.code,
        level: row.level, state: 'cleared', value: row.value, limit: row.limit, unit: row.unit, message: row.message,
        runId: row.run_id, runRef: row.run_ref, raisedAt: serverTime(row.raised_at), runTime: row.raised_run_time_minutes,
        acknowledgedBy: row.acknowledged_by, acknowledgedAt: row.acknowledged_at,
        clearedAt: serverTime(row.cleared_at), clearReason: row.clear_reason,
      });
      if (previous) {
        // What this page saw live is more precise than the store's whole seconds.
        entry.lastSeen = previous.lastSeen;
        entry.escalatedAt = previous.escalatedAt;
        if (isNum(previous.raisedAt)) entry.raisedAt = previous.raisedAt;
        if (isNum(previous.clearedAt)) entry.clearedAt = previous.clearedAt;
        alarmHistory.delete(historyKey(previous));
      }
      alarmHistory.set(`id:${row.id}`, entry);
    }
    const entries = [...alarmHistory.entries()].sort((x, y) => (y[1].clearedAt || 0) - (x[1].clearedAt || 0));
    for (const [k] of entries.slice(HISTORY_LIMIT)) alarmHistory.delete(k);
    setText($('alarm-history-status'), `Updated ${formatTime(Date.now())}`);
    renderAlarmHistory();
    for (const name of cards.keys()) scheduleRender(name);
  }

  function findHistoryProvisional(row) {
    for (const e of alarmHistory.values()) if (e.id === row.id || (e.id === null && e.serial === row.device_serial && e.code === row.code)) return e;
    return null;
  }

  function renderAlarmHistory() {
    const entries = [...alarmHistory.values()].sort((x, y) => (y.clearedAt || 0) - (x.clearedAt || 0));
    const labels = ['Raised', 'Cleared', 'Separator', 'Alarm', 'Value', 'Limit', 'Acknowledged', 'Why cleared'];
    const rows = entries.map((a) => {
      const tr = el('tr');
      setAttr(tr, 'data-history-id', a.id);
      tr.dataset.historyCode = a.code;
      tr.dataset.level = a.level;
      const values = [isNum(a.value) ? `${valueWithUnit(a.value, a.unit)} at raise` : DASH];
      if (isNum(a.lastSeen)) values.push(`${valueWithUnit(a.lastSeen, a.unit)} last seen`);
      const cells = [
        formatWhen(a.raisedAt), formatWhen(a.clearedAt), a.device || a.serial || DASH,
        `${a.level === 'alarm' ? 'ALARM' : 'WARNING'} ${alarmName(a.code)}${alarmName(a.code) !== a.code ? ` (${a.code})` : ''}`,
        values.join(' · '), isNum(a.limit) ? valueWithUnit(a.limit, a.unit) : DASH,
        a.acknowledgedBy ? `${a.acknowledgedBy}${a.acknowledgedAt ? ' ' + formatTime(a.acknowledgedAt) : ''}` : 'no',
        a.clearReason || (a.id === null ? 'cleared' : DASH),
      ];
      cells.forEach((c, i) => {
        const td = el('td', null, c);
        td.dataset.label = labels[i];
        tr.append(td);
      });
      return tr;
    });
    if (!rows.length) {
      const tr = el('tr');
      const td = el('td', 'muted', 'No cleared alarms.');
      td.colSpan = labels.length;
      tr.append(td);
      rows.push(tr);
    }
    $('alarm-history-body').replaceChildren(...rows);
  }

  async function acknowledge(a) {
    const button = a.el && a.el.querySelector('.ack-button');
    const errorEl = a.el && a.el.querySelector('[data-role="ack-error"]');
    if (!button || a.id === null) return;
    setText(errorEl, '');
    button.disabled = true;
    const sentSeq = state.alarmEventSeq;
    const reply = await request('POST', `/alarms/${encodeURIComponent(a.id)}/acknowledge`, {});
    button.disabled = false;
    if (!isTracked(a)) return; // gone meanwhile (cleared and dropped, or a new snapshot)
    if (reply.ok) {
      const row = reply.data;
      if (row && row.id === a.id && a.state !== 'cleared' && !rowIsOutdated(a, row, sentSeq)) {
        updateAlarmFromRow(a, row);
        if (a.state === 'active') a.state = 'acknowledged';
      } else if (a.state === 'active') {
        // The stream moved on while we asked (e.g. escalated): the reply may be older than what is
        // shown. Ask the store what holds now rather than guess; the stream's own `acknowledged`
        // event, when it comes, settles it as well.
        syncActiveAlarms();
      }
      renderAlarm(a);
    } else {
      const hint = reply.status === 401 ? ' Sign in at the top of the page.' : '';
      setText(errorEl, `Not acknowledged: ${reply.message}${hint}`);
    }
  }

  /** Learn the ids of alarms shown from events (and who acknowledged what) from the store. One request
   *  at a time; events during it ask for one more afterwards. */
  let alarmSync = null;
  let alarmSyncAgain = false;
  function syncActiveAlarms() {
    if (alarmSync) { alarmSyncAgain = true; return; }
    const startedAt = Date.now();
    const sentSeq = state.alarmEventSeq;
    alarmSync = request('GET', '/alarms?state=active').then((reply) => {
      if (!reply.ok) { state.lastRequestProblem = `alarms: ${reply.message}`; return; }
      const seen = new Set();
      let newUnacknowledged = null;
      renderStoreAlarm(reply.data.find((row) => row.scope === 'daemon') || null);
      for (const row of reply.data) {
        if (row.scope === 'daemon') continue;
        const [a, isNew] = mergeAlarmRow(row, sentSeq);
        seen.add(a);
        if (isNew && a.state === 'active') newUnacknowledged = a;
      }
      // An alarm whose id we knew before asking, with no event since, that is no longer active has
      // cleared. (After an event during the request, the stream knows better than this reply.)
      for (const a of [...state.alarms.values()]) {
        if (!seen.has(a) && a.id !== null && a.state !== 'cleared' && a.idKnownAt !== null && a.idKnownAt < startedAt &&
            a.seq <= sentSeq) markCleared(a);
      }
      if (newUnacknowledged) beep(newUnacknowledged.level, `${newUnacknowledged.code} found active`);
    }).catch((err) => reportError('alarm resync', err)).finally(() => {
      alarmSync = null;
      if (alarmSyncAgain) { alarmSyncAgain = false; syncActiveAlarms(); }
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Sound. Browsers start audio only after a user gesture (unless autoplay is allowed): the control
  // says so, and the first click anywhere unlocks the AudioContext.

  const sound = {
    ctx: null, lastAskedAt: null,
    /** Turned off with the control (kept in this browser); alarms and losses are then shown, not heard. */
    muted: (() => { try { return localStorage.getItem('apheresisd.sound') === 'off'; } catch (_) { return false; } })(),
  };

  function audioContext() {
    if (!sound.ctx) {
      const Ctor = window.AudioContext || window.webkitAudioContext;
      if (!Ctor) return null;
      try {
        sound.ctx = new Ctor();
        sound.ctx.addEventListener('statechange', renderSoundToggle);
      } catch (_) {
        return null;
      }
    }
    return sound.ctx;
  }

  /** on: tones play; off: turned off with the control; blocked: the browser waits for a click. */
  function soundState() {
    if (sound.muted) return 'off';
    return sound.ctx && sound.ctx.state === 'running' ? 'on' : 'blocked';
  }

  function renderSoundToggle() {
    const button = $('sound-toggle');
    const st = soundState();
    setAttr(button, 'data-sound', st);
    setAttr(button, 'aria-pressed', st === 'on' ? 'true' : 'false');
    setText(button, { on: 'Sound on', off: 'Sound OFF: click to turn on', blocked: 'Sound blocked: click to enable' }[st]);
    setAttr(button, 'title', { on: 'Alarm sound is on. Click to turn it off.', off: 'Alarms and lost connections are not heard. Click to turn the sound on.', blocked: 'Browsers allow sound only after a click.' }[st]);
    renderLoss();
  }

  function unlockAudio() {
    const ctx = audioContext();
    if (ctx && ctx.state !== 'running') ctx.resume().then(renderSoundToggle, () => {});
  }

  /** Short square-wave beeps: three high ones for an alarm, two lower ones for a warning. */
  function playTone(level) {
    const ctx = sound.ctx;
    const count = level === 'alarm' ? 3 : 2;
    const freq = level === 'alarm' ? 988 : 740;
    const t0 = ctx.currentTime + 0.02;
    for (let i = 0; i < count; i++) {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.type = 'square';
      osc.frequency.value = freq;
      const start = t0 + i * 0.28;
      gain.gain.setValueAtTime(0.0001, start);
      gain.gain.exponentialRampToValueAtTime(0.25, start + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.2);
      osc.connect(gain).connect(ctx.destination);
      osc.start(start);
      osc.stop(start + 0.22);
    }
  }

  /** Whether any alarm still waits for an acknowledgement (raised or escalated, not acknowledged or cleared). */
  function unacknowledgedAlarms() {
    return [...state.alarms.values()].filter((a) => a.state === 'active');
  }

  /** The alarm sound, for a new alarm and as the reminder; body[data-beeps] counts every one that
   *  played. `stillWanted`, if given, is asked again just before playing (audio may unlock late). */
  function beep(level, why, stillWanted) {
    const askedAt = Date.now();
    sound.lastAskedAt = askedAt;
    const ctx = audioContext();
    if (!ctx || sound.muted) return;
    const play = () => {
      if (ctx.state !== 'running' || Date.now() - askedAt > BEEP_MAX_DELAY_MS) return;
      if (stillWanted && !stillWanted()) return;
      playTone(level);
      document.body.dataset.beeps = String(state.beeps + 1);
      state.recentEvents.push([Date.now(), 'beep', `${level}: ${why}`]);
    };
    if (ctx.state === 'running') play();
    else ctx.resume().then(() => { renderSoundToggle(); play(); }, () => {});
  }

  /** A single beep is easily missed: while an alarm waits for acknowledgement the sound repeats,
   *  every 30 s if any of them is of level alarm, else every 60 s, counted from the last beep (a new
   *  alarm's beep starts the interval again). Acknowledging or clearing the last one stops it. Runs
   *  on the page's 1 s clock. */
  function remindUnacknowledged() {
    const waiting = unacknowledgedAlarms();
    if (!waiting.length) return;
    const level = waiting.some((a) => a.level === 'alarm') ? 'alarm' : 'warning';
    if (sound.lastAskedAt !== null && Date.now() - sound.lastAskedAt < BEEP_REPEAT_MS[level]) return;
    beep(level, `${waiting.length} still unacknowledged`, () => unacknowledgedAlarms().length > 0);
  }

  function setUpSound() {
    audioContext();
    renderSoundToggle();
    // Any click or key unlocks audio; the control itself also plays a test tone (not counted as a beep).
    document.addEventListener('pointerdown', unlockAudio, { capture: true });
    document.addEventListener('keydown', unlockAudio, { capture: true });
    $('sound-toggle').addEventListener('click', () => {
      const ctx = audioContext();
      if (!ctx) { setText($('sound-toggle'), 'No sound in this browser'); return; }
      // Blocked: this click unlocks it. On: off. Off: on, with a test tone.
      if (soundState() === 'on') sound.muted = true;
      else if (sound.muted) sound.muted = false;
      try { localStorage.setItem('apheresisd.sound', sound.muted ? 'off' : 'on'); } catch (_) { /* private mode */ }
      ctx.resume().then(() => { renderSoundToggle(); if (!sound.muted) playTone('warning'); }, () => {});
      renderSoundToggle();
    });
    $('loss-silence').addEventListener('click', () => {
      for (const k of loss.reasons.keys()) loss.silenced.add(k);
      renderLoss();
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Lost connections: the daemon (stream down, API unreachable) or a separator's link. A tone
  // repeats every few seconds until someone silences it or the connection is back; a new loss
  // sounds again. body[data-sounding] says what the page does: true (the tone plays), blocked
  // (the browser waits for a click), off (sound turned off), false (nothing lost).

  /** Before a stream drop counts as losing the daemon (a reconnect after `dropped` takes ~2 s). */
  const DAEMON_LOSS_GRACE_MS = 4000;
  const LOSS_REPEAT_MS = 4000;
  const loss = { reasons: new Map(), silenced: new Set(), lastToneAt: 0, tones: 0 };

  function lossReasons() {
    const reasons = new Map();
    const now = Date.now();
    if (state.connection !== 'live' && state.disconnectedAt !== null && now - state.disconnectedAt >= DAEMON_LOSS_GRACE_MS) {
      reasons.set('daemon', { text: `No connection to apheresisd since ${formatTime(state.disconnectedAt)}`, since: state.disconnectedAt });
    } else if (state.connection === 'live') {
      for (const d of state.devices.values()) {
        if (!['down', 'stale', 'reconnecting'].includes(d.linkState)) continue;
        if (!isNum(d.lostAt)) d.lostAt = now;
        reasons.set(`link:${d.name}`, { text: `Link to ${d.name} ${d.linkState.toUpperCase()} since ${formatTime(d.lostAt)}`, since: d.lostAt });
      }
    }
    return reasons;
  }

  function renderLoss() {
    if (!$('loss-banner')) return;
    loss.reasons = lossReasons();
    // A silenced loss that ended is forgotten: the next one sounds again.
    for (const k of [...loss.silenced]) if (!loss.reasons.has(k)) loss.silenced.delete(k);
    const loud = [...loss.reasons.keys()].filter((k) => !loss.silenced.has(k));
    const banner = $('loss-banner');
    banner.hidden = loss.reasons.size === 0;
    const st = soundState();
    const sounding = loud.length === 0 ? 'false' : st === 'on' ? 'true' : st;
    document.body.dataset.sounding = sounding;
    document.body.dataset.loss = [...loss.reasons.keys()].join(' ');
    setAttr(banner, 'data-sounding', sounding);
    const what = [...loss.reasons.values()].map((r) => r.text).join(' · ');
    const how = { true: 'SOUNDING', blocked: 'SOUND BLOCKED: click anywhere to enable', off: 'sound is off', false: 'silenced' }[sounding];
    setText($('loss-text'), what ? `${what}. The values shown are not current.` : '');
    setText($('loss-sound'), how);
    $('loss-silence').hidden = loud.length === 0;
    if (loud.length && st === 'on' && Date.now() - loss.lastToneAt >= LOSS_REPEAT_MS) {
      loss.lastToneAt = Date.now();
      playLossTone();
      loss.tones += 1;
      document.body.dataset.lossTones = String(loss.tones);
    }
  }

  /** Falling two-tone, unlike the alarm beeps: "connection gone". */
  function playLossTone() {
    const ctx = sound.ctx;
    const t0 = ctx.currentTime + 0.02;
    [[880, 0], [587, 0.35], [880, 0.9], [587, 1.25]].forEach(([freq, at]) => {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.type = 'triangle';
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.0001, t0 + at);
      gain.gain.exponentialRampToValueAtTime(0.3, t0 + at + 0.03);
      gain.gain.exponentialRampToValueAtTime(0.0001, t0 + at + 0.3);
      osc.connect(gain).connect(ctx.destination);
      osc.start(t0 + at);
      osc.stop(t0 + at + 0.32);
    });
  }

  // ---------------------------------------------------------------------------------------------
  // The live stream.

  let source = null;
  let reconnectTimer = null;

  function setConnection(connection) {
    state.connection = connection;
    const badge = $('connection');
    setAttr(badge, 'data-connection', connection);
    setText(badge, { live: 'Live', connecting: 'Connecting…', reconnecting: 'Reconnecting…' }[connection] || connection);
    document.body.classList.toggle('offline', connection !== 'live');
    renderConnectionBanner();
    for (const name of cards.keys()) renderFreshness(name);
    renderLoss();
  }

  function renderConnectionBanner() {
    const banner = $('connection-banner');
    const down = state.connection !== 'live' && state.disconnectedAt !== null;
    banner.hidden = !down;
    if (down) {
      setText(banner, `No connection to apheresisd for ${formatDuration((Date.now() - state.disconnectedAt) / 1000)}: ` +
        'the values below are not current. Reconnecting every 2 s.');
    }
  }

  function connect() {
    clearTimeout(reconnectTimer);
    if (source) source.close();
    const es = new EventSource(`${API}/stream`);
    source = es;
    const on = (name, handler) => es.addEventListener(name, (event) => {
      if (source !== es) return;
      handleEvent(name, event, handler);
    });
    on('snapshot', onSnapshot);
    on('sample', onSample);
    on('alarm', onAlarm);
    on('link', onLink);
    on('run_start', onRunStart);
    on('run_end', onRunEnd);
    on('presets', onPresets);
    on('store', onStore);
    on('dropped', () => reconnectSoon('the server dropped this client (it fell behind)'));
    es.onerror = () => { if (source === es) reconnectSoon('stream error'); };
  }

  /** On an error or `dropped`: close, wait 2 s, reconnect; the new snapshot replaces the state. */
  function reconnectSoon(reason) {
    if (source) source.close();
    source = null;
    state.lastStreamProblem = reason;
    if (state.connection === 'live') state.disconnectedAt = Date.now();
    if (state.disconnectedAt === null) state.disconnectedAt = Date.now();
    state.reconnects += 1;
    setConnection('reconnecting');
    clearTimeout(reconnectTimer);
    reconnectTimer = setTimeout(connect, RECONNECT_DELAY_MS);
  }

  function handleEvent(name, event, handler) {
    state.lastEventAt = Date.now();
    state.lastEventName = name;
    state.eventCounts[name] = (state.eventCounts[name] || 0) + 1;
    let data;
    try {
      data = JSON.parse(event.data);
    } catch (err) {
      reportError(`${name} event (not JSON)`, err);
      return;
    }
    if (name !== 'sample') {
      const summary = name === 'alarm' ? `${data.change} ${data.code} ${data.level} id=${data.alarm_id}` : (data.run_id || data.link_state || '');
      state.recentEvents.push([state.lastEventAt, name, summary]);
      if (state.recentEvents.length > 50) state.recentEvents.shift();
    }
    try {
      handler(data);
    } catch (err) {
      // One bad event must not stop the page: note it and go on with the next.
      reportError(`${name} event`, err);
    }
  }

  function onSnapshot(snap) {
    const now = Date.now();
    // Devices: the snapshot is the whole truth.
    const names = new Set();
    for (const d of snap.devices || []) {
      const device = ensureDevice(d.name, d.serial_number);
      device.serial = d.serial_number || device.serial;
      device.link = d.link;
      device.linkState = d.link_state;
      if (d.link_state === 'up' || d.link_state === 'connecting') device.lostAt = null;
      device.lastError = d.last_error;
      device.activityAt = isNum(d.last_activity_age_seconds) ? now - d.last_activity_age_seconds * 1000 : null;
      names.add(d.name);
    }
    // Runs: only open runs come with a snapshot; the cards show those (a closed run's card clears).
    const runs = new Map();
    for (const r of snap.open_runs || []) {
      const name = deviceNameForSerial(r.device_serial);
      const previous = state.runs.get(name);
      const run = runFromJSON(r);
      if (previous && previous.runId === run.runId) {
        run.intervalMs = previous.intervalMs;
        if (!run.watch && previous.watch) run.watch = previous.watch;
        if (!run.series.length) run.series = previous.series;
      }
      runs.set(name, run);
      names.add(name);
    }
    for (const [name, run] of state.runs) {
      // A run that ended while we were connected stays on its card until the next run starts.
      if (!runs.has(name) && run.ended && names.has(name)) runs.set(name, run);
    }
    state.runs = runs;
    for (const name of [...state.devices.keys()]) if (!names.has(name)) state.devices.delete(name);
    for (const name of [...cards.keys()]) if (!names.has(name)) removeCard(name);

    reconcileSnapshotAlarms(snap.active_alarms || []);
    // Alarms that cleared while the page was not connected are in the store's history.
    loadAlarmHistory();

    state.connectedAt = now;
    state.disconnectedAt = null;
    setConnection('live');
    for (const name of names) scheduleRender(name);
    $('no-devices').hidden = cards.size > 0 || names.size > 0;
  }

  /** Keeps the elements of alarms still active (their data-shown-at stays), drops the rest, adds new
   *  ones and beeps once if any of those needs acknowledging. */
  function reconcileSnapshotAlarms(rows) {
    const kept = new Set();
    let beepLevel = null;
    renderStoreAlarm(rows.find((row) => row.scope === 'daemon') || null);
    for (const row of rows) {
      if (row.scope === 'daemon') continue;
      const [a, isNew] = mergeAlarmRow(row, null);
      kept.add(a);
      if (isNew && a.state === 'active' && beepLevel !== 'alarm') beepLevel = a.level;
    }
    for (const a of [...state.alarms.values()]) if (!kept.has(a)) removeAlarm(a);
    if (beepLevel) beep(beepLevel, 'unacknowledged alarms in the snapshot');
  }

  /** A live sample's place on the time axis: now (the daemon received it a moment ago), or the
   *  daemon's receive time if this computer's clock is off from the daemon's. */
  function liveTime(ev) {
    const now = Date.now();
    const told = serverTime(ev.received_at);
    return isNum(told) && Math.abs(now - told) > 2500 ? told : now;
  }

  function onSample(ev) {
    const name = ev.device;
    const device = ensureDevice(name, ev.device_serial);
    const now = Date.now();
    device.activityAt = now;
    let run = state.runs.get(name);
    if (!run || run.runId !== ev.run_id) {
      // A run we have not seen start (joined mid-run after a reconnect race): details come from GET /runs.
      run = newRun({ runId: ev.run_id, serial: ev.device_serial });
      state.runs.set(name, run);
      fetchRunDetails(name, ev.device_serial, ev.run_id);
    }
    if (isNum(run.sampleAt)) {
      // Smoothed interval between samples: decides when this device's data counts as stale.
      const gap = now - run.sampleAt;
      run.intervalMs = isNum(run.intervalMs) ? run.intervalMs * 0.8 + gap * 0.2 : gap;
    }
    run.sampleAt = now;
    run.values = ev.values || {};
    if (isNum(ev.run_time_minutes)) run.runTime = ev.run_time_minutes;
    if (ev.watch) {
      applyWatch(run, ev.watch, false);
      // Each open alarm of this run shows what the daemon computes for it now.
      const valuesNow = ev.watch.values_now || {};
      for (const a of state.alarms.values()) {
        if (a.serial !== ev.device_serial || a.state === 'cleared') continue;
        // Only this run's alarms: another run of the device may have an alarm of the same code.
        const sameRun = (a.runId !== null && a.runId === ev.run_id) || (a.runRef !== null && a.runRef === ev.watch.run_ref);
        if (!sameRun) continue;
        const v = isNum(valuesNow[a.code]) ? valuesNow[a.code] : null;
        if (v !== null) a.lastSeen = v;
        if (v !== a.valueNow) { a.valueNow = v; renderAlarm(a); }
      }
      const d = ev.watch.derived || {};
      addPoint(run, {
        t: isNum(ev.watch.run_time_minutes) ? ev.watch.run_time_minutes : ev.run_time_minutes, w: liveTime(ev),
        ratio: d.window_ratio, ac: d.ac_infusion_rate_ml_per_min_per_l, citrate: d.citrate_load_rate_mg_per_kg_per_min,
        collected: d.collected_ml,
      });
    } else {
      const d = derivedOf(run);
      addPoint(run, { t: ev.run_time_minutes, w: liveTime(ev), ratio: d.device_ratio, ac: d.ac_infusion_rate_ml_per_min_per_l, citrate: null, collected: d.collected_ml });
    }
    if (ev.kind === 'RUN_END') { run.ended = true; run.endedAt = ev.received_at; }
    scheduleRender(name);
  }

  /**
   * An alarm changed: raised, escalated, deescalated, cleared, or acknowledged (here or at another
   * workstation). Also the daemon's own stale-telemetry and link alarms, which come without a sample
   * and often without value, limit or run.
   */
  function onAlarm(ev) {
    const seq = ++state.alarmEventSeq;
    const at = serverTime(ev.at);
    const hasId = isNum(ev.alarm_id);
    // An acknowledgement names the device only by serial when the daemon has no link for it.
    const device = ev.device || deviceNameForSerial(ev.device_serial);
    let a = hasId ? findAlarmById(ev.alarm_id) : null;
    if (!a) {
      const open = findOpenAlarm(ev.device_serial, ev.code, device);
      // Another id is another alarm: reusing the open record would leave its button acknowledging the
      // older one. That one has probably cleared unseen: the resync below says so if it has.
      if (open && (!hasId || open.id === null || open.id === ev.alarm_id)) a = open;
      else if (open) syncActiveAlarms();
    }
    if (ev.change === 'cleared') {
      if (a) { a.seq = seq; advanceAsOf(a, at); markCleared(a); }
      return;
    }
    // A clear is final. A raise or escalation is never dropped for its time: stream times are whole
    // seconds and an acknowledgement is stored beside the pipeline, so their order within a second
    // says nothing; hiding a worse state would be the dangerous mistake. Other events older than
    // what the record shows are repeats (the stream may send events twice around its snapshot).
    if (a && a.state === 'cleared') return;
    const worsens = ev.change === 'raised' || ev.change === 'escalated';
    if (a && !worsens && isNum(at) && isNum(a.asOf) && at < a.asOf) return;

    if (ev.change === 'acknowledged') {
      // Of an alarm we do not show (a missed raise): the store has it whole; the event has no value.
      if (!a) { syncActiveAlarms(); return; }
      // An acknowledgement of a lower level than shown was overtaken by an escalation: the store
      // decides (the escalation needs its own acknowledgement).
      if (ev.level && levelRank(ev.level) < levelRank(a.level)) { syncActiveAlarms(); return; }
      a.state = 'acknowledged';
      a.acknowledgedBy = ev.by || null;
      a.acknowledgedAt = ev.at || null;
      if (hasId && a.id === null) { a.id = ev.alarm_id; a.idKnownAt = Date.now(); }
      a.seq = seq;
      advanceAsOf(a, at);
      putAlarm(a);
      renderAlarm(a);
      if (!a.acknowledgedBy) syncActiveAlarms(); // who acknowledged: the store knows
      return;
    }
    if (!a && !['raised', 'escalated', 'deescalated'].includes(ev.change)) {
      syncActiveAlarms(); // a change this page does not know: take the store's view
      return;
    }

    const isNew = !a;
    if (!a) {
      // Shown at once, before the store's id is known; the id follows (event field or GET /alarms).
      a = newAlarm({ serial: ev.device_serial, device, code: ev.code, raisedAt: Date.now() });
    }
    if (hasId && a.id === null) { a.id = ev.alarm_id; a.idKnownAt = Date.now(); }
    a.device = a.device || device;
    a.level = ev.level || a.level;
    // Only what the event carries: a link or stale-data alarm may have no value, limit or unit.
    for (const key of ['value', 'limit', 'unit', 'message']) if (key in ev) a[key] = ev[key];
    if (isNum(ev.run_time_minutes) && (isNew || a.runTime === null)) a.runTime = ev.run_time_minutes;
    if (ev.run_id) a.runId = ev.run_id;
    if (ev.change === 'escalated') a.escalatedAt = Date.now();
    if (ev.change === 'raised' || ev.change === 'escalated') {
      // A new alarm, or a worse level: it needs a (new) acknowledgement.
      a.state = 'active';
      a.acknowledgedBy = null;
      a.acknowledgedAt = null;
    }
    a.seq = seq;
    advanceAsOf(a, at);
    putAlarm(a);
    ensureDevice(device, ev.device_serial);
    renderAlarm(a);
    if (ev.change === 'raised' || ev.change === 'escalated') beep(a.level, `${ev.code} ${ev.change}`);
    // Without an id the button cannot acknowledge.
    if (a.id === null) syncActiveAlarms();
  }

  function onLink(ev) {
    const device = ensureDevice(ev.device);
    if (ev.link_state === 'up' || ev.link_state === 'connecting') device.lostAt = null;
    else if (!isNum(device.lostAt)) device.lostAt = serverTime(ev.at) || Date.now();
    device.linkState = ev.link_state;
    renderLoss();
    scheduleRender(ev.device);
  }

  function onRunStart(ev) {
    const name = ev.device;
    ensureDevice(name, ev.device_serial);
    // The previous run's cleared alarms are history now; open ones stay until they clear.
    for (const a of [...state.alarms.values()]) if (a.device === name && a.state === 'cleared') removeAlarm(a);
    state.runs.set(name, newRun({
      runId: ev.run_id, serial: ev.device_serial, procedure: ev.procedure,
      patient: ev.patient_id ? { id: ev.patient_id } : null, openedAt: ev.at,
    }));
    scheduleRender(name);
    fetchRunDetails(name, ev.device_serial, ev.run_id);
  }

  function onRunEnd(ev) {
    const run = state.runs.get(ev.device);
    if (run && run.runId === ev.run_id) {
      run.ended = true;
      run.endedAt = ev.at;
      scheduleRender(ev.device);
    }
    loadHistory();
  }

  /** Someone changed this run's presets (here or on another workstation). */
  function onPresets(ev) {
    const run = state.runs.get(ev.device);
    if (!run || run.runId !== ev.run_id || !ev.watch) return;
    applyWatch(run, ev.watch, false);
    run.presetNote = `changed by ${ev.changed_by || '?'} at ${formatTime(ev.at)}: ${ev.reason || ''}`;
    scheduleRender(ev.device);
  }

  /** The run's store id, patient and profile (a run_start event has only the patient id). */
  async function fetchRunDetails(name, serial, runId) {
    const reply = await request('GET', '/runs');
    if (!reply.ok) return;
    const row = reply.data.filter((r) => r.device_serial === serial && r.run_id === runId).pop();
    const run = state.runs.get(name);
    if (!row || !run || run.runId !== runId) return;
    run.ref = row.id;
    run.patient = row.patient || run.patient;
    run.profile = run.profile || row.profile;
    run.procedure = row.procedure || run.procedure;
    run.openedAt = row.opened_at;
    if (!run.watch) {
      // The watcher's view with its history, if the daemon watches the run already.
      const watch = await request('GET', `/runs/${encodeURIComponent(row.id)}/watch`);
      if (watch.ok && watch.data && state.runs.get(name) === run) applyWatch(run, watch.data, true);
    }
    scheduleRender(name);
  }

  // ---------------------------------------------------------------------------------------------
  // Session: sign in with user and password; the cookie is HttpOnly, so the page asks who it is.

  function renderSession() {
    const s = state.session;
    scheduleSessionCheck();
    $('signin-form').hidden = !!s;
    $('signed-in').hidden = !s;
    setText($('signed-in-user'), s ? s.user : '');
    setText($('signed-in-role'), s ? s.role : '');
    for (const name of cards.keys()) scheduleRender(name);
  }

  function onSessionLost() {
    if (!state.session) return;
    state.session = null;
    renderSession();
    setText($('signin-error'), 'Your session ended: sign in again.');
  }

  let sessionTimer = null;

  /** When the session should have ended: its expiry as last told, or later if the page used it since
   *  (each write moves the daemon's idle limit on). */
  function sessionEndsAt() {
    const told = state.session ? Date.parse(state.session.expires_at) : NaN;
    if (!Number.isFinite(told)) return NaN;
    return isNum(state.sessionUsedAt) ? Math.max(told, state.sessionUsedAt + SESSION_IDLE_MS) : told;
  }

  /** Checks once the session should have ended (idle or absolute limit), so that the header does not
   *  go on saying "signed in". GET /session touches the session and would keep it alive: it is asked
   *  only when the session should be over (an ended one is not revived), never on a period. */
  function scheduleSessionCheck() {
    clearTimeout(sessionTimer);
    const ends = sessionEndsAt();
    if (Number.isFinite(ends)) sessionTimer = setTimeout(checkSessionEnded, Math.max(1000, ends - Date.now() + 2000));
  }

  function checkSessionEnded() {
    // Used since the timer was set: it lives on; wait for the new end instead of asking.
    if (sessionEndsAt() + 2000 > Date.now()) { scheduleSessionCheck(); return; }
    loadSession();
  }

  async function loadSession() {
    const reply = await request('GET', '/session');
    state.session = reply.ok ? reply.data : null;
    // Asking touched it: its idle limit starts again now.
    state.sessionUsedAt = reply.ok ? Date.now() : null;
    renderSession();
  }

  async function signIn(event) {
    event.preventDefault();
    const user = $('signin-user').value.trim();
    const password = $('signin-password').value;
    setText($('signin-error'), '');
    if (!user || !password) { setText($('signin-error'), 'Enter user and password.'); return; }
    $('signin-submit').disabled = true;
    const reply = await request('POST', '/session', { user, password });
    $('signin-submit').disabled = false;
    if (!reply.ok) {
      setText($('signin-error'), reply.message);
      $('signin-password').select();
      return;
    }
    $('signin-password').value = '';
    state.session = reply.data;
    state.sessionUsedAt = Date.now();
    renderSession();
  }

  async function signOut() {
    // No body; request() still sends the JSON content type and the dashboard header.
    const reply = await request('DELETE', '/session');
    if (!reply.ok && reply.status !== 401) {
      // Not signed out (no answer): say so rather than hide a session that still works.
      setAttr($('signout'), 'title', `Not signed out: ${reply.message}`);
      return;
    }
    setAttr($('signout'), 'title', null);
    state.session = null;
    state.sessionUsedAt = null;
    renderSession();
  }

  // ---------------------------------------------------------------------------------------------
  // Per-run preset change (operator or supervisor), with a reason.

  /** The presets a run may change (docs/api.md, POST /runs/{id}/presets); the others are the device's. */
  const PRESET_FIELDS = [
    ['ratio_warn_deviation', 'Ratio warning deviation', '± ratio units'],
    ['ratio_alarm_deviation', 'Ratio alarm deviation', '± ratio units'],
    ['ac_infusion_rate_warn_ml_per_min_per_l', 'AC infusion warning', 'mL/min/L'],
    ['ac_infusion_rate_alarm_ml_per_min_per_l', 'AC infusion alarm', 'mL/min/L'],
    ['citrate_load_warn_mg_per_kg_per_min', 'Citrate load warning', 'mg/kg/min'],
    ['citrate_load_alarm_mg_per_kg_per_min', 'Citrate load alarm', 'mg/kg/min'],
    ['collect_target_ml', 'Collect target', 'mL'],
    ['collect_max_ml', 'Collect maximum', 'mL'],
  ];

  /** While the dialog is open: the card's device name and the run it was opened for. The run, not
   *  the card, is what the change is for: another patient's run may start on the card meanwhile. */
  let presetsFor = null; // {name, ref, runId} or null

  function openPresetsDialog(name) {
    const run = state.runs.get(name);
    if (!run || !run.watch || !isNum(run.ref)) return;
    presetsFor = { name, ref: run.ref, runId: run.runId };
    const p = presetsOf(run);
    const overridden = new Set(p.overridden || []);
    setText($('presets-run'), `${name}, ${run.runId}`);
    const fields = PRESET_FIELDS.map(([key, label, unit]) => {
      const id = `preset-${key}`;
      const lab = el('label', null, `${label} (${unit})`);
      lab.htmlFor = id;
      const input = el('input');
      input.id = id;
      input.type = 'number';
      input.step = 'any';
      input.min = '0';
      input.dataset.key = key;
      // 1.7999999999999998 is 1.8 to a person; an untouched field is not sent.
      input.dataset.original = isNum(p[key]) ? String(Number(p[key].toPrecision(6))) : '';
      input.value = input.dataset.original;
      input.dataset.overridden = overridden.has(key) ? 'true' : 'false';
      return [lab, input];
    }).flat();
    $('presets-fields').replaceChildren(...fields);
    $('presets-reason').value = '';
    setText($('presets-error'), '');
    $('presets-dialog').showModal();
  }

  /** The card's run if it is still the one the dialog was opened for and still open; else why not. */
  function presetsTarget(target) {
    const run = target && state.runs.get(target.name);
    if (!run || run.ref !== target.ref || run.runId !== target.runId) {
      return { why: `Not applied: ${target ? target.runId : 'the run'} is no longer the run on ${target ? target.name : 'this separator'}${run && run.runId ? ` (now ${run.runId})` : ''}. Cancel and open the dialog again.` };
    }
    if (run.ended) return { why: `Not applied: ${target.runId} has ended.` };
    return { run };
  }

  async function submitPresets(event) {
    event.preventDefault();
    const target = presetsFor;
    const { run, why } = presetsTarget(target);
    if (!run) { setText($('presets-error'), why); return; }
    const reason = $('presets-reason').value.trim();
    const changes = {};
    for (const input of $('presets-fields').querySelectorAll('input')) {
      if (input.value === input.dataset.original || input.value === '') continue;
      const v = Number(input.value);
      if (!Number.isFinite(v)) { setText($('presets-error'), `${input.dataset.key}: not a number`); return; }
      changes[input.dataset.key] = v;
    }
    if (!Object.keys(changes).length) { setText($('presets-error'), 'Nothing changed.'); return; }
    if (!reason) { setText($('presets-error'), 'A reason is required.'); $('presets-reason').focus(); return; }
    $('presets-submit').disabled = true;
    // Posted to the run the dialog was opened for (its store id), never to whatever the card shows now.
    const reply = await request('POST', `/runs/${encodeURIComponent(target.ref)}/presets`, { reason, changes });
    $('presets-submit').disabled = false;
    if (!reply.ok) { setText($('presets-error'), reply.message); return; }
    // The card may have moved on to another run during the request: its watch is not this reply.
    if (state.runs.get(target.name) === run) {
      if (reply.data) applyWatch(run, reply.data, Array.isArray(reply.data.series));
      run.presetNote = `changed by ${state.session ? state.session.user : 'you'}: ${reason}`;
    }
    $('presets-dialog').close();
    presetsFor = null;
    scheduleRender(target.name);
  }

  function setUpPresetsDialog() {
    $('presets-form').addEventListener('submit', submitPresets);
    $('presets-cancel').addEventListener('click', () => { $('presets-dialog').close(); presetsFor = null; });
  }

  // ---------------------------------------------------------------------------------------------
  // Past runs and products.

  let historyLoading = false;
  let selectedProduct = null;

  async function loadHistory() {
    if (historyLoading) return;
    historyLoading = true;
    setText($('history-status'), 'Loading…');
    const [runs, products] = await Promise.all([request('GET', '/runs'), request('GET', '/products')]);
    historyLoading = false;
    if (!runs.ok || !products.ok) {
      setText($('history-status'), `Could not load: ${(runs.ok ? products : runs).message}`);
      return;
    }
    setText($('history-status'), `Updated ${formatTime(Date.now())}`);
    const byId = new Map(products.data.map((p) => [p.id, p]));
    renderRuns(runs.data, byId);
    renderProducts(products.data);
    if (selectedProduct !== null) showProduct(selectedProduct);
  }

  function productName(p) {
    return p && p.din ? p.din.eye_readable : p ? `product ${p.id}` : '';
  }

  function renderRuns(runs, productsById) {
    const rows = [...runs].reverse().map((r) => {
      const tr = el('tr');
      tr.dataset.state = r.state;
      tr.dataset.runRef = String(r.id);
      const patient = r.patient || {};
      const cells = [
        r.run_id, deviceNameForSerial(r.device_serial), [patient.id, patient.family_name].filter(Boolean).join(' '),
        [r.procedure, r.profile].filter(Boolean).join(' · '), r.state, formatDateTime(r.opened_at), formatDateTime(r.closed_at),
      ];
      const labels = ['Run', 'Separator', 'Patient', 'Procedure', 'State', 'Opened', 'Closed'];
      cells.forEach((c, i) => {
        const td = el('td', null, c || DASH);
        td.dataset.label = labels[i];
        tr.append(td);
      });
      const productCell = el('td');
      productCell.dataset.label = 'Product';
      if (r.product_id !== null && r.product_id !== undefined) {
        const b = el('button', 'link-button', productName(productsById.get(r.product_id)) || `product ${r.product_id}`);
        b.type = 'button';
        b.addEventListener('click', () => showProduct(r.product_id));
        productCell.append(b);
      } else {
        productCell.textContent = DASH;
      }
      tr.append(productCell);
      return tr;
    });
    if (!rows.length) {
      const tr = el('tr');
      const td = el('td', 'muted', 'No runs yet.');
      td.colSpan = 8;
      tr.append(td);
      rows.push(tr);
    }
    $('runs-body').replaceChildren(...rows);
  }

  function renderProducts(products) {
    const items = [...products].reverse().map((p) => {
      const li = el('li');
      const b = el('button');
      b.type = 'button';
      b.dataset.productId = String(p.id);
      b.setAttribute('aria-pressed', String(selectedProduct === p.id));
      b.append(el('span', null, `${productName(p)} · run ${p.run_id || p.run_ref}`), el('span', 'product-status', p.status));
      b.addEventListener('click', () => showProduct(p.id));
      li.append(b);
      return li;
    });
    if (!items.length) items.push(el('li', 'muted', 'No products yet.'));
    $('products-list').replaceChildren(...items);
  }

  /** Alarm levels in order of urgency (unknown levels rank as the most urgent, to be safe). */
  function levelRank(level) {
    const order = { info: 0, warning: 1, alarm: 2 };
    return level in order ? order[level] : 3;
  }

  async function showProduct(id) {
    selectedProduct = id;
    for (const b of $('products-list').querySelectorAll('button[data-product-id]')) {
      b.setAttribute('aria-pressed', String(b.dataset.productId === String(id)));
    }
    const detail = $('product-detail');
    detail.hidden = false;
    const reply = await request('GET', `/products/${encodeURIComponent(id)}`);
    if (selectedProduct !== id) return;
    if (!reply.ok) { detail.replaceChildren(el('p', 'error-text', reply.message)); return; }
    detail.replaceChildren(...productDetail(reply.data));
  }

  function productDetail(p) {
    const nodes = [el('h3', null, `${productName(p)}: ${p.product_name}`)];
    const dl = el('dl');
    const row = (k, v) => dl.append(el('dt', null, k), el('dd', null, v));
    row('Status', p.status);
    row('Run', p.run_id ? `${p.run_id} (${p.run_ref})` : String(p.run_ref));
    row('Collected', `${fmt(p.collected_volume_millilitres, 1)} mL at ${formatDateTime(p.collected_at)}`);
    if (isNum(p.patient_mass_kilograms)) row('Patient mass', `${p.patient_mass_kilograms} kg`);
    const lab = (p.lab_results || [])[p.lab_results ? p.lab_results.length - 1 : 0];
    if (lab) {
      row('Lab values', `WBC ${fmt(lab.wbc_giga_per_litre, 2)} ×10⁹/L · CD3+ ${isNum(lab.cd3_percent) ? fmt(lab.cd3_percent, 1) + ' %' : fmt(lab.cd3_per_microlitre, 0) + '/µL'} · viability ${fmt(lab.viability_percent, 0)} % (v${lab.version}, ${lab.entered_by})`);
    }
    if (p.computation) {
      const c = p.computation;
      row('Units', `${c.unit_count} × ${fmt(c.unit_volume_millilitres, 1)} mL · CD3+ ${fmt(c.cd3_after_reduction_per_microlitre, 1)}/µL after reduction`);
      row('Collection', c.collection_sufficient ? 'sufficient' : 'NOT sufficient');
    }
    const rc = p.run_completeness;
    if (rc) row('Run telemetry', `${rc.complete ? 'complete' : 'INCOMPLETE'}: ${rc.summary}${rc.complete ? '' : ' (release needs an acknowledgement)'}`);
    if (p.release) row('Released', `by ${p.release.user_full_name || p.release.user_name} at ${formatDateTime(p.release.signed_at)}`);
    nodes.push(dl);
    const labels = el('div', 'labels');
    for (const u of p.units || []) {
      const fig = el('figure', 'label-card');
      const svgPath = u.label_previews && u.label_previews.svg;
      // Only our own API's paths become image sources (img-src 'self' would block others anyway).
      if (typeof svgPath === 'string' && svgPath.startsWith('/api/v1/')) {
        const img = el('img');
        img.src = svgPath;
        img.alt = `Label preview of unit ${u.division_code}`;
        fig.append(img);
      }
      const cd3 = `${formatCells(u.cd3_cells)}${isNum(u.cd3_cells_per_kilogram) ? ` (${formatCells(u.cd3_cells_per_kilogram).replace(' cells', ' /kg')})` : ''}`;
      fig.append(el('figcaption', null, `${u.division_code} · ${fmt(u.volume_millilitres, 1)} mL · CD3+ ${cd3} · ${u.dose_flag}${svgPath ? '' : ' · label after release'}`));
      labels.append(fig);
    }
    if ((p.units || []).length) nodes.push(labels);
    return nodes;
  }

  // ---------------------------------------------------------------------------------------------
  // Clock: ages advance every second without any event, so stale data shows itself.

  function tick() {
    for (const name of cards.keys()) renderFreshness(name);
    for (const a of state.alarms.values()) renderAlarmTimes(a);
    renderConnectionBanner();
    remindUnacknowledged();
    renderLoss();
    // The time axes run on to now: a line that stops there shows the silence.
    for (const name of cards.keys()) scheduleRender(name);
  }

  function start() {
    // Errors in our click, timer and promise handlers are diagnosed like those of stream events.
    window.addEventListener('error', (e) => reportError('uncaught', e.error || e.message));
    window.addEventListener('unhandledrejection', (e) => reportError('unhandled rejection', e.reason));
    setUpSound();
    setUpPresetsDialog();
    $('signin-form').addEventListener('submit', signIn);
    // Disabled in the HTML: before this script runs (or if it failed) the form cannot be submitted
    // natively, which would send the password as a plain form post.
    $('signin-submit').disabled = false;
    $('signout').addEventListener('click', signOut);
    $('history-refresh').addEventListener('click', loadHistory);
    // Redraw the charts in their new pixel size when the window changes.
    window.addEventListener('resize', () => { for (const name of cards.keys()) scheduleRender(name); });
    setInterval(tick, 1000);
    setConnection('connecting');
    connect();
    loadSession();
    loadHistory();
    renderAlarmHistory();
  }

  start();
})();
