// livecount browser client: a drop-in gatsby-browser.js module (ES module,
// no dependencies, no build step). It also works on plain sites: import it
// with <script type="module"> and call onRouteUpdate() on every navigation.
//
// Everything lives in createLivecount(); the exported Gatsby API is a thin,
// exception-proof wrapper around one lazily created instance, so tests can
// build their own instance with a fake WebSocket, DOM, timers and random.
// Only Gatsby's own API names are exported (Gatsby flags any other export of
// gatsby-browser.js); the factory rides on onRouteUpdate as a property.

const ATTR_TOTAL = "data-livecount";
const ATTR_UNIQUE = "data-livecount-unique";
const ATTR_ARTICLE_ID = "data-article-id";
const ATTR_ARTICLE_TITLE = "data-article-title";
const COUNTER_SELECTOR = "[" + ATTR_TOTAL + "],[" + ATTR_UNIQUE + "]";

// Server limits (server/protocol.py). Anything longer is rejected, and a frame
// over MAX_FRAME_BYTES closes the connection, so the client fits every message
// to them rather than lose a view.
const MAX_ID = 256; // ids and titles, in characters
const MAX_PATH = 2048; // paths and referrers, in characters
const MAX_FRAME_BYTES = 4096; // one JSON text frame, UTF-8
const MAX_IDS_PER_MESSAGE = 100;

const STATUS_EVENT = "livecount:status";

function noop() {}

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

// Also drop control characters: the server refuses them in every string field,
// and a data-article-title attribute may well contain a newline.
function clean(value, max) {
  const s = typeof value === "string" ? value : value == null ? "" : String(value);
  return clip(s.replace(/[\u0000-\u001f\u007f]+/g, " "), max);
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
 * @param {Function} [options.WebSocket] defaults to window.WebSocket
 * @param {Function} [options.setTimeout] / [options.clearTimeout] / [options.requestAnimationFrame]
 * @param {Function} [options.random]   returns [0, 1), used for backoff jitter
 * @param {string} [options.url]        server URL, overrides everything else
 * @param {string} [options.envUrl]     stands in for process.env.GATSBY_LIVECOUNT_URL
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

  let ws = null; // current socket (connecting or open)
  let isOpen = false;
  let openTimer = null;
  let reconnectTimer = null;
  let attempt = 0; // failed connects since the last successful open
  let stopped = false;
  let status = null;
  const queue = []; // views messages waiting for a connection
  let wanted = new Set(); // article ids shown on the page
  let subscribed = new Set(); // article ids the server knows we follow
  const counts = new Map(); // id -> { total, unique }, last known values
  let landed = false;
  let routeSeq = 0;
  let lastPath = "";

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

  function hasWork() {
    return queue.length > 0 || wanted.size > 0;
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
        setStatus("open");
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
    // Idle tabs (nothing queued, no counters) reconnect lazily on next use.
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
    if (queue.length === 0 && rawSend(msg)) return;
    enqueue(msg);
    flushQueue();
    connect();
  }

  // ---- live counters ----------------------------------------------------

  function counterElements() {
    return doc && typeof doc.querySelectorAll === "function" ? doc.querySelectorAll(COUNTER_SELECTOR) : [];
  }

  function paintElement(el, id) {
    const known = counts.get(id);
    if (!known) return;
    if (clean(el.getAttribute(ATTR_TOTAL), MAX_ID) === id && known.total !== undefined) {
      setText(el, known.total);
    }
    if (clean(el.getAttribute(ATTR_UNIQUE), MAX_ID) === id && known.unique !== undefined) {
      setText(el, known.unique);
    }
  }

  function setText(el, n) {
    const text = String(n);
    if (el.textContent !== text) el.textContent = text; // avoid needless DOM writes
  }

  // Find the ids shown on the page, paint last known values, and follow them.
  function scan() {
    const ids = new Set();
    const els = counterElements();
    for (let i = 0; i < els.length; i++) {
      const el = els[i];
      const total = el.getAttribute(ATTR_TOTAL);
      const unique = el.getAttribute(ATTR_UNIQUE);
      if (total) ids.add(clean(total, MAX_ID));
      if (unique) ids.add(clean(unique, MAX_ID));
      if (total) paintElement(el, clean(total, MAX_ID));
      if (unique && unique !== total) paintElement(el, clean(unique, MAX_ID));
    }
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

  function handleMessage(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch (e) {
      return;
    }
    if (!msg || (msg.message !== "count" && msg.message !== "views")) return;
    if (typeof msg.articleId !== "string") return; // page counts have no counters
    const id = msg.articleId;
    const known = counts.get(id) || {};
    if (typeof msg.totalViews === "number") known.total = msg.totalViews;
    if (typeof msg.uniqueViews === "number") known.unique = msg.uniqueViews;
    counts.set(id, known);
    const els = counterElements();
    for (let i = 0; i < els.length; i++) paintElement(els[i], id);
  }

  // ---- page views -------------------------------------------------------

  function dntActive() {
    return Boolean(win && win.LIVECOUNT_RESPECT_DNT) && Boolean(nav) && nav.doNotTrack === "1";
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

  // data-article-id on the page wins; else the slug after "/posts/" anywhere
  // in the path. `fresh` is false when another route update has happened
  // since, so the DOM and title belong to a different page.
  function findArticle(pathname, fresh) {
    if (fresh && doc && typeof doc.querySelector === "function") {
      try {
        const el = doc.querySelector("[" + ATTR_ARTICLE_ID + "]");
        const id = el && el.getAttribute(ATTR_ARTICLE_ID);
        if (id) {
          return { id: clean(id, MAX_ID), title: clean(el.getAttribute(ATTR_ARTICLE_TITLE) || doc.title, MAX_ID) };
        }
      } catch (e) {
        onError(e); // a DOM problem must not cost the view: fall back to the path
      }
    }
    const m = /\/posts\/([^/?#]+)/.exec(pathname);
    if (!m) return null;
    return { id: clean(safeDecode(m[1]), MAX_ID), title: fresh && doc ? clean(doc.title, MAX_ID) : "" };
  }

  function buildView(route) {
    const msg = {
      message: "views",
      currentPage: clean(route.pathname, MAX_PATH),
      previousPage: clean(route.previousPage, MAX_PATH),
      referrer: route.landing && doc ? clean(doc.referrer, MAX_PATH) : "",
      refreshed: route.landing ? wasReload() : false,
    };
    const article = findArticle(route.pathname, route.seq === routeSeq);
    if (article && article.id) {
      msg.articleId = article.id;
      if (article.title) msg.articleTitle = article.title.trim();
    }
    return fitViews(msg);
  }

  // Run fn after the next frame (the page and its <title> have rendered by
  // then); the timeout covers background tabs, where frames never come.
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
    };
    lastPath = pathname;
    // First pass: counters may already be on the page.
    setT(() => guard(scan), 0);
    // Second pass: send the view, and re-scan for counters rendered late.
    afterFrame(() => {
      if (!dntActive()) sendView(buildView(route));
      scan();
    });
  }

  function close() {
    stopped = true;
    if (reconnectTimer !== null) clearT(reconnectTimer);
    reconnectTimer = null;
    const sock = ws;
    if (sock) {
      drop(sock);
      guard(() => sock.close());
    }
  }

  return {
    onRouteUpdate: (args) => guard(() => onRouteUpdate(args)),
    /** Re-scan the page for counters, e.g. after rendering some late. */
    scan: () => guard(scan),
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

function getInstance() {
  if (!instance) instance = createLivecount();
  return instance;
}

/** Gatsby calls this on the landing page and on every in-app navigation. */
export function onRouteUpdate(args) {
  try {
    getInstance().onRouteUpdate(args);
  } catch (e) {
    // never break the page
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
}

onRouteUpdate.createLivecount = createLivecount;
onRouteUpdate.reset = reset;
