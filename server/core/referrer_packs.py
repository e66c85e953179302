"""Which Referrer item a view's host is counted on: its target's pack, or its own row.

A blog's referrers are mostly a few hosts, and each Referrer item written costs at
least one write unit, so a target's hosts share one item, its *pack* (sort key `*`,
a counter `@<host>` per host and the set `hosts` of its members), written once a
report flush whatever the number of hosts. A pack stays small, since a write of it
costs a unit per KB of the item: at most `PACK_HOSTS` members of at most
`PACKABLE_HOST` characters, a few KB at worst and one unit for a usual handful. The
store refuses a write that could take a pack past `PACK_HOSTS` members (unless every
host of it is a member already), whichever node sends it, and the node then counts
that write's hosts on rows of their own (sort key: the host). A rename or delete
gives a pack's counts to rows too, never to another pack. Reports add up a target's
pack and rows.

Pure: `core/report_rows.py` asks `packed` where a view goes; a flush result says
which packs were found full (`ReportRows.unpack`).
"""

from __future__ import annotations

from typing import Final

PACK: Final = "*"  # the pack's sort key: no DNS host is spelt so
HOST_ATTRIBUTE: Final = "@"  # a pack counts host h on the attribute "@h"
MEMBERS: Final = "hosts"  # the pack's string set of hosts, whose size the store checks
PACK_HOSTS: Final = 32  # members a pack holds at most
WRITE_HOSTS: Final = 16  # hosts a pack write carries at most: room for a few writes more
PACKABLE_HOST: Final = 40  # longer hosts get rows of their own: they would swell the pack


def attribute(host: str) -> str:
    return HOST_ATTRIBUTE + host


def packed(host: str, waiting: dict[str, int] | None) -> bool:
    """Whether a view from `host` goes on its target's pack, given the hosts of the
    pack's write that waits to be taken, which carries at most `WRITE_HOSTS`. Nothing
    else decides, not even a pack found full before: only what a journal replay
    rebuilds may route views, or a replay after the journal was cut would route them
    elsewhere than the node did and count them twice. A full pack costs one refused
    write a report flush; its views then wait on rows of their own (`unpack`)."""
    if len(host) > PACKABLE_HOST:
        return False
    return not waiting or host in waiting or len(waiting) < WRITE_HOSTS
