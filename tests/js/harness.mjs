// A livecount client on fakes, driven like Gatsby drives it; shared by the tests.
import * as client from "../../client/gatsby-plugin-livecount/livecount.mjs";
import {
  createClock,
  createWebSocketClass,
  createDocument,
  createWindow,
  createMutationObserverClass,
  createStorage,
  el,
} from "./fakes.mjs";

const { createLivecount } = client.onRouteUpdate;

// Long enough for both deferred passes (setTimeout 0 and the next frame); not
// for the wait for a new <title> (1000 ms), so go() sets one like Gatsby does.
export const SETTLE = 200;

/**
 * `globals` are set on the window before the client is made (LIVECOUNT_*);
 * `observer: false` leaves MutationObserver out, `storage` replaces sessionStorage.
 */
export function setup({
  elements = [],
  title = "A page", // a real page has one; a post landing on an empty title waits for it
  referrer = "",
  protocol,
  random = () => 0.5,
  options = {},
  globals = {},
  observer = true,
  storage = createStorage(),
} = {}) {
  const clock = createClock();
  const ws = createWebSocketClass();
  const doc = createDocument({ elements, title, referrer });
  const win = createWindow({ protocol, document: doc, clock, WebSocket: ws.WebSocket });
  if (observer) win.MutationObserver = createMutationObserverClass(doc);
  win.sessionStorage = storage;
  Object.assign(win, globals);
  const errors = [];
  const lc = createLivecount({ window: win, random, envUrl: undefined, onError: (e) => errors.push(e), ...options });

  let current = null;
  const env = {
    clock, ws, doc, win, lc, errors,
    /**
     * Simulate Gatsby calling onRouteUpdate, then let deferred work run. Like
     * Gatsby's Head API, `title` replaces document.title after the call; `pre`
     * calls onPreRouteUpdate first, and `early` is a title set between the two.
     * `post` renders the new page as that post (an element with data-article-id, as
     * a blog's post template has); null renders a page that names no post.
     */
    go(pathname, { settle = true, title, pre = false, early, post } = {}) {
      win.location.pathname = pathname;
      if (post !== undefined) {
        doc.elements = doc.elements.filter((e) => e.getAttribute("data-article-id") === null);
        if (post !== null) doc.elements.push(el({ "data-article-id": post }));
      }
      const args = { location: { pathname }, prevLocation: current === null ? null : { pathname: current } };
      // Gatsby: onPreRouteUpdate, the new page renders (and may set its title), onRouteUpdate
      if (pre || early !== undefined) lc.onPreRouteUpdate(args);
      if (early !== undefined) doc.title = early;
      lc.onRouteUpdate(args);
      current = pathname;
      if (title !== undefined) doc.title = title;
      if (settle) clock.advance(SETTLE);
    },
    /** Open the current socket from the server side. */
    open() {
      ws.last.serverOpen();
    },
    /** Let time pass until the client tries a new socket; returns the delay. */
    reconnect() {
      const before = ws.sockets.length;
      const start = clock.now;
      while (ws.sockets.length === before) {
        if (clock.now - start > 120_000) throw new Error("no reconnect attempt within 120 s");
        clock.advance(1);
      }
      return clock.now - start;
    },
    sent(type) {
      return ws.sockets.flatMap((s) => s.messages()).filter((m) => !type || m.message === type);
    },
  };
  return env;
}
