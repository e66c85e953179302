// livecount browser client: a drop-in gatsby-browser.js module (ES module,
// no dependencies, no build step). It also works on plain sites: import it
// with <script type="module"> and call onRouteUpdate() on every navigation.
//
// Everything lives in createLivecount(); the exported Gatsby API is a thin,
// exception-proof wrapper around one lazily created instance, so tests can
// build their own instance with a fake WebSocket, DOM, timers and random.
// Only Gatsby's own API names are exported (Gatsby flags any other export of
// gatsby-browser.js); the factory rides on onRouteUpdate as a property.
// gatsby-plugin-livecount ships an identical copy of this file (livecount.js):
// a published package cannot reach outside itself; tests/js keeps the two equal.

const ATTR_TOTAL = "data-livecount";
const ATTR_UNIQUE = "data-livecount-unique";
const ATTR_NOW = "data-livecount-now";
const ATTR_COUNTED = "data-livecount-counted";
const ATTR_ARTICLE_ID = "data-article-id";
const ATTR_ARTICLE_TITLE = "data-article-title";
const COUNTER_SELECTOR = "[" + ATTR_TOTAL + "],[" + ATTR_UNIQUE + "],[" + ATTR_NOW + "]";
// Which snapshot field each counter attribute shows.
const COUNTER_FIELDS = [
  [ATTR_TOTAL, "totalViews"],
  [ATTR_UNIQUE, "uniqueViews"],
  [ATTR_NOW, "readingNow"],
];

// Server limits (server/core/sizes.py). Anything longer is rejected, and a frame
// over MAX_FRAME_BYTES closes the connection, so the client fits every message
// to them rather than lose a view.
const MAX_ID = 256; // ids and titles, in characters
const MAX_PATH = 2048; // paths and referrers, in characters
const MAX_FRAME_BYTES = 4096; // one JSON text frame, UTF-8
const MAX_IDS_PER_MESSAGE = 100;
const VISIBILITY_SETTLE = 250; // ms a tab's visibility rests before the server is told
const RESUBSCRIBE_AFTER = 2000; // ms after a `rate_limited` refusal before asking again

const STATUS_EVENT = "livecount:status";
const SEEN_KEY = "livecount:seen"; // sessionStorage, uniqueness "tab" only
const SEEN_LIMIT = 200; // targets one tab remembers, the oldest forgotten first

const UNIQUENESS = ["seed", "tab"];
const TITLES = ["head", "document", "none"];
/** What a watcher sees before the server has said anything about an id. */
const EMPTY = Object.freeze({ totalViews: null, uniqueViews: null, readingNow: null, counted: null });

function noop() {}

/** A mistake in the site's configuration: reported once, never swallowed silently. */
function configError(message) {
  const e = new TypeError("livecount: " + message);
  e.livecountConfig = true;
  return e;
}

// Truncate to `max` UTF-16 units (never more code points than the server
// allows) without leaving half a surrogate pair at the end.
function clip(value, max) {
  let s = typeof value === "string" ? value : value == null ? "" : String(value);
  if (s.length <= max) return s;
  s = s.slice(0, max);
  const last = s.charCodeAt(s.length - 1);
  if (last >= 0xd800 && last <= 0xdbff) s = s.slice(0, -1);
  return s;
}

// Also drop what the server refuses in every string field, or the whole message
// would be refused: control characters (C0, DEL, C1: a data-article-title attribute
// may well hold a newline), U+2028/U+2029, and lone surrogates (a title cut in the
// middle of an emoji by the page itself).
function clean(value, max) {
  const s = typeof value === "string" ? value : value == null ? "" : String(value);
  return clip(wellFormed(s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, " ")), max);
}

// Each lone surrogate replaced by U+FFFD (String.prototype.toWellFormed, by hand:
// not every browser has it).
function wellFormed(s) {
  if (!/[\ud800-\udfff]/.test(s)) return s;
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        out += s[i] + s[i + 1];
        i++;
        continue;
      }
    }
    out += c >= 0xd800 && c <= 0xdfff ? "\ufffd" : s[i];
  }
  return out;
}

// UTF-8 size of a string, as the server counts a frame.
function utf8Length(s) {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      n += 4; // a surrogate pair is one 4-byte character
      i++;
    } else n += 3;
  }
  return n;
}

// Each field may be at its own limit, yet together too big for one frame:
// shorten the least useful fields first until the JSON fits.
function fitViews(msg) {
  const fields = ["referrer", "previousPage", "articleTitle", "currentPage"];
  for (let f = 0; f < fields.length; f++) {
    const field = fields[f];
    let excess = utf8Length(JSON.stringify(msg)) - MAX_FRAME_BYTES;
    while (excess > 0 && msg[field]) {
      // a character is at most 4 bytes, so this never cuts more than needed
      msg[field] = clip(msg[field], Math.max(0, msg[field].length - Math.ceil(excess / 4)));
      excess = utf8Length(JSON.stringify(msg)) - MAX_FRAME_BYTES;
    }
    if (excess <= 0) break;
  }
  return msg;
}

function safeDecode(s) {
  try {
    return decodeURIComponent(s);
  } catch (e) {
    return s;
  }
}

// Gatsby's webpack replaces the exact expression process.env.GATSBY_LIVECOUNT_URL
// with a string literal, but does not define `process` itself, so a
// `typeof process` guard would skip the inlined value. A try/catch keeps the
// expression intact for Gatsby and swallows the ReferenceError in a plain browser.
function readEnvUrl() {
  try {
    return process.env.GATSBY_LIVECOUNT_URL;
  } catch (e) {
    return undefined;
  }
}

/**
 * Create an independent livecount client.
 *
 * Every option is optional; defaults come from `window`.
 * @param {object} [options]
 * @param {object} [options.window]     global object (location, LIVECOUNT_URL, events, timers)
 * @param {object} [options.document]   defaults to window.document
 * @param {object} [options.navigator]  defaults to window.navigator
 * @param {object} [options.performance] defaults to window.performance
 * @param {object} [options.sessionStorage] defaults to window.sessionStorage (uniqueness "tab")
 * @param {Function} [options.WebSocket] defaults to window.WebSocket
 * @param {Function} [options.MutationObserver] defaults to window.MutationObserver
 * @param {Function} [options.setTimeout] / [options.clearTimeout] / [options.requestAnimationFrame]
 * @param {Function} [options.random]   returns [0, 1), used for backoff jitter
 * @param {string} [options.url]        server URL, overrides everything else
 * @param {string} [options.envUrl]     stands in for process.env.GATSBY_LIVECOUNT_URL
 * @param {boolean} [options.respectDnt] else window.LIVECOUNT_RESPECT_DNT
 * @param {string} [options.uniqueness] "seed" (default) or "tab"; else window.LIVECOUNT_UNIQUENESS
 * @param {string} [options.titles]     "head" (default), "document" or "none"; else window.LIVECOUNT_TITLES
 * @param {number} [options.titleTimeout=1000] longest wait for a new route's <title>, ms
 * @param {boolean} [options.dom=true]  find and fill counter elements; false: watchers only
 * @param {number} [options.queueLimit=20]       views kept while disconnected
 * @param {number} [options.backoffBase=1000]    first reconnect delay ceiling, ms
 * @param {number} [options.backoffMax=30000]    cap on any reconnect delay, ms
 * @param {number} [options.connectTimeout=10000] give up on a socket stuck connecting, ms
 * @param {Function} [options.onError]  receives errors that were swallowed
 */
function createLivecount(options) {
  const opts = options || {};
  const win = "window" in opts ? opts.window : typeof window !== "undefined" ? window : undefined;
  const doc = opts.document || (win && win.document);
  const nav = opts.navigator || (win && win.navigator);
  const perf = opts.performance || (win && win.performance);
  const WS = opts.WebSocket || (win && win.WebSocket);
  const MO = opts.MutationObserver || (win && win.MutationObserver);
  const timerHost = win && typeof win.setTimeout === "function" ? win : globalThis;
  const setT = opts.setTimeout || ((fn, ms) => timerHost.setTimeout(fn, ms));
  const clearT = opts.clearTimeout || ((id) => timerHost.clearTimeout(id));
  const raf =
    opts.requestAnimationFrame ||
    (win && typeof win.requestAnimationFrame === "function"
      ? (fn) => win.requestAnimationFrame(fn)
      : null);
  const random = opts.random || Math.random;
  const envUrl = "envUrl" in opts ? opts.envUrl : readEnvUrl();
  const queueLimit = opts.queueLimit > 0 ? opts.queueLimit : 20;
  const backoffBase = opts.backoffBase > 0 ? opts.backoffBase : 1000;
  const backoffMax = opts.backoffMax > 0 ? opts.backoffMax : 30000;
  const connectTimeout = opts.connectTimeout > 0 ? opts.connectTimeout : 10000;
  const onError = opts.onError || noop;
  const dom = opts.dom !== false;
  const uniqueness = choice("uniqueness", "LIVECOUNT_UNIQUENESS", UNIQUENESS);
  const titles = choice("titles", "LIVECOUNT_TITLES", TITLES);
  const titleTimeout = opts.titleTimeout == null ? 1000 : opts.titleTimeout;
  if (typeof titleTimeout !== "number" || !(titleTimeout >= 0) || titleTimeout === Infinity) {
    throw configError("titleTimeout must be a number of milliseconds, not " + String(opts.titleTimeout));
  }

  let ws = null; // current socket (connecting or open)
  let isOpen = false;
  let openTimer = null;
  let reconnectTimer = null;
  let attempt = 0; // failed connects since the last successful open
  let stopped = false;
  let status = null;
  let sentVisible = true; // what the server believes; every new socket starts visible
  const queue = []; // views messages waiting for a connection
  let lastView = null; // the page's last view, resumed (not counted again) on a new socket
  let domIds = new Set(); // article ids shown by counter elements
  const watchers = new Map(); // article id -> Set of listeners (the React hook)
  const statusListeners = new Set();
  let syncTimer = null;
  let resubscribeTimer = null;
  let wanted = new Set(); // article ids to follow: domIds and watched ids
  let subscribed = new Set(); // article ids the server knows we follow
  const counts = new Map(); // id -> frozen snapshot, like EMPTY
  let landed = false;
  let routeSeq = 0;
  let lastPath = "";
  let endTitleWait = null; // finishes the view waiting for its <title>, if any
  let leavingTitle = null; // the title when the route change began (onPreRouteUpdate)

  // An explicit option wins, then the window global, then the first allowed value.
  function choice(name, global, allowed) {
    let value = opts[name];
    if (value == null) {
      try {
        value = win ? win[global] : undefined;
      } catch (e) {
        value = undefined;
      }
    }
    if (value == null) return allowed[0];
    if (allowed.indexOf(value) === -1) {
      throw configError(
        name + " must be " + allowed.map((a) => JSON.stringify(a)).join(" or ") + ", not " + JSON.stringify(value),
      );
    }
    return value;
  }

  // Run fn without ever letting an exception reach the page.
  function guard(fn) {
    try {
      fn();
    } catch (e) {
      try {
        onError(e);
      } catch (ignored) {
        /* nothing left to do */
      }
    }
  }

  function setStatus(next) {
    if (next === status) return;
    status = next;
    statusListeners.forEach((listener) => guard(() => listener(next)));
    if (!win || typeof win.dispatchEvent !== "function" || typeof win.CustomEvent !== "function") return;
    guard(() => win.dispatchEvent(new win.CustomEvent(STATUS_EVENT, { detail: next })));
  }

  // ---- connection -------------------------------------------------------

  function resolveUrl() {
    let url = opts.url || (win && win.LIVECOUNT_URL) || envUrl;
    if (!url) {
      const loc = win && win.location;
      if (!loc || !loc.host) return "";
      url = (loc.protocol === "https:" ? "wss://" : "ws://") + loc.host + "/ws";
    }
    // Accept http(s):// too: it is an easy mistake in an env variable.
    return String(url).replace(/^http(s?):/i, "ws$1:");
  }

  // "Equal jitter": the delay ceiling doubles per failure up to the cap and
  // the delay is drawn from its upper half, so reconnects spread out but still
  // grow.
  function nextDelay() {
    const ceiling = Math.min(backoffMax, backoffBase * Math.pow(2, attempt));
    attempt += 1;
    return Math.round(ceiling / 2 + (random() * ceiling) / 2);
  }

  // A visible page that sent a view is a reader: after a server restart it reconnects
  // to be counted as reading again, even with no counters to follow. A hidden one
  // waits until it is shown.
  function hasWork() {
    return queue.length > 0 || wanted.size > 0 || (lastView !== null && isVisible());
  }

  function scheduleReconnect() {
    if (stopped || reconnectTimer !== null) return;
    reconnectTimer = setT(() => {
      reconnectTimer = null;
      guard(connect);
    }, nextDelay());
  }

  // Opened lazily: only when there is a view to send or a counter to follow.
  function connect() {
    if (stopped || ws || reconnectTimer !== null || !WS) return;
    const url = resolveUrl();
    if (!url) return;
    let sock;
    try {
      sock = new WS(url);
    } catch (e) {
      // e.g. blocked by CSP or a malformed URL: retry like any failed connect
      setStatus("closed");
      scheduleReconnect();
      return;
    }
    ws = sock;
    openTimer = setT(() => {
      openTimer = null;
      if (ws === sock && !isOpen) {
        drop(sock);
        guard(() => sock.close());
      }
    }, connectTimeout);
    sock.onopen = () =>
      guard(() => {
        if (ws !== sock) return;
        clearOpenTimer();
        isOpen = true;
        attempt = 0;
        sentVisible = true;
        setStatus("open");
        // A hidden tab says so before its views, so it never counts as reading.
        syncVisibility();
        // A socket that reopened (a server restart, a lost network) with no view
        // waiting: the page's last view was counted already; it only reads again.
        if (queue.length === 0 && lastView) rawSend(Object.assign({}, lastView, { resumed: true }));
        flushQueue();
        // `subscribed` is empty on a fresh connection, so this sends the full set.
        syncSubscriptions();
      });
    sock.onmessage = (event) =>
      guard(() => {
        if (ws === sock) handleMessage(event && event.data);
      });
    sock.onclose = () => guard(() => drop(sock));
    sock.onerror = noop; // a close event always follows
  }

  function clearOpenTimer() {
    if (openTimer !== null) clearT(openTimer);
    openTimer = null;
  }

  function drop(sock) {
    if (ws !== sock) return;
    ws = null;
    isOpen = false;
    subscribed = new Set(); // the server forgets us with the connection
    clearOpenTimer();
    setStatus("closed");
    // Tabs with nothing to do (no view sent, nothing queued, no counters) reconnect lazily.
    if (hasWork()) scheduleReconnect();
  }

  function rawSend(msg) {
    if (!ws || !isOpen) return false;
    try {
      ws.send(JSON.stringify(msg));
      return true;
    } catch (e) {
      return false;
    }
  }

  function enqueue(msg) {
    queue.push(msg);
    while (queue.length > queueLimit) queue.shift(); // drop the oldest
  }

  function flushQueue() {
    while (queue.length > 0) {
      if (!rawSend(queue[0])) return;
      queue.shift();
    }
  }

  function sendView(msg) {
    lastView = msg;
    if (queue.length === 0 && rawSend(msg)) return;
    enqueue(msg);
    flushQueue();
    connect();
  }

  // ---- reading now: hidden tabs are not reading --------------------------

  function isVisible() {
    try {
      const state = doc && doc.visibilityState;
      return state == null || state === "visible";
    } catch (e) {
      return true;
    }
  }

  // Never opens a socket: a closed one is told on open.
  function syncVisibility() {
    const visible = isVisible();
    if (visible === sentVisible) return;
    if (rawSend({ message: "visibility", visible })) sentVisible = visible;
  }

  // A tab flipped quickly (alt-tab, a swipe) says only where it ended, once it rests:
  // a message per flip would only spend the socket's rate limit.
  let visibilityTimer = null;
  const onVisibilityChange = () =>
    guard(() => {
      if (visibilityTimer !== null) clearT(visibilityTimer);
      visibilityTimer = setT(() => {
        visibilityTimer = null;
        guard(() => {
          syncVisibility();
          if (!ws && hasWork()) connect(); // shown again after a lost socket: read again
        });
      }, VISIBILITY_SETTLE);
    });
  if (doc && typeof doc.addEventListener === "function") {
    guard(() => doc.addEventListener("visibilitychange", onVisibilityChange));
  }

  // ---- live counters ----------------------------------------------------

  function counterElements() {
    if (!dom) return [];
    return doc && typeof doc.querySelectorAll === "function" ? doc.querySelectorAll(COUNTER_SELECTOR) : [];
  }

  function paintElement(el, id) {
    const known = counts.get(id);
    if (!known) return;
    let shows = false;
    for (let i = 0; i < COUNTER_FIELDS.length; i++) {
      const [attr, field] = COUNTER_FIELDS[i];
      if (clean(el.getAttribute(attr), MAX_ID) !== id) continue;
      shows = true;
      if (known[field] != null) setText(el, known[field]);
    }
    if (shows) markCounted(el, known.counted);
  }

  function setText(el, n) {
    const text = String(n);
    if (el.textContent !== text) el.textContent = text; // avoid needless DOM writes
  }

  // data-livecount-counted="false" while this tab's last view was not counted.
  function markCounted(el, counted) {
    if (!el || counted === null || counted === undefined) return;
    if (counted === false) {
      if (typeof el.setAttribute === "function" && el.getAttribute(ATTR_COUNTED) !== "false") {
        el.setAttribute(ATTR_COUNTED, "false");
      }
    } else if (typeof el.removeAttribute === "function" && el.getAttribute(ATTR_COUNTED) !== null) {
      el.removeAttribute(ATTR_COUNTED);
    }
  }

  // Find the ids shown on the page, paint last known values, and follow them.
  function scan() {
    const ids = new Set();
    const els = counterElements();
    for (let i = 0; i < els.length; i++) {
      const el = els[i];
      const seen = new Set();
      for (let f = 0; f < COUNTER_FIELDS.length; f++) {
        const raw = el.getAttribute(COUNTER_FIELDS[f][0]);
        if (!raw) continue;
        const id = clean(raw, MAX_ID);
        ids.add(id);
        if (!seen.has(id)) paintElement(el, id);
        seen.add(id);
      }
    }
    domIds = ids;
    updateWanted();
  }

  function updateWanted() {
    const ids = new Set(domIds);
    watchers.forEach((_, id) => ids.add(id));
    wanted = ids;
    syncSubscriptions();
  }

  function syncSubscriptions() {
    if (!isOpen) {
      if (wanted.size > 0) connect();
      return; // the full set is sent on open
    }
    const add = [];
    const remove = [];
    wanted.forEach((id) => {
      if (!subscribed.has(id)) add.push(id);
    });
    subscribed.forEach((id) => {
      if (!wanted.has(id)) remove.push(id);
    });
    if (!sendIds("unsubscribe", remove) || !sendIds("subscribe", add)) return;
    subscribed = new Set(wanted);
  }

  // After a refusal for rate, ask again for every counter the page shows, once the
  // limit has had time to refill (a subscribe answers with the counts: asking twice
  // costs nothing else).
  function resubscribeSoon() {
    if (resubscribeTimer !== null) return;
    resubscribeTimer = setT(() => {
      resubscribeTimer = null;
      guard(() => {
        subscribed = new Set();
        syncSubscriptions();
      });
    }, RESUBSCRIBE_AFTER);
  }

  // Split an id list into messages within the server's count and frame limits.
  function sendIds(type, ids) {
    const overhead = utf8Length(JSON.stringify({ message: type, articleIds: [], pageNames: [] }));
    let batch = [];
    let size = overhead;
    for (let i = 0; i <= ids.length; i++) {
      const cost = i < ids.length ? utf8Length(JSON.stringify(ids[i])) + 1 : 0; // +1 for the comma
      const full = i === ids.length || batch.length === MAX_IDS_PER_MESSAGE || size + cost > MAX_FRAME_BYTES;
      if (full && batch.length > 0) {
        if (!rawSend({ message: type, articleIds: batch, pageNames: [] })) return false;
        batch = [];
        size = overhead;
      }
      if (i < ids.length) {
        batch.push(ids[i]);
        size += cost;
      }
    }
    return true;
  }

  function number(value, fallback) {
    return typeof value === "number" && isFinite(value) ? value : fallback;
  }

  function handleMessage(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch (e) {
      return;
    }
    if (msg && msg.message === "error" && msg.error === "rate_limited") {
      resubscribeSoon(); // it may have been a subscribe: the counters would wait for ever
      return;
    }
    if (!msg || (msg.message !== "count" && msg.message !== "views")) return;
    // A views reply answers this tab's own view; `counted` absent means counted.
    const counted = msg.message === "views" ? msg.counted !== false : undefined;
    if (counted !== undefined && dom && doc && doc.documentElement) {
      guard(() => markCounted(doc.documentElement, counted));
    }
    if (typeof msg.articleId !== "string") return; // page counts have no counters
    const id = msg.articleId;
    const known = counts.get(id) || EMPTY;
    const next = {
      totalViews: number(msg.totalViews, known.totalViews),
      uniqueViews: number(msg.uniqueViews, known.uniqueViews),
      // absent until the server knows readers: the counter keeps its placeholder
      readingNow: number(msg.readingNow, known.readingNow),
      counted: counted === undefined ? known.counted : counted,
    };
    if (
      next.totalViews === known.totalViews &&
      next.uniqueViews === known.uniqueViews &&
      next.readingNow === known.readingNow &&
      next.counted === known.counted &&
      counts.has(id)
    ) {
      return;
    }
    const snap = Object.freeze(next);
    counts.set(id, snap);
    const els = counterElements();
    for (let i = 0; i < els.length; i++) paintElement(els[i], id);
    const listeners = watchers.get(id);
    if (listeners) listeners.forEach((listener) => guard(() => listener(snap)));
  }

  // Follow an id without any DOM: for React, which renders the numbers itself.
  // Subscriptions change on the next tick, so an unmount and a mount of the
  // same id in one render cost no unsubscribe and subscribe.
  function watch(id, listener) {
    const key = clean(id, MAX_ID);
    if (!key || typeof listener !== "function") return noop;
    let set = watchers.get(key);
    if (!set) watchers.set(key, (set = new Set()));
    set.add(listener);
    scheduleSync();
    return () =>
      guard(() => {
        const current = watchers.get(key);
        if (!current || !current.delete(listener)) return;
        if (current.size === 0) watchers.delete(key);
        scheduleSync();
      });
  }

  function scheduleSync() {
    if (syncTimer !== null || stopped) return;
    syncTimer = setT(() => {
      syncTimer = null;
      guard(updateWanted);
    }, 0);
  }

  // ---- page views -------------------------------------------------------

  function dntActive() {
    const respect = opts.respectDnt != null ? opts.respectDnt : win && win.LIVECOUNT_RESPECT_DNT;
    return Boolean(respect) && Boolean(nav) && nav.doNotTrack === "1";
  }

  function wasReload() {
    try {
      const entries =
        perf && typeof perf.getEntriesByType === "function" ? perf.getEntriesByType("navigation") : null;
      if (entries && entries.length > 0) return entries[0].type === "reload";
      return Boolean(perf && perf.navigation && perf.navigation.type === 1);
    } catch (e) {
      return false;
    }
  }

  function readTitle() {
    try {
      return doc ? clean(doc.title, MAX_ID) : "";
    } catch (e) {
      return "";
    }
  }

  // data-article-id on the page wins; else the slug after "/posts/" anywhere
  // in the path. `fresh` is false when another route update has happened
  // since, so the DOM belongs to a different page.
  function findArticle(pathname, fresh) {
    if (fresh && doc && typeof doc.querySelector === "function") {
      try {
        const el = doc.querySelector("[" + ATTR_ARTICLE_ID + "]");
        const id = el && el.getAttribute(ATTR_ARTICLE_ID);
        if (id) return { id: clean(id, MAX_ID), title: clean(el.getAttribute(ATTR_ARTICLE_TITLE), MAX_ID) };
      } catch (e) {
        onError(e); // a DOM problem must not cost the view: fall back to the path
      }
    }
    const m = /\/posts\/([^/?#]+)/.exec(pathname);
    if (!m) return null;
    return { id: clean(safeDecode(m[1]), MAX_ID), title: "" };
  }

  // Uniqueness "tab": a tab that comes back to a target it has viewed sends
  // refreshed. Remembers the last SEEN_LIMIT targets in sessionStorage (this
  // tab only, gone when it closes); no cookie and no identifier.
  function seenInThisTab(key) {
    let store;
    try {
      store = opts.sessionStorage || (win && win.sessionStorage);
    } catch (e) {
      store = null; // storage disabled: the seed rule applies
    }
    if (!store) return false;
    try {
      let list = JSON.parse(store.getItem(SEEN_KEY) || "[]");
      if (!Array.isArray(list)) list = [];
      const at = list.indexOf(key);
      if (at !== -1) list.splice(at, 1);
      list.push(key);
      while (list.length > SEEN_LIMIT) list.shift();
      store.setItem(SEEN_KEY, JSON.stringify(list));
      return at !== -1;
    } catch (e) {
      onError(e);
      return false;
    }
  }

  function buildView(route, article, title) {
    const msg = {
      message: "views",
      currentPage: clean(route.pathname, MAX_PATH),
      previousPage: clean(route.previousPage, MAX_PATH),
      referrer: route.landing && doc ? clean(doc.referrer, MAX_PATH) : "",
      refreshed: route.landing ? wasReload() : false,
    };
    if (article && article.id) {
      msg.articleId = article.id;
      const t = titles === "none" ? "" : title.trim();
      if (t) msg.articleTitle = t;
    }
    if (uniqueness === "tab") {
      const key = msg.articleId ? "post:" + msg.articleId : "page:" + (msg.currentPage.replace(/\/+$/, "") || "/");
      if (seenInThisTab(key)) msg.refreshed = true;
    }
    return fitViews(msg);
  }

  // Gatsby's Head API and React Helmet set the new <title> after the route
  // update: wait for it to change (bounded), unless the article names its own
  // title. The landing page's title is already right, unless it has none yet.
  function viewWhenTitled(route) {
    const fresh = route.seq === routeSeq;
    const article = findArticle(route.pathname, fresh);
    const send = (title) => {
      if (!dntActive()) sendView(buildView(route, article, title));
    };
    if (!article || article.title || titles === "none") return send(article ? article.title : "");
    if (!fresh) return send("");
    if (titles === "document" || isNewTitle(route, readTitle())) return send(readTitle());
    waitForTitle(route, send);
  }

  // Gatsby removes the old <title> before it adds the new one: an empty title
  // is a moment between the two, not the new route's.
  function isNewTitle(route, title) {
    return title !== route.staleTitle && title.trim() !== "";
  }

  function waitForTitle(route, send) {
    let finished = false;
    let observer = null;
    let poll = null;
    let timer = null;
    // A later route update ends the wait: the page is no longer this route's,
    // so no title is better than a wrong one.
    const finish = (superseded) => {
      if (finished) return;
      finished = true;
      endTitleWait = null;
      if (observer) guard(() => observer.disconnect());
      if (poll !== null) clearT(poll);
      if (timer !== null) clearT(timer);
      guard(() => send(superseded === true ? "" : readTitle()));
    };
    const check = () => {
      if (isNewTitle(route, readTitle())) finish(false);
    };
    endTitleWait = finish;
    if (typeof MO === "function" && doc) {
      try {
        observer = new MO(() => guard(check));
        observer.observe(doc.head || doc.documentElement || doc, {
          childList: true,
          subtree: true,
          characterData: true,
        });
      } catch (e) {
        observer = null;
        onError(e);
      }
    }
    if (!observer) {
      const tick = () => {
        poll = null;
        check();
        if (!finished) poll = setT(tick, 25);
      };
      poll = setT(tick, 25);
    }
    timer = setT(() => finish(false), titleTimeout);
  }

  // Run fn after the next frame (the page has rendered by then); the timeout
  // covers background tabs, where frames never come.
  function afterFrame(fn) {
    let done = false;
    const once = () => {
      if (done) return;
      done = true;
      guard(fn);
    };
    if (raf) raf(once);
    setT(once, 100);
  }

  // Only cheap bookkeeping happens synchronously; DOM reads and sending are
  // deferred so the route change is never slowed down.
  function onRouteUpdate(args) {
    if (stopped) return;
    const location = args && args.location;
    const prevLocation = args && args.prevLocation;
    const loc = win && win.location;
    const pathname = String((location && location.pathname) || (loc && loc.pathname) || "/");
    const landing = !landed;
    landed = true;
    const route = {
      seq: ++routeSeq,
      landing,
      pathname,
      previousPage: landing ? "" : String((prevLocation && prevLocation.pathname) || lastPath),
      // the title the new route's replaces: the one shown when the change began,
      // if Gatsby said so (a head manager may beat onRouteUpdate); none on landing
      staleTitle: landing ? null : leavingTitle !== null ? leavingTitle : readTitle(),
    };
    leavingTitle = null;
    lastPath = pathname;
    if (endTitleWait) endTitleWait(true);
    // First pass: counters may already be on the page.
    setT(() => guard(scan), 0);
    // Second pass: send the view, and re-scan for counters rendered late.
    afterFrame(() => {
      viewWhenTitled(route);
      scan();
    });
  }

  // Gatsby calls onPreRouteUpdate while it renders the new route, before any of
  // its head changes: the title then is surely the page being left's.
  function onPreRouteUpdate() {
    if (stopped || !landed) return;
    leavingTitle = readTitle();
  }

  function close() {
    stopped = true;
    if (reconnectTimer !== null) clearT(reconnectTimer);
    reconnectTimer = null;
    if (syncTimer !== null) clearT(syncTimer);
    syncTimer = null;
    if (visibilityTimer !== null) clearT(visibilityTimer);
    visibilityTimer = null;
    if (resubscribeTimer !== null) clearT(resubscribeTimer);
    resubscribeTimer = null;
    if (doc && typeof doc.removeEventListener === "function") {
      guard(() => doc.removeEventListener("visibilitychange", onVisibilityChange));
    }
    const sock = ws;
    if (sock) {
      drop(sock);
      guard(() => sock.close());
    }
  }

  return {
    onPreRouteUpdate: (args) => guard(() => onPreRouteUpdate(args)),
    onRouteUpdate: (args) => guard(() => onRouteUpdate(args)),
    /** Re-scan the page for counters, e.g. after rendering some late. */
    scan: () => guard(scan),
    /** Follow an article's counts without DOM: listener(snapshot) on every change; returns unwatch. */
    watch: (id, listener) => {
      let off = noop;
      guard(() => (off = watch(id, listener)));
      return off;
    },
    /** The last known {totalViews, uniqueViews, readingNow, counted} of an article (null: unknown). */
    snapshot: (id) => counts.get(clean(id, MAX_ID)) || EMPTY,
    /** listener(status) on every change of status; returns a function that stops it. */
    onStatus: (listener) => {
      statusListeners.add(listener);
      return () => statusListeners.delete(listener);
    },
    /** Close the socket and stop for good (tests, hot reload). */
    close: () => guard(close),
    /** "open", "closed", or null before the first connection attempt. */
    get status() {
      return status;
    },
  };
}

// ---- Gatsby browser API -------------------------------------------------

let instance = null;
let reported = false;

function getInstance() {
  if (!instance) instance = createLivecount();
  return instance;
}

// A configuration mistake is said once on the console; nothing else reaches it.
function report(e) {
  if (reported || !e || !e.livecountConfig) return;
  reported = true;
  try {
    if (typeof console !== "undefined") console.error(e.message);
  } catch (ignored) {
    // no console either
  }
}

/** Gatsby calls this when a navigation begins, before the new page renders. */
export function onPreRouteUpdate(args) {
  try {
    getInstance().onPreRouteUpdate(args);
  } catch (e) {
    report(e); // never break the page
  }
}

/** Gatsby calls this on the landing page and on every in-app navigation. */
export function onRouteUpdate(args) {
  try {
    getInstance().onRouteUpdate(args);
  } catch (e) {
    report(e); // never break the page
  }
}

/** Testing hook: drop the module-level instance so the next call starts fresh. */
function reset() {
  try {
    if (instance) instance.close();
  } catch (e) {
    // ignore
  }
  instance = null;
  reported = false;
}

onRouteUpdate.createLivecount = createLivecount;
onRouteUpdate.reset = reset;
