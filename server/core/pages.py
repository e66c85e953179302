"""What a view is a view of: a post, a known page, and an external referrer host.

Pure functions over strings, configured once at start-up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import urlsplit

DEFAULT_PAGES: Final[Mapping[str, str]] = {
    "/": "Home_Page",
    "/pages/about": "About_Page",
    "/pages/contacts": "Contact_Page",
}

Kind = Literal["post", "page"]


@dataclass(frozen=True, slots=True)
class Target:
    """A counted thing: a post (`PostCountWriter`) or a page (`HomeAndProfile`)."""

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
            rules[path.strip()] = name.strip()
        return cls(rules or DEFAULT_PAGES)

    @property
    def names(self) -> list[str]:
        return sorted(set(self._rules.values()))

    def classify(self, article_id: str | None, current_page: str | None) -> Target | None:
        if article_id is not None:
            return Target("post", article_id)
        if current_page is None:
            return None
        name = self._rules.get(normalise_path(current_page))
        return Target("page", name) if name else None


def referrer_host(referrer: str | None, site_domains: Iterable[str]) -> str | None:
    """The host of an external http(s) referrer, or None for internal, empty or odd ones.

    A subdomain of a site domain is internal too: `blog.example.com` under `example.com`.
    """
    if not referrer:
        return None
    try:
        parts = urlsplit(referrer.strip())
        host = (parts.hostname or "").lower().rstrip(".")
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host:
        return None
    for domain in site_domains:
        domain = domain.lower().rstrip(".")
        if host == domain or host.endswith("." + domain):
            return None
    return host.removeprefix("www.")
