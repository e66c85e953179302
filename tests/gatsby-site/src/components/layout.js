import * as React from "react";
import { Link } from "gatsby";
import posts from "../posts";

// Every page has the same navigation: <Link>s to every post and page.
export default function Layout({ children }) {
  return (
    <>
      <nav>
        <Link id="nav-home" to="/">Home</Link>{" "}
        {posts.map((post) => (
          <React.Fragment key={post.slug}>
            <Link id={`nav-${post.slug}`} to={`/posts/${post.slug}/`}>{post.title}</Link>{" "}
          </React.Fragment>
        ))}
        <Link id="nav-about" to="/pages/about/">About</Link>
      </nav>
      <main>{children}</main>
    </>
  );
}
