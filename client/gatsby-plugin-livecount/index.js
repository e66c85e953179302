// React side: useLivecount(id) and <LiveCount/>. React renders the numbers;
// the client only tells React when they change (useSyncExternalStore).
import { createElement, useCallback, useMemo, useSyncExternalStore } from "react";
import { getClient } from "./client.js";

const EMPTY = Object.freeze({ totalViews: null, uniqueViews: null, readingNow: null, counted: null });
const FIELDS = { total: "totalViews", unique: "uniqueViews", now: "readingNow" };

function noop() {}
const serverCounts = () => EMPTY;
const serverStatus = () => "idle";

function subscribeStatus(notify) {
  const client = getClient();
  return client ? client.onStatus(notify) : noop;
}

function getStatus() {
  const client = getClient();
  return (client && client.status) || "idle";
}

/**
 * Live counts of one post, by its articleId.
 * @returns {{totalViews: number|null, uniqueViews: number|null, readingNow: number|null,
 *            counted: boolean|null, status: "idle"|"open"|"closed"}}
 * null means not known yet (before the server's first answer, during SSR, or
 * readingNow from a server that does not send it).
 */
export function useLivecount(id) {
  if (typeof id !== "string" || id === "") {
    throw new TypeError("useLivecount(id): id must be the post's articleId, a non-empty string; got " + JSON.stringify(id));
  }
  const subscribe = useCallback(
    (notify) => {
      const client = getClient();
      return client ? client.watch(id, notify) : noop;
    },
    [id],
  );
  const getCounts = useCallback(() => {
    const client = getClient();
    return client ? client.snapshot(id) : EMPTY;
  }, [id]);
  const counts = useSyncExternalStore(subscribe, getCounts, serverCounts);
  const status = useSyncExternalStore(subscribeStatus, getStatus, serverStatus);
  return useMemo(() => ({ ...counts, status }), [counts, status]);
}

/**
 * <LiveCount id="hello-world" show="total|unique|now" placeholder="–" />: a
 * <span> with the live number; other props go to the span. It carries
 * data-livecount-counted="false" while this tab's view of the post was not counted.
 */
export function LiveCount({ id, show = "total", placeholder = "–", ...rest }) {
  const field = FIELDS[show];
  if (!field) {
    throw new TypeError('<LiveCount show>: "total", "unique" or "now", not ' + JSON.stringify(show));
  }
  const counts = useLivecount(id);
  const value = counts[field];
  const props = { ...rest };
  if (counts.counted === false) props["data-livecount-counted"] = "false";
  return createElement("span", props, value == null ? placeholder : String(value));
}
