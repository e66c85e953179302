// The tag, <script defer src="https://count.example.com/livecount.js">: its options from
// its attributes, its server from its src, views on History API navigations, a second
// copy that does nothing; and the tag as client/tag.py builds it, run as a classic
// script. Run: node --test tests/js/
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import vm from "node:vm";

import { onRouteUpdate } from "../../client/gatsby-plugin-livecount/livecount.mjs";
import {
  createClock,
  createDocument,
  createMutationObserverClass,
  createStorage,
  createWebSocketClass,
  createWindow,
  el,
} from "./fakes.mjs";
import { SETTLE } from "./harness.mjs";

const { startTag } = onRouteUpdate;
const ORIGIN = "https://blog.example";

/** A <script> element: its data-* attributes and src. */
function script(attrs = {}, src = "https://count.example.com/livecount.js") {
  const attributes = Object.fromEntries(Object.entries(attrs).map(([k, v]) => ["data-" + k, v]));
  return Object.assign(el(attributes), { src });
}

/**
 * A browser page the tag runs in: a window whose history moves location like a
 * browser's, events on window and document, and a fake server socket.
 */
function page({ url = "/", title = "Home", readyState = "interactive", globals = {}, elements = [] } = {}) {
  const clock = createClock();
  const ws = createWebSocketClass();
  const doc = createDocument({ title, elements });
  doc.readyState = readyState;
  const win = createWindow({ protocol: "https:", host: "blog.example", document: doc, clock, WebSocket: ws.WebSocket });
  win.MutationObserver = createMutationObserverClass(doc);
  win.sessionStorage = createStorage();
  const listeners = new Map();
  const fire = (target, type) => [...(listeners.get(target + type) || [])].forEach((fn) => fn({ type }));
  const go = (to) => {
    const u = new URL(to, ORIGIN + win.location.pathname);
    win.location.pathname = u.pathname;
    win.location.hash = u.hash;
  };
  win.addEventListener = (type, fn) => listeners.set("window" + type, (listeners.get("window" + type) || new Set()).add(fn));
  const docListen = doc.addEventListener;
  doc.addEventListener = (type, fn) => {
    docListen(type, fn);
    listeners.set("document" + type, (listeners.get("document" + type) || new Set()).add(fn));
  };
  const calls = [];
  win.history = {
    pushState(state, unused, to) {
      calls.push(["pushState", this, state, to]);
      if (to !== undefined) go(to);
      return "pushed";
    },
    replaceState(state, unused, to) {
      calls.push(["replaceState", this, state, to]);
      if (to !== undefined) go(to);
    },
  };
  go(url);
  Object.assign(win, globals);
  const p = {
    clock, ws, doc, win, calls,
    /** A link the site's router follows: pushState, then the new page renders its title. */
    push(to, newTitle) {
      win.history.pushState({ at: to }, "", to);
      if (newTitle !== undefined) doc.title = newTitle;
      clock.advance(SETTLE);
    },
    /** The back button: the browser moves location, then fires popstate. */
    back(to, newTitle) {
      go(to);
      fire("window", "popstate");
      if (newTitle !== undefined) doc.title = newTitle;
      clock.advance(SETTLE);
    },
    hashchange(hash, newTitle) {
      win.location.hash = hash;
      fire("window", "hashchange");
      fire("window", "popstate");
      if (newTitle !== undefined) doc.title = newTitle;
      clock.advance(SETTLE);
    },
    loaded() {
      doc.readyState = "interactive";
      fire("document", "DOMContentLoaded");
    },
    views() {
      return ws.sockets.flatMap((s) => s.messages()).filter((m) => m.message === "views");
    },
  };
  return p;
}

/** The tag runs on a page (as client/tag.py's build ends: startTag(window, currentScript)). */
function run(p, tag = script()) {
  startTag(p.win, tag);
  p.clock.advance(SETTLE);
  if (p.ws.sockets.length > 0 && p.ws.last.readyState === 0) p.ws.last.serverOpen();
  return p;
}

describe("the tag's server", () => {
  test("is /ws beside the tag's own src, over wss: for https: and ws: for http:", () => {
    assert.equal(run(page()).ws.last.url, "wss://count.example.com/ws");
    const sub = run(page(), script({}, "http://127.0.0.1:8123/stats/livecount.js?v=2"));
    assert.equal(sub.ws.last.url, "ws://127.0.0.1:8123/stats/ws", "a server behind a path prefix keeps it");
  });

  test("data-url wins over window.LIVECOUNT_URL, which wins over the src", () => {
    const attr = run(page({ globals: { LIVECOUNT_URL: "wss://global.example/ws" } }), script({ url: "https://attr.example/ws" }));
    assert.equal(attr.ws.last.url, "wss://attr.example/ws", "http(s) is taken for ws(s)");
    const global = run(page({ globals: { LIVECOUNT_URL: "wss://global.example/ws" } }));
    assert.equal(global.ws.last.url, "wss://global.example/ws");
  });

  test("an inline copy of the tag (no src) goes to /ws on the page's own host", () => {
    assert.equal(run(page(), script({}, "")).ws.last.url, "wss://blog.example/ws");
  });
});

describe("the tag's options, as data-* attributes", () => {
  test("data-uniqueness, data-titles and data-title-timeout reach the client", () => {
    const p = run(page(), script({ uniqueness: "tab", titles: "document" }));
    p.push("/blog/a/");
    p.push("/");
    assert.deepEqual(p.views().map((m) => [m.currentPage, m.refreshed, m.articleTitle]), [
      ["/", false, "Home"],
      ["/blog/a/", false, "Home"],
      ["/", true, "Home"],
    ], '"document" takes the title of the next frame, unchanged or not; "tab" makes a return a repeat');

    const q = run(page(), script({ "title-timeout": "300" }));
    q.win.history.pushState(null, "", "/blog/b/");
    q.clock.advance(16 + 299);
    assert.equal(q.views().length, 1, "still waiting for a new title");
    q.clock.advance(1);
    assert.equal(q.views().length, 2);
  });

  test("data-respect-dnt, with or without a value, sends nothing for Do Not Track; \"false\" sends", () => {
    for (const [value, views] of [["", 0], ["true", 0], ["false", 1]]) {
      const p = page({ elements: [el({ "data-livecount": "x" })] });
      p.win.navigator.doNotTrack = "1";
      run(p, script({ "respect-dnt": value }));
      assert.equal(p.views().length, views, `data-respect-dnt="${value}"`);
      assert.equal(p.ws.sockets.length, 1, "the counters still show");
    }
  });

  test("a wrong value is said once on the console, and the tag does nothing", (t) => {
    const said = [];
    t.mock.method(console, "error", (...args) => said.push(args.join(" ")));
    for (const attrs of [{ uniqueness: "visitor" }, { titles: "later" }, { "title-timeout": "soon" }, { routing: "query" }]) {
      const p = run(page(), script(attrs));
      assert.equal(p.ws.sockets.length, 0);
      assert.equal(p.win.livecount, undefined);
    }
    assert.deepEqual(said, [
      'livecount: uniqueness must be "seed" or "tab", not "visitor"',
      'livecount: titles must be "head" or "document" or "none", not "later"',
      "livecount: titleTimeout must be a number of milliseconds, not soon",
      'livecount: routing must be "history" or "hash", not "query"',
    ]);
  });
});

describe("single-page navigation", () => {
  test("pushState, replaceState and popstate to another page each send one view", () => {
    const p = run(page());
    p.push("/blog/a/", "A");
    p.win.history.replaceState(null, "", "/blog/b/");
    p.doc.title = "B";
    p.clock.advance(SETTLE);
    p.back("/blog/a/", "A again");
    assert.deepEqual(p.views().map((m) => [m.currentPage, m.previousPage, m.articleTitle, m.refreshed]), [
      ["/", "", "Home", false],
      ["/blog/a/", "/", "A", false],
      ["/blog/b/", "/blog/a/", "B", false],
      ["/blog/a/", "/blog/b/", "A again", false],
    ]);
  });

  test("the same page again (a query, a fragment, a slash) is no new view", () => {
    const p = run(page({ url: "/blog/a/" }));
    p.push("/blog/a/?page=2");
    p.push("/blog/a/#comments");
    p.push("/blog/a");
    p.win.history.replaceState({ scroll: 10 }, "");
    p.clock.advance(2000);
    assert.equal(p.views().length, 1);
  });

  test("the router's own calls go through unchanged: arguments, this and the result", () => {
    const p = run(page());
    const state = { id: 1 };
    assert.equal(p.win.history.pushState(state, "", "/x"), "pushed");
    assert.deepEqual(p.calls, [["pushState", p.win.history, state, "/x"]]);
  });

  test('data-routing="hash": the page is the path in the fragment', () => {
    const p = run(page({ url: "/app/#/about" }), script({ routing: "hash" }));
    p.hashchange("#!/blog/x", "X");
    p.hashchange("#!/blog/x?tab=2");
    p.hashchange("#top", "Top");
    p.hashchange("", "Home");
    assert.deepEqual(p.views().map((m) => m.currentPage), ["/about", "/blog/x", "/"],
      "an anchor (#top) is no new page; no fragment is the root");
    const history = run(page({ url: "/app/#/about" }));
    history.hashchange("#/blog/x", "X");
    assert.deepEqual(history.views().map((m) => m.currentPage), ["/app/"], "without it, fragments are not pages");
  });
});

describe("loading", () => {
  test("a second copy of the tag does nothing: one client, one view", () => {
    const p = page();
    startTag(p.win, script());
    const first = p.win.livecount;
    startTag(p.win, script({ url: "wss://other.example/ws" }));
    p.clock.advance(SETTLE);
    p.ws.last.serverOpen();
    assert.equal(p.win.livecount, first);
    assert.equal(p.ws.sockets.length, 1);
    assert.equal(p.views().length, 1);
    p.push("/blog/a/", "A");
    assert.equal(p.views().length, 2, "and one view per navigation, not two");
  });

  test("an element named livecount does not pass for a loaded tag", () => {
    const p = page();
    p.win.livecount = el({ id: "livecount" }); // window.livecount of <div id="livecount">
    run(p);
    assert.equal(p.views().length, 1);
  });

  test("while the page is still loading (async in <head>), the view waits for DOMContentLoaded", () => {
    const p = page({ readyState: "loading" });
    startTag(p.win, script());
    p.push("/blog/a/");
    p.clock.advance(SETTLE);
    assert.equal(p.ws.sockets.length, 0);
    p.doc.elements.push(el({ "data-article-id": "a" }));
    p.loaded();
    p.clock.advance(SETTLE);
    p.ws.last.serverOpen();
    assert.deepEqual(p.views().map((m) => [m.currentPage, m.articleId]), [["/blog/a/", "a"]]);
  });

  test("loaded late, after the page's load, it counts at once", () => {
    const p = run(page({ readyState: "complete" }));
    assert.equal(p.views().length, 1);
  });
});

describe("the tag as served (python3 client/tag.py)", () => {
  const built = spawnSync("python3", [new URL("../../client/tag.py", import.meta.url).pathname], { encoding: "utf8" });
  const skip = built.error ? "python3 is not installed" : false;

  test("is a classic script that starts the tag from its own <script>, once", { skip }, () => {
    assert.equal(built.status, 0, built.stderr);
    const code = built.stdout;
    assert.doesNotMatch(code, /^\s*(export|import)\b/m, "no module syntax");
    assert.doesNotMatch(code, /^\s*\/\//m, "no comment lines");
    const p = page({ url: "/blog/hello/" });
    p.doc.currentScript = script({ uniqueness: "tab" }, "http://127.0.0.1:9999/livecount.js");
    const context = vm.createContext({ window: p.win, document: p.doc, URL, TextEncoder, console });
    vm.runInContext(code, context, { filename: "livecount.js" });
    vm.runInContext(code, context, { filename: "livecount.js" });
    assert.deepEqual(Object.keys(context).sort(), ["TextEncoder", "URL", "console", "document", "window"], "no globals of its own");
    p.clock.advance(SETTLE);
    p.ws.last.serverOpen();
    assert.equal(p.ws.sockets.length, 1);
    assert.equal(p.ws.last.url, "ws://127.0.0.1:9999/ws");
    assert.deepEqual(p.views().map((m) => m.currentPage), ["/blog/hello/"]);
    assert.equal(typeof p.win.livecount.scan, "function");
    p.push("/blog/hello/");
    p.push("/", "Home again");
    assert.deepEqual(p.views().map((m) => [m.currentPage, m.refreshed]), [["/blog/hello/", false], ["/", false]]);
  });
});
