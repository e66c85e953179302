"""livecount's export format: every stored count as records, in CSV or NDJSON, sans I/O.

One record per stored item: a post's or page's totals (`count`), one hour of views
(`timeline`), the views a referrer host sent (`referrer`). `target` is the key the
report tables use: `post#<articleId>`, `page#<pageName>`, or `site` for the rows that
sum every page. `livecount import` reads both forms back (`core/imports.py`).

CSV: the header `record,target,title,hour,host,totalViews,uniqueViews`, then one line
per record; a referrer's views are in `totalViews`. NDJSON: a first line
`{"record":"export","format":"livecount","version":1,"exportedAt":…}`, then one object
per record with only its own fields.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any, Final, Literal

FORMATS: Final = ("csv", "ndjson")
VERSION: Final = 1
CSV_HEADER: Final = ("record", "target", "title", "hour", "host", "totalViews", "uniqueViews")
RecordKind = Literal["count", "timeline", "referrer"]


@dataclass(frozen=True, slots=True)
class Record:
    record: RecordKind
    target: str  # `post#<id>`, `page#<name>`, or `site`
    total: int
    unique: int = 0  # not kept for referrers
    title: str = ""  # counts of posts only
    hour: str = ""  # timeline: `YYYY-MM-DDTHH`, UTC
    host: str = ""  # referrer

    def fields(self) -> dict[str, Any]:
        """The record as its NDJSON object."""
        value: dict[str, Any] = {"record": self.record, "target": self.target}
        if self.record == "count":
            if self.title:
                value["articleTitle"] = self.title
            value |= {"totalViews": self.total, "uniqueViews": self.unique}
        elif self.record == "timeline":
            value |= {"hour": self.hour, "totalViews": self.total, "uniqueViews": self.unique}
        else:
            value |= {"host": self.host, "views": self.total}
        return value


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n"


def ndjson_head(exported_at: str) -> str:
    return _json(
        {"record": "export", "format": "livecount", "version": VERSION, "exportedAt": exported_at}
    )


def ndjson_line(record: Record) -> str:
    return _json(record.fields())


def csv_head() -> str:
    return _csv(CSV_HEADER)


def csv_line(record: Record) -> str:
    unique = "" if record.record == "referrer" else str(record.unique)
    return _csv(
        (
            record.record,
            record.target,
            record.title,
            record.hour,
            record.host,
            str(record.total),
            unique,
        )
    )


def _csv(cells: tuple[str, ...]) -> str:
    """One CSV line as RFC 4180 has it (quoted where needed, CRLF)."""
    out = io.StringIO()
    csv.writer(out).writerow(cells)
    return out.getvalue()
