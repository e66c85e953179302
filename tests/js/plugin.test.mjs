// gatsby-plugin-livecount without React: the client the hook and gatsby-browser.js
// share, its options, and the watch API the hook is built on. React itself is
// tested in a real browser (tests/browser/test_gatsby.py). Run: node --test tests/js/
import { test, describe, afterEach } from "node:test";
import assert from "node:assert/strict";
import { readFile, access } from "node:fs/promises";
import { createRequire } from "node:module";

import { createClock, createWebSocketClass, createDocument, createWindow, el } from "./fakes.mjs";
import { setup } from "./harness.mjs";
import * as pluginClient from "../../client/gatsby-plugin-livecount/client.js";
import * as gatsbyBrowser from "../../client/gatsby-plugin-livecount/gatsby-browser.js";

const PLUGIN = new URL("../../client/gatsby-plugin-livecount/", import.meta.url);

describe("the package", () => {
  test("package.json publishes every module the plugin imports", async () => {
    const pkg = JSON.parse(await readFile(new URL("package.json", PLUGIN), "utf8"));
    assert.equal(pkg.name, "gatsby-plugin-livecount");
    assert.equal(pkg.type, "module");
    for (const file of pkg.files) await access(new URL(file, PLUGIN));
    for (const file of ["index.js", "client.js", "livecount.mjs", "gatsby-browser.js", "gatsby-node.mjs"]) {
      assert.ok(pkg.files.includes(file), file + " is not published");
    }
    assert.ok(pkg.peerDependencies.react && pkg.peerDependencies.gatsby);
    assert.deepEqual(Object.keys(pkg.dependencies || {}), [], "no dependencies of its own");
  });

  test("gatsby-browser.js exports only Gatsby browser API names", () => {
    assert.deepEqual(Object.keys(gatsbyBrowser).sort(), ["onClientEntry", "onPreRouteUpdate", "onRouteUpdate"]);
  });
});

describe("plugin options", () => {
  test("the client takes the known options that are set, and never touches the DOM", () => {
    assert.deepEqual(
      pluginClient.clientOptions({
        plugins: [],
        url: "wss://count.example/ws",
        respectDnt: true,
        uniqueness: "tab",
        titles: "head",
        titleTimeout: 800,
        somethingElse: 1,
      }),
      { url: "wss://count.example/ws", respectDnt: true, uniqueness: "tab", titles: "head", titleTimeout: 800, dom: false, postsFromPath: true },
    );
    assert.deepEqual(pluginClient.clientOptions(undefined), { dom: false, postsFromPath: true });
    assert.deepEqual(pluginClient.clientOptions({ respectDnt: false }), { respectDnt: false, dom: false, postsFromPath: true });
  });

  test("gatsby-config.js options are validated at build time", async (t) => {
    const require = createRequire(new URL("../gatsby-site/package.json", import.meta.url));
    let utils;
    try {
      utils = require("gatsby-plugin-utils");
    } catch (e) {
      t.skip("tests/gatsby-site/node_modules is not installed (make gatsby-site installs it)");
      return;
    }
    const { pluginOptionsSchema } = await import(new URL("gatsby-node.mjs", PLUGIN));
    const good = await utils.testPluginOptionsSchema(pluginOptionsSchema, {
      url: "wss://count.example.com/ws",
      respectDnt: true,
      uniqueness: "tab",
      titles: "document",
      titleTimeout: 500,
    });
    assert.deepEqual(good.errors, []);
    const bad = await utils.testPluginOptionsSchema(pluginOptionsSchema, {
      url: "count.example.com",
      uniqueness: "visitor",
      titles: "later",
      titleTimeout: -1,
    });
    assert.equal(bad.isValid, false);
    const text = bad.errors.join("\n");
    for (const name of ["url", "uniqueness", "titles", "titleTimeout"]) assert.match(text, new RegExp(`"${name}"`));
    const unknown = await utils.testPluginOptionsSchema(pluginOptionsSchema, { colour: "red" });
    assert.match(unknown.warnings.join("\n"), /colour/, "an unknown option is a warning (Gatsby's rule)");
  });
});

describe("the shared client", () => {
  const saved = globalThis.window;
  afterEach(() => {
    pluginClient.reset();
    if (saved === undefined) delete globalThis.window;
    else globalThis.window = saved;
  });

  function browser() {
    const clock = createClock();
    const ws = createWebSocketClass();
    const doc = createDocument({ title: "Home", elements: [el({ "data-livecount": "a" }, "–"), el({ "data-article-id": "a" })] });
    globalThis.window = createWindow({ document: doc, clock, WebSocket: ws.WebSocket });
    return { clock, ws, doc };
  }

  test("there is none during SSR", () => {
    delete globalThis.window;
    assert.equal(pluginClient.getClient(), null);
  });

  test("gatsby-browser.js configures it once and reports each route through it", () => {
    const { clock, ws, doc } = browser();
    gatsbyBrowser.onClientEntry({}, { plugins: [], url: "ws://count.test/ws" });
    gatsbyBrowser.onPreRouteUpdate({ location: { pathname: "/posts/a" }, prevLocation: null });
    gatsbyBrowser.onRouteUpdate({ location: { pathname: "/posts/a" }, prevLocation: null });
    clock.advance(200);
    assert.equal(ws.last.url, "ws://count.test/ws");
    ws.last.serverOpen();
    // a head manager quicker than onRouteUpdate: the title at onPreRouteUpdate is the old one
    gatsbyBrowser.onPreRouteUpdate({ location: { pathname: "/posts/b" }, prevLocation: { pathname: "/posts/a" } });
    doc.elements[1] = el({ "data-article-id": "b" });
    doc.title = "Post B";
    gatsbyBrowser.onRouteUpdate({ location: { pathname: "/posts/b" }, prevLocation: { pathname: "/posts/a" } });
    clock.advance(200);
    assert.deepEqual(ws.last.messages().map((m) => [m.articleId, m.articleTitle]), [["a", "Home"], ["b", "Post B"]]);
    assert.equal(pluginClient.getClient(), pluginClient.getClient(), "one client for the hook and the routes");
    ws.last.receive({ message: "views", articleId: "a", totalViews: 1, uniqueViews: 1, readingNow: 1 });
    assert.equal(doc.elements[0].textContent, "–", "React's DOM is never written");
    assert.equal(doc.queries, 2, "only the article lookups, never a counter scan");
    assert.equal(pluginClient.getClient().snapshot("a").totalViews, 1);
  });

  test("a bad option is said once on the console, and nothing counts", (t) => {
    browser();
    const said = [];
    t.mock.method(console, "error", (...args) => said.push(args.join(" ")));
    pluginClient.configure({ uniqueness: "visitor" });
    assert.equal(pluginClient.getClient(), null);
    assert.equal(pluginClient.getClient(), null);
    assert.deepEqual(said, ['livecount: uniqueness must be "seed" or "tab", not "visitor"']);
    gatsbyBrowser.onRouteUpdate({ location: { pathname: "/" } }); // and routes are harmless
  });
});

describe("watch: counts for React, without DOM", () => {
  test("subscribes on the next tick and hands each change to the listener", () => {
    const t = setup({ options: { dom: false } });
    const seen = [];
    t.lc.watch("a", (snap) => seen.push(snap));
    assert.equal(t.ws.sockets.length, 0, "nothing happens inside a render");
    t.clock.advance(0);
    t.open();
    assert.deepEqual(t.sent("subscribe"), [{ message: "subscribe", articleIds: ["a"], pageNames: [] }]);
    t.ws.last.receive({ message: "count", articleId: "a", totalViews: 2, uniqueViews: 1, readingNow: 1 });
    t.ws.last.receive({ message: "count", articleId: "b", totalViews: 9, uniqueViews: 9 });
    assert.deepEqual(seen, [{ totalViews: 2, uniqueViews: 1, readingNow: 1, counted: null }]);
    assert.ok(Object.isFrozen(seen[0]));
  });

  test("a snapshot keeps its identity until something changes (useSyncExternalStore needs it)", () => {
    const t = setup({ options: { dom: false } });
    const empty = t.lc.snapshot("a");
    assert.deepEqual(empty, { totalViews: null, uniqueViews: null, readingNow: null, counted: null });
    assert.equal(t.lc.snapshot("a"), empty);
    t.lc.watch("a", () => {});
    t.clock.advance(0);
    t.open();
    t.ws.last.receive({ message: "count", articleId: "a", totalViews: 2, uniqueViews: 1 });
    const first = t.lc.snapshot("a");
    t.ws.last.receive({ message: "count", articleId: "a", totalViews: 2, uniqueViews: 1 });
    assert.equal(t.lc.snapshot("a"), first, "the same numbers: the same object");
    t.ws.last.receive({ message: "count", articleId: "a", totalViews: 3, uniqueViews: 1 });
    assert.notEqual(t.lc.snapshot("a"), first);
  });

  test("an unmount and a mount of the same id in one render send nothing; the last unwatch unsubscribes", () => {
    const t = setup({ options: { dom: false } });
    const off = t.lc.watch("a", () => {});
    t.clock.advance(0);
    t.open();
    off();
    const off2 = t.lc.watch("a", () => {});
    const off3 = t.lc.watch("a", () => {});
    t.clock.advance(0);
    assert.deepEqual(t.sent().map((m) => m.message), ["subscribe"]);
    off2();
    off2(); // twice is harmless
    t.clock.advance(0);
    assert.deepEqual(t.sent().map((m) => m.message), ["subscribe"], "one watcher is left");
    off3();
    t.clock.advance(0);
    assert.deepEqual(t.sent().at(-1), { message: "unsubscribe", articleIds: ["a"], pageNames: [] });
  });

  test("watched ids and counters on the page are followed together", () => {
    const t = setup({ elements: [el({ "data-livecount": "dom" })] });
    t.lc.watch("react", () => {});
    t.go("/");
    t.open();
    assert.deepEqual(t.sent("subscribe")[0].articleIds.sort(), ["dom", "react"]);
    t.doc.elements = [];
    t.go("/pages/about");
    assert.deepEqual(t.sent("unsubscribe").map((m) => m.articleIds), [["dom"]], "the watched id stays");
  });

  test("a throwing listener hurts nobody; status listeners hear open and closed", () => {
    const t = setup({ options: { dom: false } });
    const calm = [];
    const statuses = [];
    t.lc.watch("a", () => {
      throw new Error("bad listener");
    });
    t.lc.watch("a", (snap) => calm.push(snap.totalViews));
    const stop = t.lc.onStatus((s) => statuses.push(s));
    t.clock.advance(0);
    t.open();
    t.ws.last.receive({ message: "count", articleId: "a", totalViews: 1, uniqueViews: 1 });
    assert.deepEqual(calm, [1]);
    assert.equal(t.errors.length, 1);
    t.ws.last.serverClose();
    stop();
    t.reconnect();
    t.open();
    assert.deepEqual(statuses, ["open", "closed"]);
  });

  test("bad ids and listeners are refused quietly", () => {
    const t = setup({ options: { dom: false } });
    assert.doesNotThrow(() => {
      t.lc.watch("", () => {})();
      t.lc.watch("a", null)();
    });
    t.clock.advance(0);
    assert.equal(t.ws.sockets.length, 0);
  });
});

describe("configuration errors", () => {
  test("a wrong uniqueness, titles or titleTimeout throws a clear TypeError", () => {
    for (const [options, message] of [
      [{ uniqueness: "visitor" }, 'livecount: uniqueness must be "seed" or "tab", not "visitor"'],
      [{ titles: "late" }, 'livecount: titles must be "head" or "document" or "none", not "late"'],
      [{ titleTimeout: "1s" }, "livecount: titleTimeout must be a number of milliseconds, not 1s"],
      [{ titleTimeout: -5 }, "livecount: titleTimeout must be a number of milliseconds, not -5"],
    ]) {
      assert.throws(() => setup({ options }), { name: "TypeError", message });
    }
    assert.throws(() => setup({ globals: { LIVECOUNT_UNIQUENESS: "cookie" } }), /uniqueness must be/);
  });
});
