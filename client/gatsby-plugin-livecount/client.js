// The one livecount client of a Gatsby site, shared by gatsby-browser.js (views)
// and the hook (counts). Created lazily in the browser only: SSR never has one.
import { onRouteUpdate as snippet } from "./livecount.mjs";

// The plugin options the client takes; Gatsby adds others (`plugins`).
const KEYS = ["url", "respectDnt", "uniqueness", "titles", "titleTimeout"];

let options = {};
let client = null;
let failed = false;

/** The client's options from gatsby-config.js's: known keys, set values only. */
export function clientOptions(pluginOptions) {
  const picked = {};
  for (const key of KEYS) {
    if (pluginOptions && pluginOptions[key] != null) picked[key] = pluginOptions[key];
  }
  // React renders every number: the client never writes into the page.
  picked.dom = false;
  picked.postsFromPath = true; // a post's slug after "/posts/", as the seed's site had
  return picked;
}

/** gatsby-browser.js's onClientEntry: before the first render and route update. */
export function configure(pluginOptions) {
  options = clientOptions(pluginOptions);
}

/** The client, or null on the server and after a configuration error (said once). */
export function getClient() {
  if (client || failed || typeof window === "undefined") return client;
  try {
    client = snippet.createLivecount(options);
  } catch (e) {
    failed = true;
    if (typeof console !== "undefined") console.error(e && e.message ? e.message : e);
  }
  return client;
}

/** Tests: forget the client and the options. */
export function reset() {
  if (client) client.close();
  client = null;
  failed = false;
  options = {};
}
