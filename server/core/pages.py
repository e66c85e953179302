"""What a view is a view of: a post, a known page, and an external referrer host.

Pure functions over strings, configured once at start-up.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, Final, Literal, NamedTuple
from urllib.parse import unquote, urlsplit

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

    @property
    def named(self) -> dict[str, str]:
        """How the protocol and the API name it: `{"articleId": id}` or `{"pageName": id}`."""
        return {"articleId" if self.kind == "post" else "pageName": self.id}

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


DEFAULT_PATTERNS: Final = ("/posts/{id}",)
UNMATCHED: Final = ("page", "refuse")  # what a path that names no post or page becomes

# A pattern's placeholders: `{id}` (once) is the post's id; the others match a path
# segment and are left out of it (`/{yyyy}/{mm}/{dd}/{id}/`).
_PLACEHOLDERS: Final = {
    "id": "([^/]+)",
    "yyyy": "[0-9]{4}",
    "mm": "[0-9]{2}",
    "dd": "[0-9]{2}",
    "*": "[^/]+",
}
_PLACEHOLDER: Final = re.compile(r"\{([^{}]*)\}")


class PageError(ValueError):
    """A view whose path counts as nothing, with the protocol's error code and why."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def normalise_path(path: str) -> str:
    """The one form of a path, for keys and for matching: no query or fragment,
    percent-escapes decoded once as UTF-8, runs of `/` as one, a final `/index.html`
    and trailing slashes folded (`/blog/x/index.html?a#b` is `/blog/x`).

    Raises ValueError when the escapes are not UTF-8 (the key would not be the path)."""
    path = path.split("#", 1)[0].split("?", 1)[0]
    if "%" in path:
        try:
            path = unquote(path, errors="strict")
        except UnicodeDecodeError:
            raise ValueError("its percent-escapes are not UTF-8") from None
    if not path.startswith("/"):
        path = "/" + path
    path = _SLASHES.sub("/", path)
    path = path.removesuffix("/index.html")
    return path.rstrip("/") or "/"


_SLASHES: Final = re.compile("//+")


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """`/blog/{id}/` → a regex over normalised paths whose one group is the post's id."""
    if not pattern.startswith("/") or pattern.count("{id}") != 1:
        raise ValueError(
            "must start with / and hold {id} once, such as /blog/{id}/ or /{yyyy}/{mm}/{dd}/{id}/"
        )
    if "?" in pattern or "#" in pattern:
        raise ValueError("must be a path, without ? or #")
    normal = normalise_path(pattern)
    parts, end = [], 0
    for found in _PLACEHOLDER.finditer(normal):
        if (regex := _PLACEHOLDERS.get(found.group(1))) is None:
            raise ValueError(
                "must hold only the placeholders "
                + ", ".join("{" + name + "}" for name in _PLACEHOLDERS)
                + f", not {found.group()}"
            )
        parts += [re.escape(normal[end : found.start()]), regex]
        end = found.end()
    rest = normal[end:]
    if "{" in rest or "}" in rest or any("{" in p or "}" in p for p in parts[::2]):
        raise ValueError("must have braces only around a placeholder")
    return re.compile("".join(parts) + re.escape(rest))


class PageRules:
    """Where a view of a path counts: a configured page (`--page`), else the post a
    `--path-pattern` names, else a page of its own named by the path (or refused, with
    `--unmatched-paths refuse`). Imports map paths with the same rules, so a URL's
    history and its live views land on one id."""

    def __init__(
        self,
        rules: Mapping[str, str] = DEFAULT_PAGES,
        patterns: Iterable[str] = DEFAULT_PATTERNS,
        unmatched: str = "page",
    ) -> None:
        self._rules = {normalise_path(path): name for path, name in rules.items()}
        self.patterns = tuple(patterns)
        self._compiled = [compile_pattern(p) for p in self.patterns]
        if unmatched not in UNMATCHED:
            raise ValueError(f"unmatched paths must be one of {', '.join(UNMATCHED)}")
        self.unmatched = unmatched
        self._given = (dict(rules), self.patterns, unmatched)
        self._classify = lru_cache(maxsize=4096)(self._path)  # a blog's paths repeat

    def __reduce__(self) -> tuple[type[PageRules], tuple[Any, ...]]:
        """Pickled for `--workers` by what it was made of (its cache is not picklable)."""
        return PageRules, self._given

    @classmethod
    def parse(
        cls,
        specs: Iterable[str],
        patterns: Iterable[str] = DEFAULT_PATTERNS,
        unmatched: str = "page",
    ) -> PageRules:
        """Build from `PATH=NAME` strings (the `--page` option); none means the defaults."""
        rules: dict[str, str] = {}
        for spec in specs:
            path, sep, name = spec.partition("=")
            if not sep or not path.strip() or not name.strip():
                raise ValueError(f"page rule {spec!r} is not PATH=NAME")
            if (wrong := sizes.problem(name.strip(), sizes.ID)) is not None:
                raise ValueError(f"page rule {spec!r}: the name {wrong}")
            if name.strip().startswith("/"):
                raise ValueError(
                    f"page rule {spec!r}: a name starting with / is the name of a path's own page"
                )
            rules[path.strip()] = name.strip()
        return cls(rules or DEFAULT_PAGES, patterns, unmatched)

    @property
    def names(self) -> list[str]:
        return sorted(set(self._rules.values()))

    def classify(self, article_id: str | None, current_page: str | None) -> Target:
        """A post by its id; otherwise what the path counts as (see the class).
        Raises PageError for a path that counts as nothing."""
        if article_id is not None:
            return Target("post", article_id)
        if current_page is None or not current_page.startswith("/"):
            raise PageError(
                "unrecognised_page",
                "a view needs an articleId, or a currentPage that is a path starting with /",
            )
        return self._classify(current_page)

    def path_of(self, target: Target, current_page: str | None) -> str | None:
        """Where a post's view was, for a link to it: the normalised `currentPage`, or
        None for a page (its rule or its name says where it is) or without a path."""
        if target.kind != "post" or not current_page or not current_page.startswith("/"):
            return None
        return _link_path(current_page)

    def where(self, target: Target) -> str | None:
        """A page's path: the first `--page` rule naming it, or its name when it is a
        path's own page; None for a post (its path is stored with its counts)."""
        if target.kind != "page":
            return None
        if target.id.startswith("/"):
            return target.id
        return next((path for path, name in self._rules.items() if name == target.id), None)

    def page(self, name: str) -> Target:
        """A page by its configured name, or by a path (its own page); PageError if none."""
        if name in self._rules.values():
            return Target("page", name)
        if name.startswith("/") and self.unmatched == "page":
            return _own_page(_normal(name))
        raise PageError(
            "unknown_page",
            f"no page named {name[:256]!r}; pages are "
            f"{', '.join(self.names)}, or a path starting with /",
        )

    def _path(self, path: str) -> Target:
        normal = _normal(path)
        if (name := self._rules.get(normal)) is not None:
            return Target("page", name)
        for pattern in self._compiled:
            if found := pattern.fullmatch(normal):
                if (wrong := sizes.problem(found.group(1), sizes.ID)) is not None:
                    raise PageError("invalid_field", f"the post id in the path {wrong}")
                return Target("post", found.group(1))
        if self.unmatched == "refuse":
            raise PageError(
                "unrecognised_page",
                (
                    f"{normal[:256]!r} is not a known page and no --path-pattern names a post in "
                    "it: the server counts it with --unmatched-paths page, or as a post with "
                    "--path-pattern (such as /blog/{id}/)"
                ),
            )
        return _own_page(normal)


def _normal(path: str) -> str:
    try:
        return normalise_path(path)
    except ValueError as exc:
        raise PageError("invalid_field", f"the path {exc}") from None


@lru_cache(maxsize=4096)
def _link_path(path: str) -> str | None:
    try:
        return normalise_path(path)
    except ValueError:
        return None


def _own_page(normal: str) -> Target:
    """A path's own page: its normal form is its name, so it must fit an id."""
    if (wrong := sizes.problem(normal, sizes.ID)) is not None:
        raise PageError(
            "invalid_field",
            f"the path, as the name of its page, {wrong}: give the page an articleId",
        )
    return Target("page", normal)


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
    if (
        len(host) > sizes.MAX_HOST_CHARS
        or not labels[-1][:1].isalpha()
        or not all(_LABEL.match(label) for label in labels)
    ):
        return None
    return host
