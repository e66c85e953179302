"""A big blog's history, deterministic from a seed: issue 24's 5,000 posts over 3 years.

Zipf popularity (2.32 M views, the top post 485k); each post published at a random
moment of the 3 years, its views spread from then on, most of them soon after, its
timeline hourly for the last 90 days and daily (the `T00` hour) before; 2% of the
views from one of 300 referrer hosts (Zipf too). Written two ways:

- livecount's own NDJSON export (`core/exports.py`), as `livecount export` writes it:
  the counts, then every timeline row, then every referrer row, the site's included;
  at full size 395k timeline rows, 10.8k referrer rows, 49 MB;
- GoatCounter's CSV export (version 2), one line a view, for as many views as asked
  (`--goatcounter-views`), drawn at random from the same history.

    python -m bench.history --out DIR [--seed 1] [--goatcounter-views 500000]
"""

from __future__ import annotations

import argparse
import bisect
import gzip
import itertools
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from livecount.core import exports
from livecount.core.exports import Record

END = datetime(2026, 12, 1, tzinfo=UTC)  # the export's "now"
DAYS = 3 * 365
HOURLY_DAYS = 90  # the last days, kept hour by hour
POSTS = 5_000
VIEWS = 2_320_000
TOP_SHARE = 485_000 / VIEWS
HOSTS = 300
REFERRED = 0.02  # share of views with an external referrer
UNIQUE = 0.62  # share of views that are unique (first visits)
WORDS = (
    "how",
    "why",
    "notes",
    "on",
    "building",
    "a",
    "fast",
    "small",
    "python",
    "server",
    "counting",
    "views",
    "with",
    "dynamodb",
    "streams",
    "in",
    "practice",
    "the",
    "road",
    "to",
    "release",
    "debugging",
    "asyncio",
    "tests",
    "that",
    "matter",
)


def zipf_weights(n: int, top_share: float) -> list[float]:
    """Weights 1/i^s of n ranks, s chosen so that the first has `top_share` of all."""
    low, high = 0.5, 3.0
    for _ in range(60):
        s = (low + high) / 2
        share = 1 / sum(i**-s for i in range(1, n + 1))
        low, high = (s, high) if share < top_share else (low, s)
    return [i**-s for i in range(1, n + 1)]


@dataclass
class Post:
    id: str
    title: str
    views: int
    unique: int = 0
    slots: Counter[str] = field(default_factory=Counter)  # hour key -> views
    uniques: Counter[str] = field(default_factory=Counter)
    hosts: Counter[str] = field(default_factory=Counter)


def slot_of(moment: datetime) -> str:
    """The timeline row a view at `moment` lands in: its hour, or its day's T00."""
    if moment >= END - timedelta(days=HOURLY_DAYS):
        return moment.strftime("%Y-%m-%dT%H")
    return moment.strftime("%Y-%m-%dT00")


def history(seed: int = 1, posts: int = POSTS, views: int = VIEWS) -> list[Post]:
    rng = random.Random(seed)
    weights = zipf_weights(posts, TOP_SHARE * VIEWS / views if views != VIEWS else TOP_SHARE)
    scale = views / sum(weights)
    counts = [max(1, round(w * scale)) for w in weights]
    counts[0] += views - sum(counts)  # exact total
    host_weights = list(itertools.accumulate(zipf_weights(HOSTS, 0.3)))
    names = [
        f"{'.'.join(rng.sample(['news', 'blog', 'forum', 'read', 'links'], 1))}{i}.example"
        for i in range(HOSTS)
    ]
    out = []
    start = END - timedelta(days=DAYS)
    for rank, n in enumerate(counts):
        words = rng.sample(WORDS, 3)
        post = Post(f"{'-'.join(words)}-{rank:04d}", " ".join(words).capitalize(), n)
        published = start + timedelta(seconds=rng.randrange(DAYS * 86400))
        life = (END - published).total_seconds()
        # Each view at published + life * u^3.5: most soon after publication, some late.
        moments = [published + timedelta(seconds=life * rng.random() ** 3.5) for _ in range(n)]
        for moment in moments:
            slot = slot_of(moment)
            post.slots[slot] += 1
            if rng.random() < UNIQUE:
                post.uniques[slot] += 1
                post.unique += 1
            if rng.random() < REFERRED:
                host = names[bisect.bisect(host_weights, rng.random() * host_weights[-1])]
                post.hosts[host] += 1
        out.append(post)
    return out


def records(posts: list[Post]) -> list[Record]:
    """The export's records, in the order `livecount export` writes them."""
    site_slots: Counter[str] = Counter()
    site_uniques: Counter[str] = Counter()
    site_hosts: Counter[str] = Counter()
    ordered = sorted(posts, key=lambda p: p.id)
    out = [Record("count", f"post#{p.id}", p.views, p.unique, title=p.title) for p in ordered]
    for post in ordered:
        for slot in sorted(post.slots):
            out.append(
                Record(
                    "timeline", f"post#{post.id}", post.slots[slot], post.uniques[slot], hour=slot
                )
            )
        site_slots.update(post.slots)
        site_uniques.update(post.uniques)
        site_hosts.update(post.hosts)
    out += [
        Record("timeline", "site", site_slots[s], site_uniques[s], hour=s)
        for s in sorted(site_slots)
    ]
    for post in ordered:
        out += [
            Record("referrer", f"post#{post.id}", n, host=h) for h, n in sorted(post.hosts.items())
        ]
    out += [Record("referrer", "site", n, host=h) for h, n in sorted(site_hosts.items())]
    return out


def write_ndjson(posts: list[Post], path: Path) -> dict[str, int]:
    written = records(posts)
    found = Counter(r.record for r in written)
    with path.open("w", encoding="utf-8") as out:
        out.write(exports.ndjson_head(END.strftime("%Y-%m-%dT%H:%M:%SZ")))
        for record in written:
            out.write(exports.ndjson_line(record))
    return {
        "records": len(written),
        "counts": found["count"],
        "timeline": found["timeline"],
        "referrer": found["referrer"],
        "bytes": path.stat().st_size,
        "views": sum(p.views for p in posts),
        "top": max(p.views for p in posts),
    }


GOAT_HEADER = (
    "2Path,Title,Event,UserAgent,Browser,System,Session,Bot,Referrer,"
    "Referrer scheme,Screen size,Location,FirstVisit,Date\n"
)


def write_goatcounter(posts: list[Post], path: Path, views: int, seed: int = 1) -> dict[str, int]:
    """`views` views drawn from the history, one line each (gzipped, as GoatCounter
    hands them out), each at a random moment of its slot, oldest first."""
    rng = random.Random(seed)
    total = sum(p.views for p in posts)
    share = min(1.0, views / total)
    lines: list[tuple[str, str]] = []
    for post in posts:
        hosts = list(post.hosts.elements())
        rng.shuffle(hosts)
        for slot, n in post.slots.items():
            firsts = post.uniques[slot]
            hourly = slot >= (END - timedelta(days=HOURLY_DAYS)).strftime("%Y-%m-%dT%H")
            for i in range(n):
                if rng.random() >= share:
                    continue
                hour = int(slot[11:]) if hourly else rng.randrange(24)
                when = f"{slot[:10]}T{hour:02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}Z"
                host = hosts.pop() if hosts and rng.random() < REFERRED * 1.5 else ""
                lines.append(
                    (
                        when,
                        ",".join(
                            [
                                f"/blog/{post.id}/",
                                post.title,
                                "false",
                                "Mozilla/5.0",
                                "Firefox 120",
                                "Linux",
                                f"s{rng.randrange(10**6)}",
                                "0",
                                host,
                                "h" if host else "",
                                '"1920,1080,1"',
                                "NL",
                                "true" if i < firsts else "false",
                                when,
                            ]
                        ),
                    )
                )
    lines.sort()
    with gzip.open(path, "wt", encoding="utf-8", newline="", compresslevel=6) as out:
        out.write(GOAT_HEADER)
        for _, line in lines:
            out.write(line + "\n")
    return {"views": len(lines), "bytes": path.stat().st_size}


def main() -> None:
    p = argparse.ArgumentParser(description="Write a big blog's history as import files.")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--posts", type=int, default=POSTS)
    p.add_argument("--views", type=int, default=VIEWS)
    p.add_argument(
        "--goatcounter-views",
        type=int,
        default=0,
        help="also a GoatCounter export of this many views (0: none)",
    )
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    posts = history(args.seed, args.posts, args.views)
    print("ndjson", write_ndjson(posts, args.out / "history.ndjson"))
    if args.goatcounter_views:
        print(
            "goatcounter",
            write_goatcounter(
                posts, args.out / "goatcounter.csv.gz", args.goatcounter_views, args.seed
            ),
        )


if __name__ == "__main__":
    main()
