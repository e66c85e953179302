// livecount's browser client: the one source of its three builds.
//
// - The module is this file as it is: an ES module with no imports that exports
//   only Gatsby's browser API names (Gatsby flags any other export of
//   gatsby-browser.js), a drop-in gatsby-browser.js. The server serves it at
//   /client/livecount.mjs.
// - gatsby-plugin-livecount imports it from its own directory: a packed npm package
//   cannot reach outside itself, so the source lives here.
// - The tag, <script defer src="https://count.example.com/livecount.js">, is built
//   from it by client/tag.py when the server starts: everything above the "Gatsby
//   browser API" line, without comment lines and indentation, in a function that
//   ends with startTag(window, document.currentScript).
// So, for that build: no imports; comments only on lines of their own; no string or
// template literal over several lines; exports only below the Gatsby line.
//
// Everything lives in createLivecount(); the tag and the Gatsby API are thin,
// exception-proof starters of one instance, so tests build their own instance with
// a fake WebSocket, DOM, timers and random. The factory and the tag's starter ride
// on onRouteUpdate as properties.

const ATTR = "data-livecount";
// The counter attributes, and the snapshot field each shows.
const COUNTERS = [
  [ATTR, "totalViews"],
  [ATTR + "-unique", "uniqueViews"],
  [ATTR + "-now", "readingNow"],
];
const COUNTER_SELECTOR = COUNTERS.map((c) => "[" + c[0] + "]").join();
const ATTR_PAGE = ATTR + "-page";
const ATTR_COUNTED = ATTR + "-counted";
const ATTR_ARTICLE_ID = "data-article-id";
// A page's key among the counts: no cleaned id holds a control character, so a page
// name never meets a post id of the same spelling.
const PAGE = "\u0001";

// Server limits (server/core/sizes.py). Anything longer is rejected, and a frame
// over MAX_FRAME_BYTES closes the connection, so the client fits every message
// to them rather than lose a view.
// ids and titles, in characters
const MAX_ID = 256;
// paths and referrers, in characters
const MAX_PATH = 2048;
// one JSON text frame, UTF-8
const MAX_FRAME_BYTES = 4096;
const MAX_IDS_PER_MESSAGE = 100;

// sessionStorage, uniqueness "tab" only; at most SEEN_LIMIT targets, oldest forgotten first
const SEEN_KEY = "livecount:seen";
const SEEN_LIMIT = 200;

// What a watcher sees before the server has said anything about an id.
const EMPTY = Object.freeze({ totalViews: null, uniqueViews: null, readingNow: null, counted: null });
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

function noop() {}

// A mistake in the site's configuration: reported once, never swallowed silently.
function configError(message) {
  const e = new TypeError("livecount: " + message);
  e.livecountConfig = true;
  return e;
}

// An option's value, one of `allowed` (the first is the default).
function oneOf(name, value, allowed) {
  if (value == null) return allowed[0];
  if (allowed.indexOf(value) === -1) {
    throw configError(name + ' must be "' + allowed.join('" or "') + '", not ' + JSON.stringify(value));
  }
  return value;
}

// Truncate to `max` UTF-16 units (never more code points than the server
// allows) without leaving half a surrogate pair at the end.
function clip(s, max) {
  return s.length > max ? s.slice(0, /[\ud800-\udbff]/.test(s[max - 1]) ? max - 1 : max) : s;
}

// Also drop what the server refuses in every string field, or the whole message
// would be refused: control characters (C0, DEL, C1: a data-article-title attribute
// may well hold a newline), U+2028/U+2029, and lone surrogates (a title cut in the
// middle of an emoji by the page itself), each replaced by U+FFFD
// (String.prototype.toWellFormed, by hand: not every browser has it).
function clean(value, max) {
  const s = value == null ? "" : String(value);
  return clip(
    s.replace(CONTROLS, " ").replace(/[\ud800-\udbff][\udc00-\udfff]|[\ud800-\udfff]/g, (c) => (c.length > 1 ? c : "\ufffd")),
    max,
  );
}

// UTF-8 size of a value's JSON, as the server counts a frame.
function bytes(value) {
  return new TextEncoder().encode(JSON.stringify(value)).length;
}

// Each field may be at its own limit, yet together too big for one frame:
// shorten the least useful fields first until the JSON fits.
function fitViews(msg) {
  ["referrer", "previousPage", "articleTitle", "currentPage"].forEach((field) => {
    let excess;
    while ((excess = bytes(msg) - MAX_FRAME_BYTES) > 0 && msg[field]) {
      // a character is at most 4 bytes, so this never cuts more than needed
      msg[field] = clip(msg[field], Math.max(0, msg[field].length - Math.ceil(excess / 4)));
    }
  });
  return msg;
}

// The server's rule for the page a path is (tests/paths.json holds both sides'
// cases): cut at ? or #, percent-decode once as UTF-8 (a % without two hex digits
// stays), one / for a run of them, no final /index.html, no trailing / but the
// root's. null for escapes that are not UTF-8: the server does not count the path.
function normalisePath(path) {
  let p = String(path).split(/[?#]/)[0];
  try {
    p = p.replace(/(%[0-9a-f]{2})+/gi, (run) => decodeURIComponent(run));
  } catch (e) {
    return null;
  }
  if (p.charAt(0) !== "/") p = "/" + p;
  return p.replace(/\/+/g, "/").replace(/\/index\.html$/, "").replace(/\/$/, "") || "/";
}

// The page a path is, or the path as it is if the server would not count it.
function pageOf(path) {
  return normalisePath(path) || path;
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

// Create an independent livecount client. Every option is optional and defaults to
// the real browser object; docs/CLIENT.md lists them ("For tests and advanced use").
function createLivecount(options) {
  const opts = options || {};
  const win = "window" in opts ? opts.window : typeof window !== "undefined" ? window : undefined;
  // an option, else the window's own (browser functions called unbound work, as in
  // a plain setTimeout(...) call)
  const from = (name) => opts[name] || (win && win[name]);
  const doc = from("document");
  const nav = from("navigator");
  const perf = from("performance");
  const WS = from("WebSocket");
  const MO = from("MutationObserver");
  const setT = from("setTimeout") || setTimeout;
  const clearT = from("clearTimeout") || clearTimeout;
  const raf = from("requestAnimationFrame");
  const random = opts.random || Math.random;
  const envUrl = "envUrl" in opts ? opts.envUrl : readEnvUrl();
  const positive = (name, fallback) => (opts[name] > 0 ? opts[name] : fallback);
  const queueLimit = positive("queueLimit", 20);
  const backoffBase = positive("backoffBase", 1000);
  const backoffMax = positive("backoffMax", 30000);
  const connectTimeout = positive("connectTimeout", 10000);
  const onError = opts.onError || noop;
  const dom = opts.dom !== false;
  // the Gatsby builds' seed rule
  const postsFromPath = opts.postsFromPath === true;
  // An explicit option wins, then the window global.
  const setting = (name, global) => (opts[name] != null ? opts[name] : win && win[global]);
  const uniqueness = oneOf("uniqueness", setting("uniqueness", "LIVECOUNT_UNIQUENESS"), ["seed", "tab"]);
  const titles = oneOf("titles", setting("titles", "LIVECOUNT_TITLES"), ["head", "document", "none"]);
  const titleTimeout = opts.titleTimeout == null ? 1000 : opts.titleTimeout;
  if (!(Number.isFinite(titleTimeout) && titleTimeout >= 0)) {
    throw configError("titleTimeout must be a number of milliseconds, not " + titleTimeout);
  }

  // the current socket (connecting or open: status "open")
  let ws = null;
  // failed connects since the last successful open
  let attempt = 0;
  let stopped = false;
  let status = null;
  // what the server believes; every new socket starts visible
  let sentVisible = true;
  // views messages waiting for a connection
  const queue = [];
  // the page's last view, resumed (not counted again) on a new socket
  let lastView = null;
  // keys of the posts and pages counter elements name (a post's key is its id)
  let domIds = new Set();
  // {key, listener} of each watch (the React hook)
  const watchers = new Set();
  const statusListeners = new Set();
  // keys to follow: domIds and watched ids; and those the server knows we follow
  let wanted = new Set();
  let subscribed = new Set();
  // key -> frozen snapshot, like EMPTY
  const counts = new Map();
  // a page's key -> its name as a counter wrote it
  const pageNames = new Map();
  // the key this page counted as (the answer to its view): what a counter without
  // an id shows; null from a route change until the new route's view is answered
  let here = null;
  let viewPending = false;
  // error codes already said on the console: once per page load each
  const warned = new Set();
  let observer = null;
  let scanQueued = false;
  // route updates so far (0: the landing page's is to come)
  let routeSeq = 0;
  let lastPath = "";
  // finishes the view waiting for its <title>, if any
  let endTitleWait = null;
  // the title when the route change began (onPreRouteUpdate)
  let leavingTitle = null;

  // The client's one-shot timers by name (reconnect, open, sync, resubscribe,
  // visibility): at most one of each waits.
  const timers = {};
  function later(name, ms, fn) {
    if (!timers[name]) {
      timers[name] = setT(() => {
        timers[name] = null;
        guard(fn);
      }, ms);
    }
  }
  function cancel(name) {
    clearT(timers[name]);
    timers[name] = null;
  }

  // Run fn(arg) without ever letting an exception reach the page.
  function guard(fn, arg) {
    try {
      fn(arg);
    } catch (e) {
      try {
        onError(e);
      } catch (ignored) {
        // nothing left to do
      }
    }
  }

  function setStatus(next) {
    if (next === status) return;
    status = next;
    statusListeners.forEach((listener) => guard(listener, next));
    if (win && win.CustomEvent) guard(() => win.dispatchEvent(new win.CustomEvent("livecount:status", { detail: next })));
  }

  // ---- connection -------------------------------------------------------

  function resolveUrl() {
    const url = opts.url || (win && win.LIVECOUNT_URL) || envUrl;
    const loc = win && win.location;
    // Accept http(s):// too: it is an easy mistake in an env variable.
    if (url) return String(url).replace(/^http(s?):/i, "ws$1:");
    return loc && loc.host ? (loc.protocol === "https:" ? "wss://" : "ws://") + loc.host + "/ws" : "";
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
    if (!stopped && !timers.reconnect) later("reconnect", nextDelay(), connect);
  }

  // Opened lazily: only when there is a view to send or a counter to follow.
  function connect() {
    if (stopped || ws || timers.reconnect || !WS) return;
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
    // (opening and dropping the socket cancel this)
    later("open", connectTimeout, () => {
      drop(sock);
      sock.close();
    });
    sock.onopen = () =>
      guard(() => {
        if (ws !== sock) return;
        cancel("open");
        attempt = 0;
        sentVisible = true;
        setStatus("open");
        // A hidden tab says so before its views, so it never counts as reading.
        syncVisibility();
        // A socket that reopened (a server restart, a lost network) with no view
        // waiting: the page's last view was counted already; it only reads again.
        if (queue.length === 0 && lastView) rawSend({ ...lastView, resumed: true });
        flushQueue();
        // `subscribed` is empty on a fresh connection, so this sends the full set.
        syncSubscriptions();
      });
    sock.onmessage = (event) =>
      guard(() => {
        if (ws === sock) handleMessage(event.data);
      });
    // (an error event is always followed by this one)
    sock.onclose = () => guard(drop, sock);
  }

  function drop(sock) {
    if (ws !== sock) return;
    ws = null;
    // the server forgets us with the connection
    subscribed = new Set();
    cancel("open");
    setStatus("closed");
    // Tabs with nothing to do (no view sent, nothing queued, no counters) reconnect lazily.
    if (hasWork()) scheduleReconnect();
  }

  function rawSend(msg) {
    if (status !== "open") return false;
    try {
      ws.send(JSON.stringify(msg));
      return true;
    } catch (e) {
      return false;
    }
  }

  function flushQueue() {
    while (queue.length > 0 && rawSend(queue[0])) queue.shift();
  }

  function sendView(msg) {
    lastView = msg;
    queue.push(msg);
    // drop the oldest
    if (queue.length > queueLimit) queue.shift();
    flushQueue();
    connect();
  }

  // ---- reading now: hidden tabs are not reading --------------------------

  function isVisible() {
    const state = doc && doc.visibilityState;
    return !state || state === "visible";
  }

  // Never opens a socket: a closed one is told on open.
  function syncVisibility() {
    const visible = isVisible();
    if (visible !== sentVisible && rawSend({ message: "visibility", visible })) sentVisible = visible;
  }

  // A tab flipped quickly (alt-tab, a swipe) says only where it ended, once it rests:
  // a message per flip would only spend the socket's rate limit.
  const onVisibilityChange = () =>
    guard(() => {
      cancel("visibility");
      // once the tab's visibility has rested 250 ms
      later("visibility", 250, () => {
        syncVisibility();
        // shown again after a lost socket: read again
        if (!ws && hasWork()) connect();
      });
    });
  if (doc) doc.addEventListener("visibilitychange", onVisibilityChange);

  // ---- live counters ----------------------------------------------------

  // fn(element, attribute, field) for each counter attribute on the page.
  function eachCounter(fn) {
    const els = dom && doc ? doc.querySelectorAll(COUNTER_SELECTOR) : [];
    for (let i = 0; i < els.length; i++) COUNTERS.forEach((c) => fn(els[i], c[0], c[1]));
  }

  // A page named by a path or by a --page name. Its key is the name the server's
  // counts carry (a path normalised as the server does); the server is sent the name
  // as written, to normalise it itself (normalising twice is not always the same).
  function pageKey(name) {
    const p = name.charAt(0) === "/" ? normalisePath(name) : clean(name, MAX_ID);
    // a control character once decoded: refused, with the whole message that asks
    if (!p || p.search(CONTROLS) !== -1) return null;
    if (!pageNames.has(PAGE + p)) pageNames.set(PAGE + p, clean(name, MAX_ID));
    return PAGE + p;
  }

  // What one attribute of a counter names: a post by its id; with no id, the page
  // in data-livecount-page, else this page (known once the server answered its view).
  // `followed` leaves out this page: its view has the server push its counts.
  function keyOf(el, attr, followed) {
    const raw = el.getAttribute(attr);
    if (raw === null) return null;
    if (raw) return clean(raw, MAX_ID);
    const page = el.getAttribute(ATTR_PAGE);
    return page ? pageKey(page) : followed ? null : here;
  }

  function paint(el, attr, field) {
    const known = counts.get(keyOf(el, attr, false));
    if (!known) return;
    const n = known[field];
    // avoid needless DOM writes
    if (n != null && el.textContent !== String(n)) el.textContent = String(n);
    markCounted(el, known.counted);
  }

  // data-livecount-counted="false" while this tab's last view was not counted
  // (written only when it changes).
  function markCounted(el, counted) {
    if (counted == null || (el.getAttribute(ATTR_COUNTED) === null) === counted) return;
    if (counted) el.removeAttribute(ATTR_COUNTED);
    else el.setAttribute(ATTR_COUNTED, "false");
  }

  // Find the posts and pages shown on the page, paint last known values, follow them.
  function scan() {
    const ids = new Set();
    eachCounter((el, attr, field) => {
      const key = keyOf(el, attr, true);
      if (key) ids.add(key);
      paint(el, attr, field);
    });
    domIds = ids;
    updateWanted();
    observeCounters();
  }

  // Counters an app renders later (a single-page app's route, a list that loads) are
  // found by a scan on the next frame; the page's own writes (ours: a counter's text)
  // cause none.
  function observeCounters() {
    if (observer || !dom || !MO || !doc) return;
    observer = new MO((records) =>
      guard(() => {
        if (records.some((r) => r.type === "attributes" || (r.addedNodes.length > 0 && !isCounter(r.target)))) {
          scanSoon();
        }
      }),
    );
    observer.observe(doc.documentElement, {
      childList: true,
      subtree: true,
      attributes: true,
      attributeFilter: COUNTERS.map((c) => c[0]).concat(ATTR_PAGE),
    });
  }

  // (the target may be the document itself, which has no attributes)
  function isCounter(node) {
    return node.getAttribute && COUNTERS.some((c) => node.getAttribute(c[0]) !== null);
  }

  function scanSoon() {
    if (scanQueued || stopped) return;
    scanQueued = true;
    afterFrame(() => {
      scanQueued = false;
      scan();
    });
  }

  function updateWanted() {
    wanted = new Set(domIds);
    watchers.forEach((w) => wanted.add(w.key));
    syncSubscriptions();
  }

  function syncSubscriptions() {
    if (status !== "open") {
      if (wanted.size > 0) connect();
      // the full set is sent on open
      return;
    }
    const add = [...wanted].filter((id) => !subscribed.has(id));
    const remove = [...subscribed].filter((id) => !wanted.has(id));
    if (sendIds("unsubscribe", remove) && sendIds("subscribe", add)) subscribed = new Set(wanted);
  }

  // After a refusal for rate, ask again for every counter the page shows, once the
  // limit has had time to refill, 2 s (a subscribe answers with the counts: asking
  // twice costs nothing else).
  function resubscribeSoon() {
    later("resubscribe", 2000, () => {
      subscribed = new Set();
      syncSubscriptions();
    });
  }

  // Split a list of keys into messages within the server's count and frame limits
  // (a page is sent by its name as written).
  function sendIds(type, keys) {
    const msgs = [];
    let msg = null;
    keys.forEach((key) => {
      const name = pageNames.get(key);
      const list = name ? "pageNames" : "articleIds";
      if (msg) {
        msg[list].push(name || key);
        if (msg.articleIds.length + msg.pageNames.length <= MAX_IDS_PER_MESSAGE && bytes(msg) <= MAX_FRAME_BYTES) return;
        msg[list].pop();
      }
      msgs.push((msg = { message: type, articleIds: [], pageNames: [] }));
      msg[list].push(name || key);
    });
    return msgs.every(rawSend);
  }

  // The server's refusals a site owner must hear of (a path no rule counts, a site at
  // its page cap): one console line per kind and page load, in the server's words.
  function warn(msg) {
    const code = String(msg.error);
    if (warned.has(code)) return;
    warned.add(code);
    console.warn("livecount: " + (msg.detail || code) + " (" + code + ")");
  }

  function handleMessage(data) {
    let msg;
    try {
      msg = JSON.parse(data) || {};
    } catch (e) {
      return;
    }
    if (msg.message === "error") {
      // a rate refusal may have been a subscribe: the counters would wait for ever
      if (msg.error === "rate_limited") resubscribeSoon();
      else warn(msg);
      return;
    }
    const views = msg.message === "views";
    if (!views && msg.message !== "count") return;
    // A views reply answers this tab's own view; `counted` absent means counted.
    const counted = views && msg.counted !== false;
    if (views && dom && doc) markCounted(doc.documentElement, counted);
    const id =
      typeof msg.articleId === "string" ? msg.articleId : typeof msg.pageName === "string" ? PAGE + msg.pageName : null;
    if (id === null) return;
    // A reply to an earlier route's view, while this one's waits for its title, is not this page's.
    const moved = views && !viewPending && here !== id;
    if (moved) here = id;
    const known = counts.get(id) || EMPTY;
    const next = {};
    // a count absent (readingNow, until the server knows readers) keeps the known one
    COUNTERS.forEach((c) => (next[c[1]] = Number.isFinite(msg[c[1]]) ? msg[c[1]] : known[c[1]]));
    next.counted = views ? counted : known.counted;
    const same = counts.has(id) && Object.keys(next).every((f) => next[f] === known[f]);
    if (!same) counts.set(id, Object.freeze(next));
    if (!same || moved) eachCounter(paint);
    watchers.forEach((w) => {
      if (!same && w.key === id) guard(w.listener, next);
    });
  }

  // Follow an id without any DOM: for React, which renders the numbers itself.
  // Subscriptions change on the next tick, so an unmount and a mount of the
  // same id in one render cost no unsubscribe and subscribe.
  function watch(id, listener) {
    const key = clean(id, MAX_ID);
    if (!key || typeof listener !== "function") return noop;
    const watcher = { key, listener };
    watchers.add(watcher);
    scheduleSync();
    return () => {
      if (watchers.delete(watcher)) scheduleSync();
    };
  }

  function scheduleSync() {
    if (!stopped) later("sync", 0, updateWanted);
  }

  // ---- page views -------------------------------------------------------

  function dntActive() {
    return Boolean(setting("respectDnt", "LIVECOUNT_RESPECT_DNT") && nav && nav.doNotTrack === "1");
  }

  function wasReload() {
    try {
      // Navigation Timing 2, else the legacy performance.navigation
      const entry = perf.getEntriesByType && perf.getEntriesByType("navigation")[0];
      return entry ? entry.type === "reload" : perf.navigation.type === 1;
    } catch (e) {
      return false;
    }
  }

  function readTitle() {
    return doc ? clean(doc.title, MAX_ID) : "";
  }

  // The post a page names with data-article-id (and its title); any other page is
  // classified by the server, by its path (--page, --path-pattern). The Gatsby
  // builds keep the seed's rule too (`postsFromPath`): the slug after "/posts/"
  // anywhere in the path, so a site behind a path prefix counts as it always did.
  function findArticle(pathname) {
    try {
      const el = doc && doc.querySelector("[" + ATTR_ARTICLE_ID + "]");
      const id = el && clean(el.getAttribute(ATTR_ARTICLE_ID), MAX_ID);
      if (id) return { id, title: clean(el.getAttribute("data-article-title"), MAX_ID) };
    } catch (e) {
      // a DOM problem must not cost the view: the server goes by the path
      onError(e);
    }
    const slug = postsFromPath && /\/posts\/([^/?#]+)/.exec(pathname);
    const id = slug && normalisePath(slug[1]);
    return id && id !== "/" ? { id: clean(id.slice(1), MAX_ID), title: "" } : null;
  }

  // Uniqueness "tab": a tab that comes back to a target it has viewed sends
  // refreshed. Remembers the last SEEN_LIMIT targets in sessionStorage (this
  // tab only, gone when it closes); no cookie and no identifier.
  function seenInThisTab(key) {
    try {
      // (where storage is disabled, reading sessionStorage throws: the seed rule applies)
      const store = from("sessionStorage");
      if (!store) return false;
      const stored = JSON.parse(store.getItem(SEEN_KEY) || "[]");
      // a stored value that is not a list is replaced, not trusted
      const list = Array.isArray(stored) ? stored : [];
      const at = list.indexOf(key);
      if (at !== -1) list.splice(at, 1);
      list.push(key);
      store.setItem(SEEN_KEY, JSON.stringify(list.slice(-SEEN_LIMIT)));
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
      referrer: route.seq === 1 && doc ? clean(doc.referrer, MAX_PATH) : "",
      refreshed: route.seq === 1 && wasReload(),
    };
    if (article) msg.articleId = article.id;
    // the title the page gives its post wins
    const t = titles === "none" ? "" : String((article && article.title) || title).trim();
    if (t) msg.articleTitle = t;
    if (uniqueness === "tab") {
      const key = article ? "post:" + article.id : "page:" + pageOf(msg.currentPage);
      if (seenInThisTab(key)) msg.refreshed = true;
    }
    return fitViews(msg);
  }

  // The server keeps the title a view carries, so it must be the new route's. Gatsby's
  // Head API, React Helmet and single-page routers set the new <title> after the route
  // changed: wait for it to change (bounded), unless the page names its post's title.
  // The landing page's title is already right, unless it has none yet. The post is
  // looked for again after a wait: by then the new route has rendered.
  function viewWhenTitled(route) {
    const fresh = route.seq === routeSeq;
    const article = fresh ? findArticle(route.pathname) : null;
    const send = (title) => {
      const current = route.seq === routeSeq;
      if (current) viewPending = false;
      const post = article || (current ? findArticle(route.pathname) : null);
      if (!dntActive()) sendView(buildView(route, post, title));
    };
    if ((article && article.title) || titles === "none" || !fresh) return send("");
    if (titles === "document" || isNewTitle(route, readTitle())) return send(readTitle());
    waitForTitle(route, send);
  }

  // Gatsby removes the old <title> before it adds the new one: an empty title
  // is a moment between the two, not the new route's.
  function isNewTitle(route, title) {
    return title !== route.staleTitle && title.trim() !== "";
  }

  function waitForTitle(route, send) {
    let titleObserver = null;
    let poll = null;
    // A later route update ends the wait: the page is no longer this route's,
    // so no title is better than a wrong one.
    const finish = (superseded) => {
      if (endTitleWait !== finish) return;
      endTitleWait = null;
      if (titleObserver) titleObserver.disconnect();
      clearT(poll);
      clearT(timer);
      guard(send, superseded ? "" : readTitle());
    };
    // on every change of <head>, or every 25 ms without a MutationObserver
    const check = () => {
      if (isNewTitle(route, readTitle())) finish();
      else if (!titleObserver) poll = setT(check, 25);
    };
    endTitleWait = finish;
    if (MO && doc) {
      try {
        titleObserver = new MO(() => guard(check));
        titleObserver.observe(doc.head || doc.documentElement || doc, {
          childList: true,
          subtree: true,
          characterData: true,
        });
      } catch (e) {
        titleObserver = null;
        onError(e);
      }
    }
    if (!titleObserver) poll = setT(check, 25);
    const timer = setT(() => finish(), titleTimeout);
  }

  // Run fn after the next frame (the page has rendered by then); the timeout
  // covers background tabs, where frames never come.
  function afterFrame(fn) {
    let done = false;
    const once = () => {
      if (!done) guard(fn);
      done = true;
    };
    if (raf) raf(once);
    setT(once, 100);
  }

  // Only cheap bookkeeping happens synchronously; DOM reads and sending are
  // deferred so the route change is never slowed down.
  function onRouteUpdate(args) {
    if (stopped) return;
    const { location, prevLocation } = args || {};
    const loc = win && win.location;
    const pathname = String((location && location.pathname) || (loc && loc.pathname) || "/");
    const landing = routeSeq === 0;
    // (seq 1 is the landing page's)
    const route = {
      seq: ++routeSeq,
      pathname,
      previousPage: landing ? "" : String((prevLocation && prevLocation.pathname) || lastPath),
      // the title the new route's replaces: the one shown when the change began,
      // if Gatsby said so (a head manager may beat onRouteUpdate); none on landing
      staleTitle: landing ? null : leavingTitle !== null ? leavingTitle : readTitle(),
    };
    leavingTitle = null;
    lastPath = pathname;
    here = null;
    viewPending = true;
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
    if (routeSeq > 0) leavingTitle = readTitle();
  }

  function close() {
    stopped = true;
    Object.keys(timers).forEach(cancel);
    if (observer) observer.disconnect();
    if (doc) doc.removeEventListener("visibilitychange", onVisibilityChange);
    const sock = ws;
    if (sock) {
      drop(sock);
      sock.close();
    }
  }

  return {
    onPreRouteUpdate: (args) => guard(onPreRouteUpdate, args),
    onRouteUpdate: (args) => guard(onRouteUpdate, args),
    // Re-scan the page for counters, e.g. after rendering some late.
    scan: () => guard(scan),
    // Follow a post's counts without DOM: listener(snapshot) on every change; returns unwatch.
    watch: (id, listener) => {
      let off = noop;
      guard(() => (off = watch(id, listener)));
      return off;
    },
    // The last known {totalViews, uniqueViews, readingNow, counted} of a post (null: unknown).
    snapshot: (id) => counts.get(clean(id, MAX_ID)) || EMPTY,
    // listener(status) on every change of status; returns a function that stops it.
    onStatus: (listener) => {
      statusListeners.add(listener);
      return () => statusListeners.delete(listener);
    },
    // Close the socket and stop for good (tests, hot reload).
    close: () => guard(close),
    // "open", "closed", or null before the first connection attempt.
    get status() {
      return status;
    },
  };
}

// ---- the tag --------------------------------------------------------------

// The tag's start: its options from its own data-* attributes, its server from its
// own src (https://host/path/livecount.js: wss://host/path/ws), a view for the landing
// page and for each History API navigation to another page. The client is
// window.livecount; a second copy of the tag finds it and does nothing.
function startTag(win, script) {
  if (!win || (win.livecount && win.livecount.scan)) return;
  const doc = win.document;
  // an attribute's value, or null (an option left unset)
  const attr = (name) => script && script.getAttribute("data-" + name);
  const dnt = attr("respect-dnt");
  const timeout = attr("title-timeout");
  let routing;
  let lc;
  try {
    routing = oneOf("routing", attr("routing"), ["history", "hash"]);
    lc = createLivecount({
      window: win,
      url: attr("url"),
      envUrl: script && script.src ? new URL("ws", script.src).href : undefined,
      respectDnt: dnt == null ? null : dnt !== "false",
      uniqueness: attr("uniqueness"),
      titles: attr("titles"),
      titleTimeout: /^\d+$/.test(timeout) ? Number(timeout) : timeout,
    });
  } catch (e) {
    console.error(e && e.livecountConfig ? e.message : e);
    return;
  }
  win.livecount = lc;
  // With hash routing the page is the path in the fragment (#/about, #!/about): no
  // fragment is the root, and one that is no path (#top, an anchor) leaves the page.
  let current = "/";
  const path = () => {
    if (routing !== "hash") return win.location.pathname;
    const route = /^#!?(\/.*)/.exec(win.location.hash);
    return route ? route[1] : win.location.hash.length > 1 ? current : "/";
  };
  current = path();
  let started = false;
  const view = () => lc.onRouteUpdate({ location: { pathname: current } });
  // (nothing here throws: the site's router never breaks)
  const follow = () => {
    const next = path();
    if (pageOf(next) === pageOf(current)) return;
    current = next;
    if (started) view();
  };
  ["pushState", "replaceState"].forEach((name) => {
    const original = win.history[name];
    win.history[name] = function () {
      const result = original.apply(this, arguments);
      follow();
      return result;
    };
  });
  // (a hash that changes no page changes nothing)
  win.addEventListener("popstate", follow);
  win.addEventListener("hashchange", follow);
  const start = () => {
    started = true;
    view();
  };
  if (doc.readyState === "loading") doc.addEventListener("DOMContentLoaded", start);
  else start();
}

// ---- Gatsby browser API: client/tag.py cuts the tag here --------------------

let instance = null;
let reported = false;

function getInstance() {
  if (!instance) instance = createLivecount({ postsFromPath: true });
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
    report(e);
  }
}

/** Gatsby calls this on the landing page and on every in-app navigation. */
export function onRouteUpdate(args) {
  try {
    getInstance().onRouteUpdate(args);
  } catch (e) {
    report(e);
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
onRouteUpdate.startTag = startTag;
onRouteUpdate.normalisePath = normalisePath;
onRouteUpdate.reset = reset;
