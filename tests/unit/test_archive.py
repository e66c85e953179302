import gzip
import json
from pathlib import Path

import msgspec
from livecount.core import archive
from livecount.core.pages import Target
from livecount.core.protocol import Views
from livecount.node.archive import write

T0 = 1_795_500_000.0  # 2026-11-24T06:00:00Z


def view(n: int = 0) -> archive.ArchivedView:
    msg = Views(
        articleId=f"a{n}",
        articleTitle="A",
        currentPage="/posts/a",
        previousPage="",
        refreshed=False,
        referrer="https://x.org/p",
    )
    return archive.record(msg, Target("post", f"a{n}"), "x.org", T0 + n)


def test_a_record_keeps_what_the_page_sent_and_nothing_about_the_reader():
    fields = json.loads(msgspec.json.encode(view()))
    assert fields == {
        "ts": "2026-11-24T06:00:00.000Z",
        "kind": "post",
        "refreshed": False,
        "articleId": "a0",
        "pageName": None,
        "articleTitle": "A",
        "currentPage": "/posts/a",
        "previousPage": "",
        "referrer": "https://x.org/p",
        "referrerHost": "x.org",
    }


def test_files_rotate_by_count():
    buffer = archive.Buffer(max_events=3, max_seconds=3600, prefix="p")
    batches = [b for n in range(7) if (b := buffer.add(view(n), T0 + n))]
    assert [len(b.lines) for b in batches] == [3, 3] and len(buffer) == 1
    assert batches[0].name == "dt=2026-11-24/views-20261124T060000Z-p-000001.ndjson.gz"
    assert batches[1].name.endswith("-000002.ndjson.gz")
    last = buffer.take()
    assert last is not None and len(last.lines) == 1 and buffer.take() is None


def test_files_rotate_by_age_of_their_first_view():
    buffer = archive.Buffer(max_events=100, max_seconds=60)
    assert buffer.due(T0) is None  # nothing buffered, nothing due
    buffer.add(view(), T0)
    buffer.add(view(1), T0 + 59)
    assert buffer.due(T0 + 59.9) is None
    batch = buffer.due(T0 + 60)
    assert batch is not None and len(batch.lines) == 2 and buffer.due(T0 + 1000) is None


def test_write_is_whole_gzip_ndjson_and_leaves_no_temporary(tmp_path: Path):
    buffer = archive.Buffer(max_events=2, max_seconds=60)
    buffer.add(view(0), T0)
    batch = buffer.add(view(1), T0 + 1)
    assert batch is not None
    path = write(tmp_path, batch)
    assert path.parent.name == "dt=2026-11-24"
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    assert [json.loads(line)["articleId"] for line in lines] == ["a0", "a1"]
    assert [p.name for p in path.parent.iterdir()] == [path.name]
