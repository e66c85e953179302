import * as React from "react";
import { LiveCount, useLivecount } from "gatsby-plugin-livecount";
import Layout from "../components/layout";
import LateTitle from "../components/late-title";

// A post shows its own counts twice over: <LiveCount/> spans, and the hook's
// connection status.
export default function Post({ pageContext: post }) {
  const { status } = useLivecount(post.slug);
  return (
    <Layout>
      {post.lateTitle && <LateTitle title={post.title} />}
      <article data-article-id={post.slug}>
        <h1>{post.title}</h1>
        <p>{post.body}</p>
        <p>
          <LiveCount id={post.slug} show="total" className="total" /> views,{" "}
          <LiveCount id={post.slug} show="unique" className="unique" /> unique,{" "}
          <LiveCount id={post.slug} show="now" className="now" /> reading now.{" "}
          Connection: <span className="status">{status}</span>
        </p>
      </article>
    </Layout>
  );
}

export const Head = ({ pageContext: post }) => (post.lateTitle ? null : <title>{post.title}</title>);
