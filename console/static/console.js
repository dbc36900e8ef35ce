// Alarm console page: one EventSource for live changes, no polling; every text set with
// textContent (alarm messages come from the field and are never parsed as HTML).
"use strict";
(() => {
  const csrf = document.querySelector('meta[name="csrf"]').content;
  const maxShelve = Number(document.querySelector('meta[name="max-shelve"]').content);
  const canAct = document.body.dataset.role === "operator";
  const $ = (id) => document.getElementById(id);
  const tbody = $("alarm-rows");

  const board = { alarms: new Map(), devices: new Map(), interlocks: new Map(), rescues: new Map(),
                  journal: [], link: { connected: false, stale: true } };
  const rows = new Map();      // alarm key -> <tr>
  let order = [];              // alarm keys, sorted
  const sortKeys = new Map();  // alarm key -> [priority, -ts, key]
  let dirty = new Set();
  let sidesDirty = false, journalDirty = [], linkDirty = false, everything = false;
  let loaded = false, frame = 0;

  // ---------------------------------------------------------------- sound
  let muted = localStorage.getItem("console-muted") === "1";
  let audio = null;
  const muteButton = $("mute");
  const showMute = () => {
    muteButton.textContent = muted ? "Sound: muted" : "Sound: on";
    muteButton.setAttribute("aria-pressed", String(muted));
  };
  muteButton.addEventListener("click", () => {
    muted = !muted;
    localStorage.setItem("console-muted", muted ? "1" : "0");
    showMute();
  });
  document.addEventListener("click", () => { if (audio && audio.state === "suspended") audio.resume(); });
  showMute();
  function tone() {
    document.body.dataset.tones = String(Number(document.body.dataset.tones) + 1);
    if (muted) return;
    try {
      audio = audio || new AudioContext();
      const t = audio.currentTime;
      for (let i = 0; i < 3; i++) {  // three short beeps at 880 Hz
        const osc = audio.createOscillator(), gain = audio.createGain();
        osc.frequency.value = 880;
        gain.gain.setValueAtTime(0.25, t + i * 0.3);
        gain.gain.setValueAtTime(0, t + i * 0.3 + 0.18);
        osc.connect(gain).connect(audio.destination);
        osc.start(t + i * 0.3);
        osc.stop(t + i * 0.3 + 0.2);
      }
    } catch (e) { /* no audio device: the row still flashes */ }
  }
  const loudNew = (before, after) => after && after.priority === 1 && after.state === "UNACK_ACTIVE" &&
    !(before && before.state === "UNACK_ACTIVE" && before.priority === 1);

  // ---------------------------------------------------------------- formatting
  const pad = (n) => String(n).padStart(2, "0");
  function when(ms) {
    if (typeof ms !== "number") return "";
    const d = new Date(ms), now = new Date();
    const hms = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    return d.toDateString() === now.toDateString() ? hms : `${d.getMonth() + 1}-${pad(d.getDate())} ${hms}`;
  }
  const num = (v) => (typeof v === "number" ? String(Number(v.toPrecision(4))) : "—");
  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  const STATE_TEXT = { UNACK_ACTIVE: "unack", ACK_ACTIVE: "acknowledged", RTN_UNACK: "cleared, unack",
                       SHELVED: "shelved", SUPPRESSED: "suppressed", OUT_OF_SERVICE: "out of service" };
  const ACTIONS = [
    ["ack", "Ack", (s) => s === "UNACK_ACTIVE" || s === "RTN_UNACK"],
    ["shelve", "Shelve", (s) => ["UNACK_ACTIVE", "ACK_ACTIVE", "RTN_UNACK"].includes(s)],
    ["unshelve", "Unshelve", (s) => s === "SHELVED"],
    ["out_of_service", "Out of service", (s) => s !== "OUT_OF_SERVICE"],
    ["return_to_service", "Return", (s) => s === "OUT_OF_SERVICE"],
  ];

  // ---------------------------------------------------------------- filters
  const fSite = $("f-site"), fArea = $("f-area"), fPriority = $("f-priority");
  const visible = (a) => (!fSite.value || a.site === fSite.value) &&
    (!fArea.value || a.area === fArea.value) &&
    (!fPriority.value || (typeof a.priority === "number" && a.priority <= Number(fPriority.value)));
  for (const f of [fSite, fArea, fPriority]) f.addEventListener("change", () => { shownDirty = true; schedule(); });
  function fillOptions(select, values) {
    const have = new Set([...select.options].map((o) => o.value));
    for (const v of [...values].sort()) if (v && !have.has(v)) select.append(new Option(v, v));
  }

  // ---------------------------------------------------------------- alarm rows
  const sortKey = (key, a) => [typeof a.priority === "number" ? a.priority : 99, -(a.ts || 0), key];
  function before(x, y) {
    for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i] < y[i];
    return false;
  }
  function position(sk) {  // first index whose key sorts after sk
    let lo = 0, hi = order.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (before(sortKeys.get(order[mid]), sk)) lo = mid + 1; else hi = mid;
    }
    return lo;
  }
  function interlockOf(a) {
    return a.area ? board.interlocks.get(`${a.site}/${a.area}`) : undefined;
  }
  function fillRow(tr, key, a) {
    tr.className = `p${a.priority} ${a.state}`;
    tr.dataset.key = key;
    tr.dataset.state = a.state;
    tr.replaceChildren();
    tr.append(el("td", a.priority));
    tr.append(el("td", STATE_TEXT[a.state] || a.state));
    const where = el("td", a.site);
    where.append(el("div", a.area || "", "small"));
    tr.append(where);
    const what = el("td", null, "title");
    what.append(el("span", a.title, "t"));
    what.title = `${a.title}\n${a.message || ""}`;
    what.append(el("div", `${a.id}${a.shelved_until ? " · shelved until " + when(a.shelved_until) : ""}`, "small"));
    tr.append(what);
    tr.append(el("td", `${num(a.value)} / ${num(a.limit)}`));
    tr.append(el("td", a.level));
    tr.append(el("td", when(a.ts)));
    const power = el("td");
    const il = interlockOf(a);
    if (a.power_off === true) power.append(el("span", "OFF", "power-off"));
    else if (il && il.power_off) power.append(el("span", "OFF", "power-off"));
    if (il) power.title = `${a.area}: power ${il.power_off ? "off" : "on"}, feed ${il.feed ?? "unknown"}`;
    tr.append(power);
    const actions = el("td", null, "actions");
    if (canAct) {
      for (const [verb, label, allowed] of ACTIONS) {
        const b = el("button", label);
        b.type = "button";
        b.dataset.act = verb;
        b.disabled = !allowed(a.state);
        actions.append(b);
      }
    }
    tr.append(actions);
  }
  // The list is windowed: only the rows in view (and a few around them) are in the DOM, so
  // thousands of active alarms cost what the visible ones cost. Rows have one fixed height.
  const ROW_H = 56, OVERSCAN = 8;
  const scroller = tbody.closest(".scroll");
  const topPad = document.createElement("tr"), bottomPad = document.createElement("tr");
  topPad.className = bottomPad.className = "pad";
  let shown = [];              // keys passing the filters, in order
  let shownDirty = true;
  function reorder(key) {      // move one key to its sorted place (or out, if gone)
    const a = board.alarms.get(key);
    const old = sortKeys.get(key);
    if (old) {
      const i = position(old);
      if (order[i] === key) order.splice(i, 1); else order = order.filter((k) => k !== key);
      sortKeys.delete(key);
    }
    if (a) {
      const sk = sortKey(key, a);
      order.splice(position(sk), 0, key);
      sortKeys.set(key, sk);
    }
    shownDirty = true;
  }
  function resort() {
    sortKeys.clear();
    const keys = [...board.alarms.keys()];
    for (const k of keys) sortKeys.set(k, sortKey(k, board.alarms.get(k)));
    order = keys.sort((x, y) => (before(sortKeys.get(x), sortKeys.get(y)) ? -1 : 1));
    shownDirty = true;
  }
  function renderWindow(refill) {
    if (shownDirty) {
      shown = order.filter((k) => visible(board.alarms.get(k)));
      shownDirty = false;
    }
    const first = Math.max(0, Math.floor(scroller.scrollTop / ROW_H) - OVERSCAN);
    const last = Math.min(shown.length, first + Math.ceil(scroller.clientHeight / ROW_H) + 2 * OVERSCAN);
    const want = shown.slice(first, last);
    const keep = new Set(want);
    for (const [k] of rows) if (!keep.has(k)) rows.delete(k);
    const trs = want.map((k) => {
      let tr = rows.get(k);
      if (!tr) { tr = document.createElement("tr"); rows.set(k, tr); fillRow(tr, k, board.alarms.get(k)); }
      else if (refill.has(k)) fillRow(tr, k, board.alarms.get(k));
      return tr;
    });
    topPad.style.height = `${first * ROW_H}px`;
    bottomPad.style.height = `${(shown.length - last) * ROW_H}px`;
    const now = tbody.children;
    let same = now.length === trs.length + 2;
    for (let i = 0; same && i < trs.length; i++) same = now[i + 1] === trs[i];
    if (!same) tbody.replaceChildren(topPad, ...trs, bottomPad);
  }
  scroller.addEventListener("scroll", () => schedule(), { passive: true });
  window.addEventListener("resize", () => schedule());

  // ---------------------------------------------------------------- side panes and journal
  function renderSides() {
    const il = $("interlocks");
    il.replaceChildren();
    for (const [, d] of [...board.interlocks].sort()) {
      const li = el("li", `${d.site} · ${d.area}: `);
      li.append(d.power_off ? el("span", "POWER OFF", "power-off") : el("span", "power on"));
      li.append(el("div", `feed ${d.feed ?? "unknown"} · since ${when(d.since)}` +
        (d.causes && d.causes.length ? ` · ${d.causes.join(", ")}` : ""), "small"));
      il.append(li);
    }
    if (!board.interlocks.size) il.append(el("li", "none reported", "small"));
    const rs = $("rescues");
    rs.replaceChildren();
    for (const [, d] of [...board.rescues].sort()) {
      const li = el("li", `${d.site} · ${d.device}`);
      const st = d.stages || {};
      const stages = ["raised", "acknowledged", "arrived", "released"]
        .filter((k) => st[k]).map((k) => `${k} ${when(st[k])}`).join(" · ");
      const who = [d.registration_code && `reg. ${d.registration_code}`, d.maintenance_unit, stages];
      li.append(el("div", who.filter(Boolean).join(" · "), "small"));
      if (Array.isArray(d.overdue) && d.overdue.length) {
        li.append(el("div", `overdue: ${d.overdue.join(", ")}`, "power-off"));
      }
      rs.append(li);
    }
    if (!board.rescues.size) rs.append(el("li", "no open rescue", "small"));
    const dv = $("devices");
    dv.replaceChildren();
    for (const [, d] of [...board.devices].sort()) {
      const state = d.maintenance ? "maintenance" : d.online ? "online" : "offline";
      const li = el("li");
      li.dataset.device = `${d.site}/${d.device}`;
      li.append(el("span", `${d.site} · ${d.device}`), el("span", state, `st-${state}`));
      const m = d.maintenance;
      if (m && typeof m === "object") li.title = `${m.user || ""}: ${m.reason || ""} until ${when(m.until)}`;
      else if (!d.online && d.error) li.title = String(d.error);
      dv.append(li);
    }
    const sites = new Set(), areas = new Set();
    for (const a of board.alarms.values()) { sites.add(a.site); if (a.area) areas.add(a.area); }
    for (const d of board.devices.values()) sites.add(d.site);
    for (const d of board.interlocks.values()) areas.add(d.area);
    fillOptions(fSite, sites);
    fillOptions(fArea, areas);
  }
  function journalLine(e) {
    const who = e.user ? ` ${e.user}` : "";
    let text;
    if (e.source === "console") {
      text = `${when(e.ts)}${who} ${e.action}${e.id ? " " + e.site + "/" + e.id : ""}` +
        `${e.minutes ? " " + e.minutes + " min" : ""}${e.reason ? " — " + e.reason : ""}: ${e.result}` +
        `${e.error ? " (" + e.error + ")" : ""}`;
    } else if (e.from && e.to && e.type !== "flood" && e.type !== "unexpected_power_loss") {
      text = `${when(e.ts)} ${e.site}/${e.id} ${e.from} → ${e.to}${e.level ? " " + e.level : ""}${who ? " by" + who : ""}`;
    } else {
      text = `${when(e.ts)} ${e.site} ${e.type}: ${e.message || e.id}`;
    }
    const alert = e.result === "refused" || e.type === "unexpected_power_loss";
    const li = el("li", text, alert ? "refused" : "");
    return li;
  }
  const JOURNAL_SHOWN = 200;
  function renderJournal(entries, replace) {
    const ol = $("journal");
    if (replace) ol.replaceChildren();
    for (const e of entries.slice(-JOURNAL_SHOWN)) ol.prepend(journalLine(e));
    while (ol.childElementCount > JOURNAL_SHOWN) ol.lastElementChild.remove();
  }
  function renderLink() {
    const l = board.link, span = $("link");
    if (l.connected && !l.stale) { span.textContent = "live"; span.className = "link live"; }
    else if (l.connected) { span.textContent = "rebuilding from the broker…"; span.className = "link stale"; }
    else {
      span.textContent = `BROKER UNREACHABLE — last known state, stale since ${when(l.since)}`;
      span.className = "link down";
    }
    document.body.classList.toggle("stale-board", !!l.stale);
  }

  // ---------------------------------------------------------------- applying changes
  function schedule() { if (!frame) frame = requestAnimationFrame(render); }
  function render() {
    frame = 0;
    let refill = dirty;
    if (everything) {
      resort(); rows.clear(); refill = new Set(); sidesDirty = true; everything = false;
    } else {
      for (const k of dirty) reorder(k);
    }
    renderWindow(refill);
    dirty = new Set();
    if (sidesDirty) { renderSides(); sidesDirty = false; }
    if (journalDirty === null) { renderJournal(board.journal, true); journalDirty = []; }
    else if (journalDirty.length) { renderJournal(journalDirty, false); journalDirty = []; }
    if (linkDirty) { renderLink(); linkDirty = false; }
    $("count").textContent = shown.length === board.alarms.size
      ? String(board.alarms.size) : `${shown.length} of ${board.alarms.size}`;
  }
  const TABLES = { alarm: "alarms", device: "devices", interlock: "interlocks", rescue: "rescues" };
  function apply(delta) {
    const { kind, key, doc } = delta;
    if (kind === "snapshot") {
      let loud = false;
      const fresh = new Map(Object.entries(doc.alarms));
      if (loaded) for (const [k, a] of fresh) if (loudNew(board.alarms.get(k), a)) loud = true;
      board.alarms = fresh;
      board.devices = new Map(Object.entries(doc.devices));
      board.interlocks = new Map(Object.entries(doc.interlocks));
      board.rescues = new Map(Object.entries(doc.rescues));
      board.journal = doc.journal;
      board.link = doc.link;
      everything = true; journalDirty = null; linkDirty = true; loaded = true;
      if (loud) tone();
      return;
    }
    if (kind === "link") { board.link = doc; linkDirty = true; return; }
    if (kind === "journal") {
      board.journal.push(doc);
      if (board.journal.length > 500) board.journal.shift();
      if (journalDirty !== null) journalDirty.push(doc);
      return;
    }
    const table = board[TABLES[kind]];
    if (!table) return;
    if (kind === "alarm" && loaded && loudNew(table.get(key), doc)) tone();
    if (doc === null) table.delete(key); else table.set(key, doc);
    if (kind === "alarm") dirty.add(key);
    else {
      sidesDirty = true;
      if (kind === "interlock") for (const [k, a] of board.alarms) if (a.site === doc?.site || !doc) dirty.add(k);
    }
  }
  function connect() {
    const source = new EventSource("/events");
    source.onmessage = (msg) => {
      for (const delta of JSON.parse(msg.data)) apply(delta);
      schedule();
    };
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
      board.link = { ...board.link, connected: false, stale: true, since: board.link.since || Date.now() };
      const span = $("link");
      span.textContent = "CONSOLE SERVER UNREACHABLE — last known state, stale";
      span.className = "link down";
      document.body.classList.add("stale-board");
    };
  }

  // ---------------------------------------------------------------- actions
  const toast = $("toast");
  let toastTimer = 0;
  function say(text, bad) {
    toast.textContent = text;
    toast.className = bad ? "show bad" : "show";
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { toast.className = ""; }, 4000);
  }
  async function send(verb, alarm, extra) {
    let reply;
    try {
      const r = await fetch(`/api/alarm/${verb}`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ site: alarm.site, id: alarm.id, ...extra }),
        credentials: "same-origin",
      });
      reply = await r.json();
    } catch (e) {
      reply = { ok: false, error: "the console server did not answer" };
    }
    say(reply.ok ? `${verb.replace(/_/g, " ")}: done` : `${verb.replace(/_/g, " ")} refused: ${reply.error}`, !reply.ok);
  }
  const ask = $("ask");
  let asking = null;
  const TITLES = { shelve: "Shelve alarm", unshelve: "Unshelve alarm", out_of_service: "Take out of service",
                   return_to_service: "Return to service" };
  tbody.addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-act]");
    if (!b) return;
    const alarm = board.alarms.get(b.closest("tr").dataset.key);
    if (!alarm) return;
    const verb = b.dataset.act;
    if (verb === "ack") { send("ack", alarm, {}); return; }
    asking = { verb, alarm };
    $("ask-title").textContent = TITLES[verb];
    $("ask-alarm").textContent = `${alarm.site} · ${alarm.title} · ${alarm.id}`;
    $("ask-minutes-row").hidden = verb !== "shelve";
    $("ask-minutes").required = verb === "shelve";
    $("ask-reason").value = "";
    $("ask-reason").required = verb !== "unshelve";
    ask.showModal();
  });
  $("ask-cancel").addEventListener("click", () => { asking = null; ask.close(); });
  $("ask-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (!asking) return;
    const extra = { reason: $("ask-reason").value };
    if (asking.verb === "shelve") {
      const m = Number($("ask-minutes").value);
      if (!(m > 0 && m <= maxShelve)) { say(`minutes must be in (0, ${maxShelve}]`, true); return; }
      extra.minutes = m;
    }
    send(asking.verb, asking.alarm, extra);
    asking = null;
    ask.close();
  });

  connect();
})();
