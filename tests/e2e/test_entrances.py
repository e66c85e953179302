"""One hostile corpus at every entrance (issue 22.1).

Ids and titles reach livecount five ways: a page's WebSocket, the report API, the admin
API, the admin CLI and an import. A hostile pass found an id of only spaces refused on
the WebSocket and taken everywhere else. Here each entrance gets the same corpus, and
each must give the verdict of the one validation, `sizes.problem` (and, for titles,
`sizes.shows`): refused with a clear error, or taken and kept as sent.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from livecount import cli
from livecount.core import sizes
from websockets.asyncio.client import ClientConnection, connect

from tests.e2e.test_admin import post, store_args
from tests.support import Launch, eventually, http_get, login_url

TAKEN_IDS = [
    "hello",
    "--help",
    "-x",
    "a b",
    "%20",
    "..",
    "a/b?c#d",
    "null",
    "ünïcödé",
    "e\u0301",
    "日本語の記事",
    "مرحبا بالعالم",
    "\u00a0x",
    "a" * 256,
    "😀" * 254,  # 1,016 bytes
]
REFUSED_IDS = [
    "",
    "   ",
    "\u3000",
    "\u200b",
    "\u200b\u200d",
    "\ufeff",
    "\u115f",
    "\u2800",
    "\u202eabc",
    "a\u2066b",
    "a\x00b",
    "a\x85b",
    "a\u2028b",
    "a\ud800",
    "a" * 257,
    "😀" * 255,  # 1,020 bytes
]
TITLES = ["Hello", "Ünïcode — “quoted”", "😀", "שלום עולם", "t" * 256]
REFUSED_TITLES = ["a\x00", "a\u2029", "a\udfff", "t" * 257]
BLANK_TITLES = ["", "   ", "\u200b", "\u3000\u200d"]  # taken from a page as no title


def test_the_corpus_means_what_it_says() -> None:
    """The oracle refuses what the corpus calls refused: if `sizes` grew lax, the
    entrances would agree with it and this file would prove nothing."""
    assert all(sizes.problem(i, sizes.ID) is None for i in TAKEN_IDS)
    assert all(sizes.problem(i, sizes.ID) is not None for i in REFUSED_IDS)
    assert all(sizes.problem(t, sizes.TITLE) is None and sizes.shows(t) for t in TITLES)
    assert all(sizes.problem(t, sizes.TITLE) is not None for t in REFUSED_TITLES)
    assert all(sizes.problem(t, sizes.TITLE) is None and not sizes.shows(t) for t in BLANK_TITLES)


async def view(ws: ClientConnection, fields: dict[str, Any]) -> dict[str, Any]:
    await ws.send(json.dumps({"message": "views", **fields}))
    async with asyncio.timeout(20):
        while (reply := json.loads(await ws.recv()))["message"] not in ("views", "error"):
            pass
    return dict(reply)


def quoted(value: str) -> str:
    return urllib.parse.quote(value, safe="", errors="surrogatepass")


async def run_cli(*argv: str) -> int:
    """The admin CLI in this process (a process each would take a minute): argparse's
    refusals are SystemExit(2), as from the shell."""

    def call() -> int:
        try:
            return cli.main(list(argv))
        except SystemExit as exc:
            return int(exc.code or 0)

    return await asyncio.to_thread(call)


async def test_every_entrance_gives_an_id_the_verdict_of_the_one_validation(
    launch: Launch,
    dynamodb_local_url: str,
    prefix: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
):
    served = await launch()
    token = parse_qs(urlsplit(login_url(served)).query)["token"][0]
    api = f"http://127.0.0.1:{served.port}/api"
    store = store_args(dynamodb_local_url, prefix, tmp_path)
    async with connect(served.ws) as ws:
        for id_ in TAKEN_IDS + REFUSED_IDS:
            taken = id_ in TAKEN_IDS
            reply = await view(ws, {"articleId": id_})
            assert (reply["message"] == "views") == taken, (id_, reply)
            if taken:
                assert reply["articleId"] == id_ and reply["totalViews"] == 1
            else:
                # A lone surrogate is not even JSON text to msgspec
                assert (
                    reply["error"] == "invalid_json"
                    if "\ud800" in id_
                    else reply["error"] == "invalid_field" and "articleId" in reply["detail"]
                )
            if id_:  # "" is no path segment: /api/pages/ is the list
                got = await eventually(
                    partial(asyncio.to_thread, http_get, f"{api}/pages/{quoted(id_)}"),
                    lambda got: got[0] != 404,
                )
                assert got[0] == (200 if taken else 400), (id_, got)
                if taken:
                    assert json.loads(got[2])["articleId"] == id_
            status, done = await eventually(  # 404 until the view is stored
                partial(
                    asyncio.to_thread,
                    post,
                    f"{api}/admin/title",
                    token,
                    {"articleId": id_, "title": "Set"},
                ),
                lambda answer: answer[0] != 404,
            )
            assert status == (200 if taken else 400), (id_, done)
            if not taken:
                assert done["parameter"] == ("body" if "\ud800" in id_ else "articleId"), done
            code = await run_cli("admin", "title", *store, "--", id_, "Set again")
            assert code == (0 if taken else 2), (id_, capsys.readouterr())


async def test_every_entrance_gives_a_title_the_verdict_of_the_one_validation(
    launch: Launch, dynamodb_local_url: str, prefix: str, tmp_path: Path
):
    """A page's blank title is no title (kept: none; a post keeps its first title, so a
    blank first one would stay); the operator cannot set one."""
    served = await launch()
    token = parse_qs(urlsplit(login_url(served)).query)["token"][0]
    api = f"http://127.0.0.1:{served.port}/api"
    store = store_args(dynamodb_local_url, prefix, tmp_path)
    async with connect(served.ws) as ws:
        for n, title in enumerate(TITLES + REFUSED_TITLES + BLANK_TITLES):
            article = f"titled-{n}"
            reply = await view(ws, {"articleId": article, "articleTitle": title})
            assert (reply["message"] == "views") == (title not in REFUSED_TITLES), reply
            if title in REFUSED_TITLES:
                assert (
                    reply["error"] == "invalid_json"
                    if "\udfff" in title
                    else reply["error"] == "invalid_field" and "articleTitle" in reply["detail"]
                )
            if title not in TITLES:  # a later title is the first one kept
                await view(ws, {"articleId": article, "articleTitle": "Later"})
            kept = title if title in TITLES else "Later"
            await eventually(
                partial(asyncio.to_thread, http_get, f"{api}/pages/{article}"),
                lambda got: got[0] == 200 and json.loads(got[2]).get("articleTitle") == kept,  # noqa: B023
            )
            status, done = await eventually(
                partial(
                    asyncio.to_thread,
                    post,
                    f"{api}/admin/title",
                    token,
                    {"articleId": article, "title": title},
                ),
                lambda answer: answer[0] != 404,
            )
            assert status == (200 if title in TITLES else 400), (title, done)
            code = await run_cli("admin", "title", *store, "--", article, title)
            assert code == (0 if title in TITLES else 2), title


async def test_an_import_gives_ids_and_titles_the_verdict_of_the_one_validation(
    dynamodb_local_url: str, prefix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """The fifth entrance: an import skips (and says so) what the WebSocket refuses, and
    keeps the rest as sent; a title that shows nothing is no title."""
    store = store_args(dynamodb_local_url, prefix, tmp_path)
    # Not in the file: a lone surrogate is no JSON text, and `post#` no target at all
    # (either stops the import at its line, writing nothing).
    ids = [i for i in TAKEN_IDS + REFUSED_IDS if i and "\ud800" not in i]
    titles = TITLES + BLANK_TITLES + [t for t in REFUSED_TITLES if "\udfff" not in t]
    records = [{"record": "export", "format": "livecount", "version": 1}]
    records += [
        {"record": "count", "target": f"post#{id_}", "totalViews": 1, "uniqueViews": 1}
        for id_ in ids
    ]
    records += [
        {
            "record": "count",
            "target": f"post#titled-{n}",
            "articleTitle": title,
            "totalViews": 1,
            "uniqueViews": 1,
        }
        for n, title in enumerate(titles)
    ]
    history = tmp_path / "corpus.ndjson"
    history.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert await run_cli("import", str(history), *store) == 0, capsys.readouterr()
    exported = tmp_path / "out.ndjson"
    assert await run_cli("export", "--format", "ndjson", "--output", str(exported), *store) == 0, (
        capsys.readouterr()
    )
    counts = [json.loads(line) for line in exported.read_text().splitlines()[1:]]
    kept = {
        r["target"].removeprefix("post#"): r.get("articleTitle")
        for r in counts
        if r["record"] == "count"
    }
    assert {i for i in kept if not i.startswith("titled-")} == set(TAKEN_IDS)
    assert "post ids livecount cannot store" in capsys.readouterr().out
    assert {kept[f"titled-{n}"] for n in range(len(titles))} == set(TITLES) | {None}
    assert all(kept[f"titled-{n}"] == (t if t in TITLES else None) for n, t in enumerate(titles))
