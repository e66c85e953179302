// Reading now, hidden tabs, and views the server did not count. Run: node --test tests/js/
import { test, describe } from "node:test";
import assert from "node:assert/strict";

import { el } from "./fakes.mjs";
import { setup } from "./harness.mjs";

describe("reading now", () => {
  test("data-livecount-now elements are followed and filled from count and views messages", () => {
    const now = el({ "data-livecount-now": "a" }, "–");
    const total = el({ "data-livecount": "a" }, "–");
    const t = setup({ elements: [now, total] });
    t.go("/posts/a");
    t.open();
    assert.deepEqual(t.sent("subscribe")[0].articleIds, ["a"]);
    t.ws.last.receive({ message: "views", articleId: "a", totalViews: 3, uniqueViews: 2, readingNow: 1 });
    assert.equal(now.textContent, "1");
    t.ws.last.receive({ message: "count", articleId: "a", totalViews: 3, uniqueViews: 2, readingNow: 0 });
    assert.equal(now.textContent, "0", "0 is a number to show, not a missing one");
    assert.equal(total.textContent, "3");
  });

  test("a server that sends no readingNow leaves the element as it was", () => {
    const now = el({ "data-livecount-now": "a" }, "–");
    const t = setup({ elements: [now] });
    t.go("/posts/a");
    t.open();
    t.ws.last.receive({ message: "count", articleId: "a", totalViews: 5, uniqueViews: 4 });
    assert.equal(now.textContent, "–");
    assert.deepEqual(t.lc.snapshot("a"), { totalViews: 5, uniqueViews: 4, readingNow: null, counted: null });
    // and a later count without it keeps the last number the server did send
    t.ws.last.receive({ message: "count", articleId: "a", totalViews: 5, uniqueViews: 4, readingNow: 2 });
    t.ws.last.receive({ message: "count", articleId: "a", totalViews: 6, uniqueViews: 4 });
    assert.equal(now.textContent, "2");
  });

  test("nonsense numbers are ignored, never shown", () => {
    const now = el({ "data-livecount-now": "a" }, "–");
    const t = setup({ elements: [now] });
    t.go("/");
    t.open();
    t.ws.last.receive({ message: "count", articleId: "a", totalViews: "7", readingNow: null });
    t.ws.last.receive('{"message":"count","articleId":"a","readingNow":1e999}');
    assert.equal(now.textContent, "–");
    assert.deepEqual(t.errors, []);
  });
});

describe("hidden tabs do not count as reading", () => {
  const visibility = (t) => t.sent("visibility").map((m) => m.visible);

  test("visibilitychange sends visible false, then true, once per change", () => {
    const t = setup();
    t.go("/posts/a");
    t.open();
    t.doc.setVisibility("hidden");
    t.doc.setVisibility("hidden");
    t.clock.advance(300);
    t.doc.setVisibility("visible");
    t.clock.advance(300);
    assert.deepEqual(t.sent("visibility"), [
      { message: "visibility", visible: false },
      { message: "visibility", visible: true },
    ]);
  });

  test("a tab flipped fast says only where it came to rest (found by a hostile trial)", () => {
    const t = setup();
    t.go("/posts/a");
    t.open();
    for (let i = 0; i < 100; i++) t.doc.setVisibility(i % 2 ? "visible" : "hidden");
    t.clock.advance(300);
    assert.deepEqual(t.sent("visibility"), [], "it ended visible, as the server believes");
    for (let i = 0; i < 51; i++) t.doc.setVisibility(i % 2 ? "visible" : "hidden");
    t.clock.advance(300);
    assert.deepEqual(t.sent("visibility"), [{ message: "visibility", visible: false }]);
  });

  test("a tab opened in the background says so before its first view", () => {
    const t = setup();
    t.doc.visibilityState = "hidden";
    t.go("/posts/a");
    t.open();
    assert.deepEqual(
      t.ws.last.messages().map((m) => m.message),
      ["visibility", "views"],
    );
    assert.deepEqual(visibility(t), [false]);
  });

  test("no socket is opened to say a tab is hidden; a new socket is told again", () => {
    const t = setup();
    t.doc.setVisibility("hidden");
    assert.equal(t.ws.sockets.length, 0, "visibility alone opens nothing");
    t.doc.setVisibility("visible");
    t.go("/posts/a");
    t.open();
    assert.deepEqual(visibility(t), [], "visible is what a new socket assumes");
    t.ws.last.serverClose();
    t.doc.setVisibility("hidden"); // while disconnected: nothing to send it on
    t.go("/posts/b", { title: "B" }); // work to do, so it reconnects
    t.reconnect();
    t.open();
    assert.deepEqual(t.ws.last.messages().map((m) => m.message), ["visibility", "views"]);
    assert.deepEqual(visibility(t), [false]);
  });

  test("a socket that reopens with nothing queued resumes the last view, not counting it", () => {
    const t = setup();
    t.go("/posts/a", { title: "A", post: "a" });
    t.open();
    assert.equal(t.sent("views").length, 1);
    t.ws.last.serverClose(); // a server restart
    t.reconnect();
    t.open();
    const resumed = t.ws.last.messages().filter((m) => m.message === "views");
    assert.equal(resumed.length, 1);
    assert.equal(resumed[0].articleId, "a");
    assert.equal(resumed[0].resumed, true, "the page reads again; the server counts nothing");
  });

  test("prerendering counts as hidden; close() stops listening", () => {
    const t = setup();
    t.go("/");
    t.open();
    t.doc.setVisibility("prerender");
    t.clock.advance(300);
    assert.deepEqual(visibility(t), [false]);
    assert.equal(t.doc.listenerCount("visibilitychange"), 1);
    t.lc.close();
    assert.equal(t.doc.listenerCount("visibilitychange"), 0);
  });
});

describe("views that were not counted", () => {
  test('counted: false marks the counters of that post and the root element, until a view counts', () => {
    const total = el({ "data-livecount": "a" }, "–");
    const now = el({ "data-livecount-now": "a" }, "–");
    const other = el({ "data-livecount": "b" }, "–");
    const t = setup({ elements: [total, now, other] });
    t.go("/posts/a");
    t.open();
    t.ws.last.receive({ message: "views", articleId: "a", totalViews: 0, uniqueViews: 0, readingNow: 0, counted: false, reason: "bot" });
    assert.equal(total.getAttribute("data-livecount-counted"), "false");
    assert.equal(now.getAttribute("data-livecount-counted"), "false");
    assert.equal(other.getAttribute("data-livecount-counted"), null, "only that post's counters");
    assert.equal(t.doc.documentElement.getAttribute("data-livecount-counted"), "false");
    assert.equal(total.textContent, "0", "the counts are still shown");
    assert.equal(t.lc.snapshot("a").counted, false);

    // pushes say nothing about this tab's view: the mark stays
    t.ws.last.receive({ message: "count", articleId: "a", totalViews: 1, uniqueViews: 1, readingNow: 1 });
    assert.equal(total.getAttribute("data-livecount-counted"), "false");

    t.ws.last.receive({ message: "views", articleId: "a", totalViews: 2, uniqueViews: 2, readingNow: 1 });
    assert.equal(total.getAttribute("data-livecount-counted"), null);
    assert.equal(t.doc.documentElement.getAttribute("data-livecount-counted"), null);
    assert.equal(t.lc.snapshot("a").counted, true);
  });

  test("a page view that was not counted marks the root element only", () => {
    const t = setup();
    t.go("/");
    t.open();
    t.ws.last.receive({ message: "views", pageName: "Home_Page", totalViews: 0, uniqueViews: 0, counted: false, reason: "bot" });
    assert.equal(t.doc.documentElement.getAttribute("data-livecount-counted"), "false");
  });

  test("a counter rendered later gets the mark from the last known answer", () => {
    const t = setup();
    t.go("/posts/a");
    t.open();
    t.ws.last.receive({ message: "views", articleId: "a", totalViews: 4, uniqueViews: 4, counted: false, reason: "bot" });
    const late = el({ "data-livecount-unique": "a" }, "–");
    t.doc.elements.push(late);
    t.lc.scan();
    assert.equal(late.textContent, "4");
    assert.equal(late.getAttribute("data-livecount-counted"), "false");
  });
});
