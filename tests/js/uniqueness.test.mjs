// The two uniqueness rules: the seed's ("seed", the default) and "tab".
// Run: node --test tests/js/
import { test, describe } from "node:test";
import assert from "node:assert/strict";

import { createStorage } from "./fakes.mjs";
import { setup } from "./harness.mjs";

// Landing on /, then in-app to posts a, b, a again, and home again.
function walk(t) {
  t.go("/");
  t.open();
  t.go("/posts/a", { title: "A", post: "a" });
  t.go("/posts/b", { title: "B", post: "b" });
  t.go("/posts/a", { title: "A", post: "a" });
  t.go("/", { title: "Home", post: null });
  return t.sent("views").map((m) => [m.articleId || m.currentPage, m.refreshed]);
}

describe("uniqueness", () => {
  test('"seed" (default): every in-app view is unique, only a reload is a repeat; nothing stored', () => {
    const storage = createStorage();
    const t = setup({ storage });
    assert.deepEqual(walk(t), [["/", false], ["a", false], ["b", false], ["a", false], ["/", false]]);
    assert.equal(storage.data.size, 0, "the seed's rule keeps nothing in the browser");
  });

  test('"tab": coming back to a post or page this tab has viewed is a repeat', () => {
    const storage = createStorage();
    const t = setup({ storage, options: { uniqueness: "tab" } });
    assert.deepEqual(walk(t), [["/", false], ["a", false], ["b", false], ["a", true], ["/", true]]);
    // only what was viewed, most recent last: no identifier, no time, no cookie
    assert.deepEqual(JSON.parse(storage.data.get("livecount:seen")), ["post:b", "post:a", "page:/"]);
    assert.deepEqual([...storage.data.keys()], ["livecount:seen"]);
  });

  test('"tab": the memory outlives a reload of the tab (sessionStorage), and a path is one page with or without its slash', () => {
    const storage = createStorage();
    const first = setup({ storage, options: { uniqueness: "tab" } });
    first.go("/pages/about/");
    first.open();
    const again = setup({ storage, options: { uniqueness: "tab" } }); // the same tab after a reload
    again.go("/pages/about");
    again.open();
    assert.equal(again.sent("views")[0].refreshed, true);
  });

  test('"tab" remembers at most 200 targets, forgetting the oldest', () => {
    const storage = createStorage();
    const t = setup({ storage, options: { uniqueness: "tab" } });
    t.go("/posts/p0");
    for (let i = 1; i <= 200; i++) t.go("/posts/p" + i, { title: "P" + i });
    const seen = JSON.parse(storage.data.get("livecount:seen"));
    assert.equal(seen.length, 200);
    assert.equal(seen.includes("post:p0"), false);
    t.go("/posts/p0", { title: "P0" });
    t.open();
    assert.equal(t.sent("views").at(-1).refreshed, false, "forgotten, so unique again");
  });

  test('"tab" with storage blocked falls back to the seed rule; the view is still sent', () => {
    const t = setup({ storage: createStorage({ broken: true }), options: { uniqueness: "tab" } });
    assert.deepEqual(walk(t).map(([, refreshed]) => refreshed), [false, false, false, false, false]);
    assert.ok(t.errors.length > 0, "the storage error went to onError");

    const u = setup({ storage: null, options: { uniqueness: "tab" } });
    assert.equal(walk(u).length, 5);
    assert.deepEqual(u.errors, []);
  });

  test("a stored value that is not a list is replaced, not trusted", () => {
    const storage = createStorage();
    storage.setItem("livecount:seen", '{"post:a": true}');
    const t = setup({ storage, options: { uniqueness: "tab" } });
    t.go("/posts/a", { post: "a" });
    t.open();
    assert.equal(t.sent("views")[0].refreshed, false);
    assert.deepEqual(JSON.parse(storage.data.get("livecount:seen")), ["post:a"]);
  });

  test("window.LIVECOUNT_UNIQUENESS picks the rule for the module", () => {
    const t = setup({ globals: { LIVECOUNT_UNIQUENESS: "tab" } });
    assert.deepEqual(walk(t).at(-2), ["a", true]);
  });

  test("Do Not Track: no view, so nothing remembered either", () => {
    const storage = createStorage();
    const t = setup({ storage, options: { uniqueness: "tab", respectDnt: true } });
    t.win.navigator.doNotTrack = "1";
    t.go("/posts/a");
    assert.equal(storage.data.size, 0);
  });
});
