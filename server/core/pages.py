"""What a view is a view of: a post, a known page, and an external referrer host.

Pure functions over strings, configured once at start-up.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Final, Literal, NamedTuple
from urllib.parse import urlsplit

import idna
from livecount.core import sizes

DEFAULT_PAGES: Final[Mapping[str, str]] = {
    "/": "Home_Page",
    "/pages/about": "About_Page",
    "/pages/contacts": "Contact_Page",
}

Kind = Literal["post", "page"]


class Target(NamedTuple):
    """A counted thing: a post (`PostCountWriter`) or a page (`HomeAndProfile`).

    A named tuple, not a dataclass: it keys every dict on the hot path, and a tuple
    hashes in C."""

    kind: Kind
    id: str

    @property
    def ref(self) -> str:
        """The key in the Referrer and time-bucket tables, one namespace for both kinds."""
        return f"{self.kind}#{self.id}"

    @classmethod
    def from_ref(cls, ref: str) -> Target | None:
        kind, sep, id_ = ref.partition("#")
        if not sep or not id_:
            return None
        if kind == "post":
            return cls("post", id_)
        if kind == "page":
            return cls("page", id_)
        return None


def normalise_path(path: str) -> str:
    """`/pages/about/?x=1#top` and `/pages/about` are the same page."""
    path = path.split("#", 1)[0].split("?", 1)[0].strip()
    if not path.startswith("/"):
        path = "/" + path
    return path.rstrip("/") or "/"


class PageRules:
    """Maps a path to a page name; paths that are neither posts nor known pages are refused."""

    def __init__(self, rules: Mapping[str, str] = DEFAULT_PAGES) -> None:
        self._rules = {normalise_path(path): name for path, name in rules.items()}

    @classmethod
    def parse(cls, specs: Iterable[str]) -> PageRules:
        """Build from `PATH=NAME` strings (the `--page` option); none means the defaults."""
        rules: dict[str, str] = {}
        for spec in specs:
            path, sep, name = spec.partition("=")
            if not sep or not path.strip() or not name.strip():
                raise ValueError(f"page rule {spec!r} is not PATH=NAME")
            if (wrong := sizes.problem(name.strip(), sizes.ID)) is not None:
                raise ValueError(f"page rule {spec!r}: the name {wrong}")
            rules[path.strip()] = name.strip()
        return cls(rules or DEFAULT_PAGES)

    @property
    def names(self) -> list[str]:
        return sorted(set(self._rules.values()))

    def classify(self, article_id: str | None, current_page: str | None) -> Target | None:
        """A post by its id; otherwise a configured page by its path, which starts with
        `/` as `location.pathname` does (an empty or relative one names no page)."""
        if article_id is not None:
            return Target("post", article_id)
        if current_page is None or not current_page.startswith("/"):
            return None
        name = self._rules.get(normalise_path(current_page))
        return Target("page", name) if name else None


def referrer_host(referrer: str | None, site_domains: Iterable[str]) -> str | None:
    """See `_referrer_host`; cached, since a blog's referrers repeat."""
    if not referrer:
        return None
    return _referrer_host(referrer, tuple(site_domains))


@lru_cache(maxsize=4096)
def _referrer_host(referrer: str, site_domains: tuple[str, ...]) -> str | None:
    """The host of an external http(s) referrer, or None for internal, empty or odd ones.

    The host is a DNS name in its ASCII form (see `dns_host`): a Unicode host and its
    punycode count as one, and anything else (an IP address, a label of 64, a name of
    254) is no external referrer, so the view still counts. A subdomain of a site
    domain is internal too: `blog.example.com` under `example.com`.
    """
    if not referrer:
        return None
    try:
        # Browsers read `\` as `/` in http(s) URLs (WHATWG): `http://a.example\@b.example/`
        # came from a.example, not b.example.
        parts = urlsplit(referrer.strip().replace("\\", "/"))
        if "[" in parts.netloc:
            return None  # an IP literal (v6 or vFuture): no DNS host
        host = dns_host(parts.hostname or "")
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or host is None:
        return None
    host = host.removeprefix("www.")
    for domain in site_domains:
        # `www.example.com` and `example.com` are one site, whichever was configured.
        domain = (dns_host(domain) or domain.lower().rstrip(".")).removeprefix("www.")
        if host == domain or host.endswith("." + domain):
            return None
    return host


# A label of a host name (RFC 1123): letters, digits and inner hyphens, 1 to 63.
_LABEL: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")


@lru_cache(maxsize=4096)
def dns_host(name: str) -> str | None:
    """`name` as the ASCII DNS host it names, or None if it names none.

    IDNA 2008 with the UTS 46 mapping (what browsers do): case and width folded,
    Unicode labels in punycode, punycode labels checked. Every label is 1 to 63
    letters, digits and inner hyphens, the whole at most 253 without the final dot,
    and the last label starts with a letter (no top-level domain is numeric), so
    IPv4 in any notation and IPv6 are not hosts. At most 253 bytes, ASCII: the result
    always fits the `Referrer` sort key.
    """
    if not name or len(name) > sizes.MAX_HOST_CHARS + 1:
        return None  # a Unicode label is never longer than its punycode
    try:
        if not name.isascii():
            name = idna.uts46_remap(name, std3_rules=False, transitional=False)
        labels = name.lower().removesuffix(".").split(".")
        for i, label in enumerate(labels):
            if not label.isascii():
                labels[i] = idna.alabel(label).decode("ascii")
            elif label.startswith("xn--"):
                idna.ulabel(label)  # only to refuse a punycode label IDNA would not make
    except (idna.IDNAError, UnicodeError):
        return None
    host = ".".join(labels)
    if (len(host) > sizes.MAX_HOST_CHARS or not labels[-1][:1].isalpha()
            or not all(_LABEL.match(label) for label in labels)):
        return None
    return host
