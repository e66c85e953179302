const path = require("path");
const posts = require("./src/posts");

exports.createPages = ({ actions }) => {
  const template = path.resolve("src/templates/post.js");
  for (const post of posts) {
    actions.createPage({ path: `/posts/${post.slug}/`, component: template, context: post });
  }
};
