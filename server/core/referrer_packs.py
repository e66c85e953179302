"""Which Referrer item a view's host is counted on: its target's pack, or its own row.

A blog's referrers are mostly a few hosts, and each Referrer item written costs at
least one write unit, so a target's hosts share one item, its *pack* (sort key `*`,
a counter `@<host>` per host and the set `hosts` of its members), written once a
report flush whatever the number of hosts. A pack stays small, since a write of it
costs a unit per KB of the item: at most `PACK_HOSTS` members of at most
`PACKABLE_HOST` characters, a few KB at worst and one unit for a usual handful. The
store refuses a write that could take a pack past `PACK_HOSTS` members (unless every
host of it is a member already), whichever node sends it, and the node then counts
that target's hosts on rows of their own (sort key: the host). A rename or delete
gives a pack's counts to rows too, never to another pack. Reports add up a target's
pack and rows.

Pure: `core/report_rows.py` asks `Packs.packed` where a view goes; a flush result
says which packs were found full (`ReportRows.unpack`).
"""

from __future__ import annotations

from typing import Final

PACK: Final = "*"  # the pack's sort key: no DNS host is spelt so
HOST_ATTRIBUTE: Final = "@"  # a pack counts host h on the attribute "@h"
MEMBERS: Final = "hosts"  # the pack's string set of hosts, whose size the store checks
PACK_HOSTS: Final = 32  # members a pack holds at most
WRITE_HOSTS: Final = 16  # hosts a pack write carries at most: room for a few writes more
PACKABLE_HOST: Final = 40  # longer hosts get rows of their own: they would swell the pack
FULL_REMEMBERED: Final = 100_000  # refs known to have a full pack; forgetting costs a refusal


def attribute(host: str) -> str:
    return HOST_ATTRIBUTE + host


class Packs:
    """What the node knows of the packs: which are full. A full pack's target counts
    every host on its own row from then on, without asking the store again."""

    __slots__ = ("full",)

    def __init__(self) -> None:
        self.full: set[str] = set()

    def packed(self, ref: str, host: str, waiting: dict[str, int] | None) -> bool:
        """Whether a view of `ref` from `host` goes on the pack, given the hosts of the
        pack's write that waits to be taken, which carries at most `WRITE_HOSTS`."""
        if ref in self.full or len(host) > PACKABLE_HOST:
            return False
        return not waiting or host in waiting or len(waiting) < WRITE_HOSTS

    def found_full(self, refs: set[str]) -> None:
        if len(self.full) + len(refs) > FULL_REMEMBERED:
            self.full.clear()
        self.full |= refs
