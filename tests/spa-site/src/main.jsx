// A single-page blog: React Router changes pages with the History API, React 19 sets
// each page's <title> when it renders it, after the URL changed. The livecount tag in
// index.html counts each page and fills the counters, which React renders empty.
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { createBrowserRouter, Link, Outlet, RouterProvider, useLocation, useParams } from "react-router";

const POSTS = {
  "first-post": "The first post",
  "second-post": "The second post",
  "third-post": "The third post",
  "fourth-post": "The fourth post",
};

function Layout() {
  const { pathname } = useLocation();
  return (
    <>
      <nav>
        <Link id="nav-home" to="/">Home</Link>{" "}
        {Object.entries(POSTS).map(([id, title]) => (
          <Link key={id} id={"nav-" + id} to={`/blog/${id}/`}>{title} </Link>
        ))}
        <Link id="nav-about" to="/about/">About</Link>
      </nav>
      {/* A new page, new counters: none shows the page left behind. */}
      <div key={pathname}>
        <main><Outlet /></main>
        <footer>
          <span id="views" data-livecount="" /> views of this page,{" "}
          <span id="unique" data-livecount-unique="" /> unique, <span id="now" data-livecount-now="" /> reading now
        </footer>
      </div>
    </>
  );
}

function Home() {
  return (
    <>
      <title>A single-page blog</title>
      <h1>A single-page blog</h1>
      <ul>
        {Object.entries(POSTS).map(([id, title]) => (
          <li key={id} data-post={id}>
            <Link to={`/blog/${id}/`}>{title}</Link>: <span className="total" data-livecount={id} /> views
          </li>
        ))}
      </ul>
    </>
  );
}

function Post() {
  const { id } = useParams();
  return (
    <article>
      <title>{POSTS[id] || "No such post"}</title>
      <h1>{POSTS[id] || "No such post"}</h1>
      <p>A post of the single-page blog, counted by its path: /blog/{"{id}"}/.</p>
    </article>
  );
}

function About() {
  return (
    <>
      <title>About</title>
      <h1>About</h1>
      <p>A page of its own: no rule names it.</p>
    </>
  );
}

const router = createBrowserRouter([
  {
    element: <Layout />,
    children: [
      { path: "/", element: <Home /> },
      { path: "/blog/:id/", element: <Post /> },
      { path: "/about/", element: <About /> },
    ],
  },
]);

createRoot(document.getElementById("root")).render(
  <StrictMode>
    <RouterProvider router={router} />
  </StrictMode>,
);
