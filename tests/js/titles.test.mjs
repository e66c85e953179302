// The title a view carries is the new route's, even though Gatsby's Head API, React
// Helmet and single-page routers set it after the route changed. Every view carries
// one: the server decides which paths are posts. Run: node --test tests/js/
import { test, describe } from "node:test";
import assert from "node:assert/strict";

import { el } from "./fakes.mjs";
import { setup, SETTLE } from "./harness.mjs";

function landed(options = {}, title = "Home") {
  const t = setup({ title, options });
  t.go("/");
  t.open();
  return t;
}

// The views of the posts' paths (the landing page is "/").
const postViews = (t) => t.sent("views").filter((m) => m.currentPage.startsWith("/posts/"));

describe('titles: "head" (the default)', () => {
  test("waits for the <title> to change, then sends the new one", () => {
    const t = landed();
    t.go("/posts/a"); // the frame has come and gone; the title has not
    assert.deepEqual(postViews(t), [], "not sent with the previous page's title");
    t.doc.title = "Post A";
    assert.deepEqual(postViews(t).map((m) => m.articleTitle), ["Post A"]);
  });

  test("a title set before onRouteUpdate is new if it differs from the one at onPreRouteUpdate", () => {
    const t = landed();
    t.go("/posts/a", { early: "Post A" }); // a head manager quicker than onRouteUpdate
    assert.deepEqual(postViews(t).map((m) => m.articleTitle), ["Post A"], "at once, not after the timeout");
    t.go("/posts/b", { pre: true, title: "Post B" }); // Gatsby's usual order
    assert.deepEqual(postViews(t).map((m) => m.articleTitle), ["Post A", "Post B"]);
    // without onPreRouteUpdate (a plain site) the title at onRouteUpdate is the old one
    t.go("/posts/c", { title: "Post C" });
    assert.deepEqual(postViews(t).map((m) => m.articleTitle), ["Post A", "Post B", "Post C"]);
  });

  test("a title set within the frame is taken at once", () => {
    const t = landed();
    t.go("/posts/a", { title: "Post A" });
    assert.deepEqual(postViews(t).map((m) => m.articleTitle), ["Post A"]);
  });

  test("the empty moment between removing the old <title> and adding the new one is skipped", () => {
    const t = landed();
    t.go("/posts/a");
    t.doc.title = "";
    assert.deepEqual(postViews(t), []);
    t.doc.title = "Post A";
    assert.deepEqual(postViews(t).map((m) => m.articleTitle), ["Post A"]);
  });

  test("the wait is bounded: a route with the same title is sent after titleTimeout", () => {
    const t = landed({ titleTimeout: 500 }, "Same");
    t.go("/posts/a", { settle: false });
    t.clock.advance(16); // the next frame, when the wait starts
    t.clock.advance(499);
    assert.deepEqual(postViews(t), []);
    t.clock.advance(1);
    assert.deepEqual(postViews(t).map((m) => m.articleTitle), ["Same"]);
  });

  test("a navigation during the wait sends the waiting view at once, untitled rather than wrong", () => {
    const t = landed();
    t.go("/posts/a"); // its title never comes
    t.go("/posts/b", { title: "Post B" });
    const views = postViews(t);
    assert.deepEqual(views.map((m) => m.currentPage), ["/posts/a", "/posts/b"], "in order, one each");
    assert.equal("articleTitle" in views[0], false);
    assert.equal(views[1].articleTitle, "Post B");
  });

  test("data-article-title needs no wait, and the landing page's title is already right", () => {
    const t = setup({ title: "Landing title" });
    t.go("/posts/first");
    t.open();
    assert.equal(postViews(t)[0].articleTitle, "Landing title");
    t.doc.elements = [el({ "data-article-id": "b", "data-article-title": "From the page" })];
    t.go("/posts/b");
    assert.equal(postViews(t)[1].articleTitle, "From the page");
  });

  test("a post landed on before it has any title waits for one", () => {
    const t = setup({ title: "" });
    t.go("/posts/a");
    assert.equal(t.ws.sockets.length, 0, "nothing to send yet");
    t.doc.title = "Post A";
    t.open();
    assert.deepEqual(postViews(t).map((m) => m.articleTitle), ["Post A"]);
  });

  test("a page that names no post waits for its title too: the server may count its path as a post", () => {
    const t = landed();
    t.go("/pages/about", { settle: false });
    t.clock.advance(SETTLE);
    assert.deepEqual(t.sent("views").map((m) => m.currentPage), ["/"]);
    t.doc.title = "About";
    assert.deepEqual(t.sent("views").map((m) => [m.currentPage, m.articleTitle]), [["/", "Home"], ["/pages/about", "About"]]);
    assert.equal("articleId" in t.sent("views")[1], false, "a path alone names no post");
  });

  test("a post rendered only after the route change is found once the title came", () => {
    const t = landed();
    t.go("/blog/late/");
    t.doc.elements = [el({ "data-article-id": "late" })];
    t.doc.title = "Late";
    assert.deepEqual(t.sent("views").at(-1), {
      message: "views", currentPage: "/blog/late/", previousPage: "/", referrer: "", refreshed: false,
      articleId: "late", articleTitle: "Late",
    });
  });

  test("without MutationObserver the title is polled, still bounded", () => {
    const t = setup({ title: "Home", observer: false });
    t.go("/");
    t.open();
    t.go("/posts/a");
    t.doc.title = "Post A"; // no observer fires: only a poll can see it
    assert.deepEqual(postViews(t), []);
    t.clock.advance(25);
    assert.deepEqual(postViews(t).map((m) => m.articleTitle), ["Post A"]);
    assert.equal(t.clock.pending, 0, "no timer left running");
  });

  test("the observer and the timers are gone once the view is sent", () => {
    const t = landed();
    t.go("/posts/a");
    assert.equal(t.doc.observers.size, 1);
    t.doc.title = "Post A";
    assert.equal(t.doc.observers.size, 0);
    assert.equal(t.clock.pending, 0);
  });
});

describe("other title rules", () => {
  test('"document" reads document.title on the next frame, as earlier versions did', () => {
    const t = landed({ titles: "document" });
    t.go("/posts/a");
    t.doc.title = "Post A"; // too late for this rule
    assert.deepEqual(postViews(t).map((m) => m.articleTitle), ["Home"]);
  });

  test('"none" sends no title at all, not even data-article-title', () => {
    const t = setup({ title: "Home", options: { titles: "none" }, elements: [el({ "data-article-id": "a", "data-article-title": "A" })] });
    t.go("/posts/a");
    t.open();
    assert.equal("articleTitle" in postViews(t)[0], false);
  });

  test("window.LIVECOUNT_TITLES sets the rule for the module; an option wins over it", () => {
    const t = setup({ title: "Home", globals: { LIVECOUNT_TITLES: "document" } });
    t.go("/");
    t.open();
    t.go("/posts/a");
    assert.deepEqual(postViews(t).map((m) => m.articleTitle), ["Home"]);

    const u = setup({ title: "Home", globals: { LIVECOUNT_TITLES: "document" }, options: { titles: "head" } });
    u.go("/");
    u.open();
    u.go("/posts/a");
    assert.deepEqual(postViews(u), [], "waits, as the option says");
  });
});
