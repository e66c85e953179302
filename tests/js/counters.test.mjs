// Counters that name no post: this page's own (whatever the server counted it as),
// a page by its path or name, counters rendered later, and the server's refusals a
// site owner must hear of. Run: node --test tests/js/
import { test, describe } from "node:test";
import assert from "node:assert/strict";

import { el } from "./fakes.mjs";
import { setup, SETTLE } from "./harness.mjs";

const reply = (fields) => ({ message: "views", totalViews: 3, uniqueViews: 2, readingNow: 1, ...fields });

describe("this page's counter: data-livecount with no id", () => {
  test("shows what the server counted the page as, from the answer to its view", () => {
    const total = el({ "data-livecount": "" }, "–");
    const unique = el({ "data-livecount-unique": "" }, "–");
    const now = el({ "data-livecount-now": "" }, "–");
    const t = setup({ elements: [total, unique, now] });
    t.go("/blog/hello/");
    t.open();
    assert.deepEqual(t.sent("subscribe"), [], "its view has the server push its counts: no subscription");
    assert.equal(total.textContent, "–");
    t.ws.last.receive(reply({ articleId: "hello" }));
    assert.deepEqual([total.textContent, unique.textContent, now.textContent], ["3", "2", "1"]);
    t.ws.last.receive({ message: "count", articleId: "hello", totalViews: 4, uniqueViews: 3, readingNow: 2 });
    assert.deepEqual([total.textContent, unique.textContent, now.textContent], ["4", "3", "2"]);
    t.ws.last.receive({ message: "count", articleId: "other", totalViews: 9, uniqueViews: 9, readingNow: 9 });
    assert.equal(total.textContent, "4", "another post's push is not this page's");
  });

  test("a page the server names (a path of its own, or a --page) fills it too", () => {
    const total = el({ "data-livecount": "" }, "–");
    const t = setup({ elements: [total] });
    t.go("/about/");
    t.open();
    t.ws.last.receive(reply({ pageName: "/about", totalViews: 7 }));
    assert.equal(total.textContent, "7");
    t.ws.last.receive({ message: "count", pageName: "/about", totalViews: 8, uniqueViews: 2, readingNow: 1 });
    assert.equal(total.textContent, "8");
  });

  test("follows the page across in-app navigations; an earlier route's answer is not the new page's", () => {
    const footer = el({ "data-livecount": "" }, "–");
    const t = setup({ elements: [footer] });
    t.go("/");
    t.open();
    t.ws.last.receive(reply({ pageName: "Home_Page", totalViews: 5 }));
    assert.equal(footer.textContent, "5");
    t.go("/blog/a/"); // its view waits for the new title
    t.ws.last.receive(reply({ pageName: "Home_Page", totalViews: 6 })); // a late answer to the last route
    t.ws.last.receive({ message: "count", pageName: "Home_Page", totalViews: 7, uniqueViews: 2, readingNow: 0 });
    assert.equal(footer.textContent, "5", "the home page's answers no longer paint this page");
    t.doc.title = "A";
    t.ws.last.receive(reply({ articleId: "a", totalViews: 1 }));
    assert.equal(footer.textContent, "1");
  });

  test("a bot's page shows its counts and is marked not counted", () => {
    const total = el({ "data-livecount": "" }, "–");
    const t = setup({ elements: [total] });
    t.go("/blog/a/");
    t.open();
    t.ws.last.receive(reply({ articleId: "a", counted: false, reason: "bot" }));
    assert.equal(total.textContent, "3");
    assert.equal(total.getAttribute("data-livecount-counted"), "false");
  });
});

describe("a page's counter: data-livecount-page", () => {
  test("subscribes by the path as written and matches the server's normalised name", () => {
    const about = el({ "data-livecount": "", "data-livecount-page": "/about/index.html" }, "–");
    const again = el({ "data-livecount-unique": "", "data-livecount-page": "//about/" }, "–");
    const home = el({ "data-livecount": "", "data-livecount-page": "Home_Page" }, "–");
    const post = el({ "data-livecount": "x" }, "–");
    const t = setup({ elements: [about, again, home, post] });
    t.go("/");
    t.open();
    assert.deepEqual(t.sent("subscribe"), [
      { message: "subscribe", articleIds: ["x"], pageNames: ["/about/index.html", "Home_Page"] },
    ]);
    t.ws.last.receive({ message: "count", pageName: "/about", totalViews: 4, uniqueViews: 3, readingNow: 0 });
    t.ws.last.receive({ message: "count", articleId: "Home_Page", totalViews: 99, uniqueViews: 99, readingNow: 0 });
    t.ws.last.receive({ message: "count", pageName: "Home_Page", totalViews: 2, uniqueViews: 2, readingNow: 0 });
    assert.deepEqual([about.textContent, again.textContent, home.textContent, post.textContent], ["4", "3", "2", "–"]);
  });

  test("a path the server would refuse is not asked for", () => {
    const t = setup({
      elements: [
        el({ "data-livecount": "", "data-livecount-page": "/bad%FF" }),
        el({ "data-livecount": "", "data-livecount-page": "/nul%00" }),
        el({ "data-livecount": "x" }),
      ],
    });
    t.go("/");
    t.open();
    assert.deepEqual(t.sent("subscribe"), [{ message: "subscribe", articleIds: ["x"], pageNames: [] }]);
  });
});

describe("counters rendered later", () => {
  test("are found on the next frame after a render adds them, without a route change", () => {
    const t = setup();
    t.go("/");
    t.open();
    assert.deepEqual(t.sent("subscribe"), []);
    const late = el({ "data-livecount": "late" }, "–");
    t.doc.render(late);
    assert.deepEqual(t.sent("subscribe"), [], "nothing within the render");
    t.clock.advance(SETTLE);
    assert.deepEqual(t.sent("subscribe"), [{ message: "subscribe", articleIds: ["late"], pageNames: [] }]);
    t.ws.last.receive({ message: "count", articleId: "late", totalViews: 2, uniqueViews: 1, readingNow: 0 });
    assert.equal(late.textContent, "2");
  });

  test("many mutations in a frame cost one scan; a counter's own text change none", () => {
    const t = setup();
    t.go("/");
    t.open();
    const before = t.doc.queries;
    for (let i = 0; i < 10; i++) t.doc.render(el({ "data-livecount": "p" + i }));
    t.clock.advance(SETTLE);
    assert.equal(t.doc.queries - before, 1);
    const counter = t.doc.elements[0];
    for (const o of [...t.doc.treeObservers]) o.notify([{ type: "childList", target: counter, addedNodes: [{}] }]);
    t.clock.advance(SETTLE);
    assert.equal(t.doc.queries - before, 1);
  });

  test("the plugin's client (no DOM) observes nothing; close() stops observing", () => {
    const plugin = setup({ options: { dom: false } });
    plugin.go("/");
    assert.equal(plugin.doc.treeObservers.size, 0);
    const t = setup();
    t.go("/");
    assert.equal(t.doc.treeObservers.size, 1);
    t.lc.close();
    assert.equal(t.doc.treeObservers.size, 0);
  });
});

describe("refusals the site owner must hear of", () => {
  test("one console warning per kind and page load, in the server's words; nothing is shown", (t) => {
    const said = [];
    t.mock.method(console, "warn", (...args) => said.push(args.join(" ")));
    const total = el({ "data-livecount": "" }, "–");
    const c = setup({ elements: [total] });
    c.go("/nowhere/");
    c.open();
    const refusal = {
      message: "error",
      error: "unrecognised_page",
      detail: "/nowhere is no post or page: add a --path-pattern, or set --unmatched-paths count",
    };
    c.ws.last.receive(refusal);
    c.go("/nowhere/else/", { title: "Else" });
    c.ws.last.receive(refusal);
    c.ws.last.receive({ message: "error", error: "too_many_pages", detail: "this site has 10,000 pages" });
    c.ws.last.receive({ message: "error", error: "too_many_pages", detail: "this site has 10,000 pages" });
    c.ws.last.receive({ message: "error", error: "rate_limited", detail: "slow down" });
    assert.deepEqual(said, [
      "livecount: /nowhere is no post or page: add a --path-pattern, or set --unmatched-paths count (unrecognised_page)",
      "livecount: this site has 10,000 pages (too_many_pages)",
    ]);
    assert.equal(total.textContent, "–");
    assert.deepEqual(c.errors, []);
  });
});
