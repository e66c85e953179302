// The client's path rule against tests/paths.json, the cases the server's own tests
// read too: a counter that names a page by its path matches the server's answers
// only if both normalise alike. Run: node --test tests/js/
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";

import { onRouteUpdate } from "../../client/gatsby-plugin-livecount/livecount.mjs";

const { normalisePath } = onRouteUpdate;
const cases = JSON.parse(await readFile(new URL("../paths.json", import.meta.url), "utf8"));

test("each path normalises as tests/paths.json says", () => {
  for (const [path, expected] of cases.normalised) assert.equal(normalisePath(path), expected, path);
});

test("a path spelt as its own normal form, escaped, is that form again", () => {
  for (const [, expected] of cases.normalised) assert.equal(normalisePath(expected.replace(/%/g, "%25")), expected);
});

test("a path whose escapes are not UTF-8 is refused", () => {
  for (const path of cases.refused) assert.equal(normalisePath(path), null, path);
});
