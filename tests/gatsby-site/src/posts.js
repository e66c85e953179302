// The blog's posts: gatsby-node.js makes a page of each at /posts/<slug>/.
// No post has data-article-title: its title must come from the <title>.
// The first two get theirs from Gatsby's Head API, a few ms after each <Link>
// navigation; the third from a late head manager (see LateTitle), so a client
// that reads the title too early is caught every time, not now and then.
module.exports = [
  { slug: "hello-world", title: "Hello, world", body: "The first post of the test blog." },
  { slug: "second-post", title: "A second post", body: "Another post, to move between." },
  { slug: "third-post", title: "The third post", body: "Its title comes late.", lateTitle: true },
];
