import * as React from "react";
import Layout from "../../components/layout";

// A page, not a post: counted by its path (/pages/about is About_Page).
export default function About() {
  return (
    <Layout>
      <h1>About</h1>
      <p>A Gatsby 5 site that the livecount tests build and drive.</p>
    </Layout>
  );
}

export const Head = () => <title>About this blog</title>;
