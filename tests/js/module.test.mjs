// Unit tests for the browser client (client/gatsby-plugin-livecount/livecount.mjs),
// used as the module (a drop-in gatsby-browser.js). Run: node --test tests/js/
import { test, describe } from "node:test";
import assert from "node:assert/strict";

import * as module from "../../client/gatsby-plugin-livecount/livecount.mjs";

const { onRouteUpdate } = module;
const { createLivecount, reset: __livecountReset } = onRouteUpdate;
import { createClock, createWebSocketClass, createDocument, createWindow, el, sequenceRandom } from "./fakes.mjs";
import { setup, SETTLE } from "./harness.mjs";

describe("views message", () => {
  test("landing page: pathname, empty previousPage, referrer, not refreshed, its title, no articleId", () => {
    const t = setup({ referrer: "https://search.example/?q=x", title: "Home" });
    t.go("/");
    assert.equal(t.ws.sockets.length, 1, "a view opens the socket lazily");
    assert.equal(t.ws.last.url, "ws://example.test/ws");
    t.open();
    assert.deepEqual(t.sent("views"), [
      { message: "views", currentPage: "/", previousPage: "", referrer: "https://search.example/?q=x", refreshed: false, articleTitle: "Home" },
    ]);
    assert.deepEqual(t.errors, []);
  });

  test("in-app navigation: previous pathname, empty referrer, refreshed false, the new title", () => {
    const t = setup({ referrer: "https://ref.example/", title: "Home" });
    t.win.performance.getEntriesByType = () => [{ type: "reload" }];
    t.go("/");
    t.open();
    t.go("/posts/my-post/", { title: "My post" });
    const [landing, second] = t.sent("views");
    assert.equal(landing.refreshed, true);
    assert.deepEqual(second, {
      message: "views",
      currentPage: "/posts/my-post/",
      previousPage: "/",
      referrer: "",
      refreshed: false,
      articleTitle: "My post",
    });
  });

  test("previousPage: always empty on landing, else prevLocation or the last path seen", () => {
    const t = setup();
    // a plain-site caller may pass odd arguments; landing still has no previous page
    t.lc.onRouteUpdate({ location: { pathname: "/" }, prevLocation: { pathname: "/elsewhere" } });
    // and one that omits prevLocation still gets the previous path
    t.lc.onRouteUpdate({ location: { pathname: "/pages/about" } });
    t.doc.title = "About";
    t.clock.advance(SETTLE);
    t.open();
    assert.deepEqual(t.sent("views").map((m) => m.previousPage), ["", "/"]);
  });

  test("reload detection uses Navigation Timing, falling back to performance.navigation", () => {
    const a = setup({ options: { performance: { getEntriesByType: () => [{ type: "reload" }] } } });
    a.go("/");
    a.open();
    assert.equal(a.sent("views")[0].refreshed, true);

    const b = setup({ options: { performance: { getEntriesByType: () => [], navigation: { type: 1 } } } });
    b.go("/");
    b.open();
    assert.equal(b.sent("views")[0].refreshed, true, "legacy performance.navigation.type === 1");

    const c = setup({ options: { performance: { navigation: { type: 0 } } } });
    c.go("/");
    c.open();
    assert.equal(c.sent("views")[0].refreshed, false);

    const d = setup({ options: { performance: { getEntriesByType: () => [{ type: "back_forward" }], navigation: { type: 1 } } } });
    d.go("/");
    d.open();
    assert.equal(d.sent("views")[0].refreshed, false, "the modern entry wins over the legacy API");
  });

  test("a path alone names no post: the server classifies it (--page, --path-pattern)", () => {
    const t = setup({ title: "Hello" });
    t.go("/demo/posts/hello-world");
    t.go("/pages/about", { title: "About" });
    t.open();
    assert.deepEqual(
      t.sent("views").map((m) => [m.currentPage, m.articleTitle, "articleId" in m]),
      [["/demo/posts/hello-world", "Hello", false], ["/pages/about", "About", false]],
    );
  });

  test("data-article-id / data-article-title win over the path and document.title", () => {
    const t = setup({
      title: "Page title",
      elements: [el({ "data-article-id": "real-id", "data-article-title": "Real title" })],
    });
    t.go("/posts/slug-in-url");
    t.open();
    const [msg] = t.sent("views");
    assert.equal(msg.articleId, "real-id");
    assert.equal(msg.articleTitle, "Real title");

    // without data-article-title the title falls back to document.title
    const u = setup({ title: "Doc title", elements: [el({ "data-article-id": "x" })] });
    u.go("/somewhere");
    u.open();
    assert.equal(u.sent("views")[0].articleId, "x");
    assert.equal(u.sent("views")[0].articleTitle, "Doc title");
  });

  test("the Gatsby builds keep the seed's rule: a post's slug after /posts/ anywhere", () => {
    const t = setup({ options: { postsFromPath: true }, title: "Post" });
    t.go("/blog/posts/caf%C3%A9/");
    t.open();
    t.go("/tags/x", { title: "Tag" });
    const [post, tag] = t.sent("views");
    assert.equal(post.articleId, "café");
    assert.equal(tag.articleId, undefined); // classified by the server, by its path
    const u = setup({ title: "Post" }); // the tag: the server's --path-pattern decides
    u.go("/blog/posts/x/");
    u.open();
    assert.equal(u.sent("views")[0].articleId, undefined);
  });

  test("the page is read after render: DOM added after onRouteUpdate is still seen", () => {
    const t = setup({ title: "Old" });
    t.go("/posts/a", { settle: false });
    // Gatsby / react-helmet update the DOM and title after the call returns
    t.doc.elements.push(el({ "data-article-id": "late-id" }));
    t.doc.title = "New";
    t.clock.advance(SETTLE);
    t.open();
    assert.equal(t.sent("views")[0].articleId, "late-id");
    assert.equal(t.sent("views")[0].articleTitle, "New");
  });

  test("long strings are truncated to the server limits without splitting surrogate pairs", () => {
    const longId = "a".repeat(255) + "😀" + "b".repeat(10); // emoji straddles position 256
    const t = setup({ title: "t".repeat(300), elements: [el({ "data-article-id": longId })] });
    t.go("/" + "p".repeat(3000));
    t.open();
    const [msg] = t.sent("views");
    assert.equal(msg.articleId, "a".repeat(255), "the lone high surrogate is dropped");
    assert.equal(msg.articleTitle.length, 256);
    assert.equal(msg.currentPage.length, 2048);
  });

  test("a views frame never exceeds 4096 bytes: referrer and previous page give way first", () => {
    const t = setup({
      title: "é".repeat(300), // 2 bytes each in UTF-8
      referrer: "https://r.example/" + "€".repeat(3000), // 3 bytes each
      elements: [el({ "data-article-id": "x" })],
    });
    const path = "/posts/x/" + "p".repeat(2100);
    t.go(path);
    t.go(path + "/again", { title: "è".repeat(300) });
    t.open();
    const frames = t.ws.last.sent;
    assert.equal(frames.length, 2);
    for (const frame of frames) {
      const bytes = Buffer.byteLength(frame, "utf8");
      assert.ok(bytes <= 4096, `frame is ${bytes} bytes`);
      assert.ok(bytes > 3800, `no needless cutting: ${bytes} bytes`);
    }
    const [landing, next] = frames.map((f) => JSON.parse(f));
    assert.equal(landing.currentPage.length, 2048, "the current page is kept whole");
    assert.equal(landing.articleTitle, "é".repeat(256));
    assert.ok(landing.referrer.length < 2048 && landing.referrer.startsWith("https://r.example/"));
    assert.equal(next.currentPage.length, 2048);
    assert.ok(next.previousPage.length < 2048 && next.previousPage.startsWith("/posts/x/"));
  });

  test("even a current page too big for a frame on its own is cut to fit", () => {
    const t = setup({ title: "€".repeat(300), referrer: "https://r.example/" + "€".repeat(3000), elements: [el({ "data-article-id": "x" })] });
    t.go("/posts/x/" + "€".repeat(2100)); // 3 bytes per character: ~6 KB of path
    t.open();
    const [frame] = t.ws.last.sent;
    const msg = JSON.parse(frame);
    assert.ok(Buffer.byteLength(frame, "utf8") <= 4096);
    assert.equal(msg.referrer, "");
    assert.equal(msg.articleTitle, "");
    assert.ok(msg.currentPage.startsWith("/posts/x/€") && msg.currentPage.length > 1000);
    assert.equal(msg.articleId, "x");
  });

  test("control characters, which the server refuses, are replaced", () => {
    const t = setup({ elements: [el({ "data-article-id": "id\u0000x", "data-article-title": "Line one\nline two\t" })] });
    t.go("/posts/x");
    t.open();
    const [msg] = t.sent("views");
    assert.equal(msg.articleId, "id x");
    assert.equal(msg.articleTitle, "Line one line two");
  });

  test("C1 controls, line and paragraph separators and lone surrogates are replaced too", () => {
    // found by a hostile trial: each of these made the server refuse the whole message
    const t = setup({
      elements: [
        el({ "data-article-id": "a\u0085b\u2028c", "data-article-title": "half \ud83d here \udc00, whole \ud83d\ude00" }),
        el({ "data-livecount": "good" }),
        el({ "data-livecount": "bad\u2029one" }),
      ],
    });
    t.go("/posts/x");
    t.open();
    const [msg] = t.sent("views");
    assert.equal(msg.articleId, "a b c");
    assert.equal(msg.articleTitle, "half \ufffd here \ufffd, whole \ud83d\ude00");
    assert.deepEqual(t.sent("subscribe")[0].articleIds.sort(), ["bad one", "good"]);
  });

  test("onRouteUpdate does no DOM work or sending synchronously", () => {
    const t = setup({ elements: [el({ "data-livecount": "x" })] });
    t.go("/posts/x", { settle: false });
    assert.equal(t.doc.queries, 0, "no DOM queries during the call");
    assert.equal(t.ws.sockets.length, 0, "no socket opened during the call");
    t.clock.advance(SETTLE);
    assert.ok(t.doc.queries > 0);
    assert.equal(t.ws.sockets.length, 1);
  });
});

describe("server URL", () => {
  test("window.LIVECOUNT_URL, then GATSBY_LIVECOUNT_URL, then same host /ws (wss on https)", () => {
    const a = setup({ options: { envUrl: "wss://env.example/ws" } });
    a.win.LIVECOUNT_URL = "wss://window.example/ws";
    a.go("/");
    assert.equal(a.ws.last.url, "wss://window.example/ws");

    const b = setup({ options: { envUrl: "wss://env.example/ws" } });
    b.go("/");
    assert.equal(b.ws.last.url, "wss://env.example/ws");

    const c = setup({ protocol: "https:" });
    c.go("/");
    assert.equal(c.ws.last.url, "wss://example.test/ws");

    const d = setup({ options: { envUrl: "https://count.example/ws" } });
    d.go("/");
    assert.equal(d.ws.last.url, "wss://count.example/ws", "http(s) URLs are turned into ws(s)");
  });
});

describe("offline queue", () => {
  test("views made while disconnected are sent in order once open", () => {
    const t = setup();
    t.go("/");
    t.go("/posts/a", { title: "A" });
    t.go("/posts/b", { title: "B" });
    assert.equal(t.ws.sockets.length, 1, "one socket per tab, not one per message");
    assert.equal(t.ws.last.sent.length, 0);
    t.open();
    assert.deepEqual(t.sent("views").map((m) => m.currentPage), ["/", "/posts/a", "/posts/b"]);
  });

  test("the queue is bounded and drops the oldest", () => {
    const t = setup({ options: { queueLimit: 3 } });
    for (let i = 1; i <= 5; i++) t.go("/posts/p" + i, { title: "P" + i });
    t.open();
    assert.deepEqual(t.sent("views").map((m) => m.currentPage), ["/posts/p3", "/posts/p4", "/posts/p5"]);
  });

  test("views made during an outage are flushed after reconnecting", () => {
    const t = setup({ elements: [el({ "data-livecount": "a" })] });
    t.go("/");
    t.open();
    t.ws.last.serverClose();
    t.go("/posts/a", { title: "A" });
    t.go("/posts/b", { title: "B" });
    assert.equal(t.ws.sockets.length, 1, "waits for the backoff timer");
    t.reconnect();
    assert.equal(t.ws.sockets.length, 2);
    t.open();
    assert.deepEqual(t.ws.last.messages().filter((m) => m.message === "views").map((m) => m.currentPage), [
      "/posts/a",
      "/posts/b",
    ]);
  });

  test("a socket stuck connecting is abandoned and retried", () => {
    const t = setup({ options: { connectTimeout: 5000 } });
    t.go("/");
    assert.equal(t.ws.sockets.length, 1);
    t.clock.advance(5000);
    assert.equal(t.ws.sockets[0].readyState, 3, "the stuck socket is closed");
    t.reconnect();
    assert.equal(t.ws.sockets.length, 2, "a new socket is tried");
    t.open();
    assert.deepEqual(t.ws.last.messages().map((m) => m.currentPage), ["/"]);
  });
});

describe("reconnect backoff", () => {
  // Fail every connect and record the delay before each new attempt.
  function failureDelays(t, n) {
    const delays = [];
    t.go("/");
    for (let i = 0; i < n; i++) {
      t.ws.last.serverClose();
      delays.push(t.reconnect());
    }
    return delays;
  }

  test("grows exponentially and is capped", () => {
    const t = setup({ random: () => 0.5, options: { backoffBase: 1000, backoffMax: 30000 } });
    // ceiling = min(30000, 1000 * 2^k); delay = ceiling * (0.5 + 0.5 * random)
    assert.deepEqual(failureDelays(t, 7), [750, 1500, 3000, 6000, 12000, 22500, 22500]);
  });

  test("has jitter drawn from the upper half of the ceiling", () => {
    const low = setup({ random: () => 0, options: { backoffBase: 1000, backoffMax: 30000 } });
    const high = setup({ random: () => 0.999, options: { backoffBase: 1000, backoffMax: 30000 } });
    assert.deepEqual(failureDelays(low, 3), [500, 1000, 2000]);
    assert.deepEqual(failureDelays(high, 3), [1000, 1999, 3998]);
    const mixed = setup({ random: sequenceRandom(0, 0.999), options: { backoffBase: 1000, backoffMax: 30000 } });
    const [d1, d2, d3] = failureDelays(mixed, 3);
    assert.deepEqual([d1, d2, d3], [500, 1999, 2000]);
    const capped = failureDelays(setup({ random: () => 0.999, options: { backoffBase: 1000, backoffMax: 4000 } }), 6);
    assert.ok(capped.every((d) => d <= 4000), "never above the cap: " + capped);
  });

  test("resets after a successful open", () => {
    const t = setup({
      random: () => 0.5,
      elements: [el({ "data-livecount": "a" })], // gives the client a reason to reconnect
      options: { backoffBase: 1000, backoffMax: 30000 },
    });
    assert.deepEqual(failureDelays(t, 4), [750, 1500, 3000, 6000]);
    t.open();
    assert.equal(t.lc.status, "open");
    t.ws.last.serverClose();
    assert.equal(t.reconnect(), 750);
  });

  test("a hidden tab (no counters) reconnects only once shown, to read again", () => {
    const t = setup();
    t.go("/");
    t.open();
    t.doc.setVisibility("hidden");
    t.clock.advance(300);
    t.ws.last.serverClose();
    t.clock.advance(120_000);
    assert.equal(t.ws.sockets.length, 1, "a hidden tab is no reader: nothing to reconnect for");
    t.doc.setVisibility("visible");
    t.clock.advance(300);
    assert.equal(t.ws.sockets.length, 2, "shown again, it reconnects to be counted as reading");
  });

  test("a tab that never sent a view opens nothing", () => {
    const t = setup();
    t.doc.setVisibility("hidden");
    t.doc.setVisibility("visible");
    t.clock.advance(120_000);
    assert.equal(t.ws.sockets.length, 0);
  });
});

describe("live counters", () => {
  test("subscribes to every id on the page and updates it from pushes and views replies", () => {
    const total = el({ "data-livecount": "hello-world" }, "–");
    const unique = el({ "data-livecount-unique": "hello-world" }, "–");
    const other = el({ "data-livecount": "other" }, "–");
    const t = setup({ elements: [total, unique, other] });
    t.go("/posts/hello-world");
    t.open();
    const subs = t.sent("subscribe");
    assert.equal(subs.length, 1);
    assert.deepEqual(subs[0].articleIds.sort(), ["hello-world", "other"]);

    t.ws.last.receive({ message: "count", articleId: "hello-world", totalViews: 42, uniqueViews: 7 });
    assert.equal(total.textContent, "42");
    assert.equal(unique.textContent, "7");
    assert.equal(other.textContent, "–", "other ids are untouched");

    t.ws.last.receive({ message: "views", articleId: "hello-world", totalViews: 43, uniqueViews: 8 });
    assert.equal(total.textContent, "43");
    assert.equal(unique.textContent, "8");

    t.ws.last.receive({ message: "views", pageName: "Home_Page", totalViews: 1, uniqueViews: 1 });
    t.ws.last.receive("not json");
    t.ws.last.receive({ message: "error", error: "unrecognised_page", detail: "x" });
    assert.equal(total.textContent, "43");
    assert.deepEqual(t.errors, []);
  });

  test("follows counters as routes change: unsubscribes what left, subscribes what came", () => {
    const t = setup({ elements: [el({ "data-livecount": "a" })] });
    t.go("/posts/a");
    t.open();
    t.doc.elements = [el({ "data-livecount": "b" }), el({ "data-livecount-unique": "b" })];
    t.go("/posts/b");
    const msgs = t.ws.last.messages().filter((m) => m.message !== "views");
    assert.deepEqual(msgs, [
      { message: "subscribe", articleIds: ["a"], pageNames: [] },
      { message: "unsubscribe", articleIds: ["a"], pageNames: [] },
      { message: "subscribe", articleIds: ["b"], pageNames: [] },
    ]);
  });

  test("counters rendered after the first pass are picked up on the next frame", () => {
    const t = setup();
    t.go("/posts/a", { settle: false });
    t.clock.advance(0); // first pass: nothing on the page yet
    assert.equal(t.ws.sockets.length, 0);
    t.doc.elements.push(el({ "data-livecount": "a" }));
    t.clock.advance(SETTLE);
    t.open();
    assert.deepEqual(t.sent("subscribe")[0].articleIds, ["a"]);
  });

  test("re-subscribes to what the page shows after a reconnect", () => {
    const t = setup({ elements: [el({ "data-livecount": "a" }), el({ "data-livecount-unique": "c" })] });
    t.go("/");
    t.open();
    t.ws.last.serverClose();
    t.reconnect(); // counters on the page are reason enough to reconnect
    assert.equal(t.ws.sockets.length, 2);
    t.open();
    const subs = t.ws.last.messages().filter((m) => m.message === "subscribe");
    assert.equal(subs.length, 1);
    assert.deepEqual(subs[0].articleIds.sort(), ["a", "c"]);
    // the landing view was already delivered: it is resumed (read again), not counted twice
    assert.deepEqual(t.ws.last.messages().map((m) => m.message), ["views", "subscribe"]);
    assert.equal(t.ws.last.messages()[0].resumed, true);
  });

  test("a refusal for rate asks again for every counter (found by a hostile trial)", () => {
    const t = setup({ elements: [el({ "data-livecount": "a" }), el({ "data-livecount": "b" })] });
    t.go("/");
    t.open();
    assert.equal(t.sent("subscribe").length, 1);
    t.ws.last.receive({ message: "error", error: "rate_limited", detail: "slow down" });
    t.ws.last.receive({ message: "error", error: "rate_limited", detail: "slow down" });
    t.clock.advance(2100);
    const subs = t.sent("subscribe");
    assert.equal(subs.length, 2, "once, however many refusals came");
    assert.deepEqual(subs[1].articleIds.sort(), ["a", "b"]);
  });

  test("a revisited page shows the last known count at once", () => {
    const first = el({ "data-livecount": "a" }, "–");
    const t = setup({ elements: [first] });
    t.go("/posts/a");
    t.open();
    t.ws.last.receive({ message: "count", articleId: "a", totalViews: 5, uniqueViews: 2 });
    t.doc.elements = [];
    t.go("/");
    const again = el({ "data-livecount": "a" }, "–");
    t.doc.elements = [again];
    t.go("/posts/a", { settle: false });
    t.clock.advance(0);
    assert.equal(again.textContent, "5");
  });

  test("large subscriptions are split within 100 ids and 4096 bytes per message", () => {
    const ids = Array.from({ length: 250 }, (_, i) => "id-" + i);
    const long = Array.from({ length: 30 }, (_, i) => String(i).padStart(3, "0") + "ж".repeat(250)); // ~500 bytes each
    const t = setup({ elements: [...ids, ...long].map((id) => el({ "data-livecount": id })) });
    t.go("/");
    t.open();
    const frames = t.ws.last.sent.filter((f) => JSON.parse(f).message === "subscribe");
    const batches = frames.map((f) => JSON.parse(f).articleIds);
    assert.ok(frames.every((f) => Buffer.byteLength(f, "utf8") <= 4096), "every frame fits");
    assert.ok(batches.every((b) => b.length >= 1 && b.length <= 100), "1..100 ids per message");
    assert.deepEqual(batches.flat().sort(), [...ids, ...long].sort(), "every id exactly once");
    assert.ok(batches.length >= 3 + 4, "split by count and by size: " + batches.length);
  });

  test("clips counter ids like the server does", () => {
    const id = "i".repeat(300);
    const node = el({ "data-livecount": id });
    const t = setup({ elements: [node] });
    t.go("/");
    t.open();
    assert.deepEqual(t.sent("subscribe")[0].articleIds, ["i".repeat(256)]);
    t.ws.last.receive({ message: "count", articleId: "i".repeat(256), totalViews: 3, uniqueViews: 1 });
    assert.equal(node.textContent, "3");
  });
});

describe("status event", () => {
  test("dispatches livecount:status with open / closed on changes only", () => {
    const t = setup();
    t.go("/");
    t.open();
    t.ws.last.serverClose();
    t.go("/");
    t.ws.last.serverClose();
    t.reconnect();
    const details = t.win.events.filter((e) => e.type === "livecount:status").map((e) => e.detail);
    assert.deepEqual(details, ["open", "closed"]);
    t.open();
    assert.equal(t.win.events.at(-1).detail, "open");
  });
});

describe("Do Not Track", () => {
  test("with LIVECOUNT_RESPECT_DNT and doNotTrack=1 no views are sent, but counts still show", () => {
    const counter = el({ "data-livecount": "a" }, "–");
    const t = setup({ elements: [counter] });
    t.win.LIVECOUNT_RESPECT_DNT = true;
    t.win.navigator.doNotTrack = "1";
    t.go("/posts/a");
    t.go("/posts/b");
    t.open();
    assert.deepEqual(t.sent("views"), []);
    assert.equal(t.sent("subscribe").length, 1);
    t.ws.last.receive({ message: "count", articleId: "a", totalViews: 9, uniqueViews: 4 });
    assert.equal(counter.textContent, "9");
  });

  test("without counters a DNT visitor never even opens a socket", () => {
    const t = setup();
    t.win.LIVECOUNT_RESPECT_DNT = true;
    t.win.navigator.doNotTrack = "1";
    t.go("/posts/a");
    assert.equal(t.ws.sockets.length, 0);
  });

  test("doNotTrack alone is ignored unless the site opts in", () => {
    const t = setup();
    t.win.navigator.doNotTrack = "1";
    t.go("/posts/a");
    t.open();
    assert.equal(t.sent("views").length, 1);
  });
});

describe("never throws", () => {
  test("a throwing WebSocket constructor is retried with backoff, and nothing escapes", () => {
    const t = setup({ random: () => 0.5, options: { backoffBase: 1000, backoffMax: 30000 } });
    t.ws.control.throwOnConstruct = true;
    assert.doesNotThrow(() => {
      t.go("/posts/a", { settle: false });
      t.clock.advance(16); // the view is due on the next frame
    });
    assert.equal(t.ws.control.attempts, 1);
    assert.equal(t.lc.status, "closed");
    // retries are scheduled with backoff, not in a tight loop
    t.clock.advance(749);
    assert.equal(t.ws.control.attempts, 1);
    t.clock.advance(1);
    assert.equal(t.ws.control.attempts, 2);
    t.clock.advance(1499);
    assert.equal(t.ws.control.attempts, 2);
    // once the constructor works, the queued view gets through
    t.ws.control.throwOnConstruct = false;
    t.clock.advance(1);
    assert.equal(t.ws.control.attempts, 3);
    t.open();
    assert.equal(t.sent("views")[0].currentPage, "/posts/a");
  });

  test("broken environments and bad arguments never throw", () => {
    const clock = createClock();
    assert.doesNotThrow(() => {
      // a window with nothing on it: no document, location or WebSocket
      const lc = createLivecount({ window: {}, setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout });
      lc.onRouteUpdate(undefined);
      lc.onRouteUpdate({ location: null });
      lc.scan();
      clock.advance(SETTLE);
      lc.close();
    });

    const t = setup();
    t.doc.querySelectorAll = () => {
      throw new Error("DOM exploded");
    };
    assert.doesNotThrow(() => {
      t.go("/posts/a");
      t.open();
      t.ws.last.receive({ message: "count", articleId: "a", totalViews: 1, uniqueViews: 1 });
    });
    assert.equal(t.sent("views")[0].currentPage, "/posts/a", "the view still goes out, with its path");
    assert.ok(t.errors.length > 0, "errors are swallowed and reported to onError");
  });

  test("the module-level Gatsby API is a safe wrapper over the factory", () => {
    const saved = globalThis.window;
    const savedEnv = process.env.GATSBY_LIVECOUNT_URL;
    process.env.GATSBY_LIVECOUNT_URL = "wss://env.example/ws";
    try {
      // no window at all (SSR, node)
      delete globalThis.window;
      __livecountReset();
      assert.doesNotThrow(() => onRouteUpdate({ location: { pathname: "/" }, prevLocation: null }));

      // a window whose properties throw on access
      globalThis.window = {
        get document() {
          throw new Error("no document for you");
        },
      };
      __livecountReset();
      assert.doesNotThrow(() => onRouteUpdate(undefined));

      // a browser-like window whose WebSocket throws
      const clock = createClock();
      const ws = createWebSocketClass();
      ws.control.throwOnConstruct = true;
      const doc = createDocument({ title: "Post x", elements: [el({ "data-article-id": "x" })] });
      globalThis.window = createWindow({ document: doc, clock, WebSocket: ws.WebSocket });
      __livecountReset();
      assert.doesNotThrow(() => {
        onRouteUpdate({ location: { pathname: "/posts/x" }, prevLocation: null });
        clock.advance(SETTLE);
      });
      assert.equal(globalThis.window.events.at(-1).detail, "closed");

      // and once sockets work, the wrapper really sends through the factory
      ws.control.throwOnConstruct = false;
      for (let i = 0; i < 60_000 && ws.sockets.length === 0; i++) clock.advance(1);
      ws.last.serverOpen();
      assert.equal(ws.last.messages()[0].articleId, "x");
      assert.equal(ws.last.url, "wss://env.example/ws", "GATSBY_LIVECOUNT_URL from process.env");
      __livecountReset();
      assert.equal(ws.last.readyState, 3, "reset closes the socket");
    } finally {
      if (saved === undefined) delete globalThis.window;
      else globalThis.window = saved;
      if (savedEnv === undefined) delete process.env.GATSBY_LIVECOUNT_URL;
      else process.env.GATSBY_LIVECOUNT_URL = savedEnv;
      __livecountReset();
    }
  });
});

describe("demo.html", () => {
  // Browser tests drive the demo through these; keep them stable.
  test("imports the served module and has the stable ids and article markup", async () => {
    const { readFile } = await import("node:fs/promises");
    const html = await readFile(new URL("../../client/demo.html", import.meta.url), "utf8");
    assert.match(html, /import \{ onRouteUpdate \} from "\/client\/livecount\.mjs"/);
    for (const id of ["total", "unique", "nav-home", "nav-hello", "nav-second", "status", "view"]) {
      assert.match(html, new RegExp(`id="${id}"`), `missing id="${id}"`);
    }
    assert.match(html, /id="total"[^>]*data-livecount="hello-world"/);
    assert.match(html, /id="unique"[^>]*data-livecount-unique="hello-world"/);
    assert.match(html, /href="\/demo\/posts\/hello-world"/);
    assert.match(html, /data-article-id="hello-world" data-article-title="Hello, world"/);
    assert.match(html, /data-article-id="second-post"/);
    assert.match(html, /addEventListener\("livecount:status"/);
    assert.match(html, /addEventListener\("popstate"/);
  });
});

describe("drop-in gatsby-browser.js", () => {
  test("exports only Gatsby browser API names", () => {
    // Gatsby reports any other export of gatsby-browser.js as an unknown API.
    assert.deepEqual(Object.keys(module).sort(), ["onPreRouteUpdate", "onRouteUpdate"]);
  });
});
