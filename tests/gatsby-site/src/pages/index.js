import * as React from "react";
import { Link } from "gatsby";
import { LiveCount, useLivecount } from "gatsby-plugin-livecount";
import Layout from "../components/layout";
import posts from "../posts";

// The home page follows every post's counts live, without viewing any post.
export default function Home() {
  const { status } = useLivecount(posts[0].slug);
  return (
    <Layout>
      <h1>livecount test blog</h1>
      <ul>
        {posts.map((post) => (
          <li key={post.slug} data-post={post.slug}>
            <Link to={`/posts/${post.slug}/`}>{post.title}</Link>:{" "}
            <LiveCount id={post.slug} show="total" className="total" /> views,{" "}
            <LiveCount id={post.slug} show="unique" className="unique" /> unique,{" "}
            <LiveCount id={post.slug} show="now" className="now" /> reading now
          </li>
        ))}
      </ul>
      <p>Connection: <span className="status">{status}</span></p>
    </Layout>
  );
}

export const Head = () => <title>livecount test blog</title>;
