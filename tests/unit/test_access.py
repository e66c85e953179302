"""Where a login sends its operator next: this site only, and a header value always."""

import pytest
from livecount.node.access import safe_next


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "x",
        "//evil.example",
        "/\\evil.example",
        "/login?next=/",
        "/a\nb",
        "/" + "a" * 2048,
    ],
)
def test_anything_but_a_path_here_goes_home(value: str | None) -> None:
    assert safe_next(value) == "/"


@pytest.mark.parametrize(
    ("value", "location"),
    [
        ("/", "/"),
        ("/?a=b&c=d#post=x", "/?a=b&c=d#post=x"),
        # found by a hostile trial: these were a 500 (not a valid Location header)
        ("/\u3002evil.com", "/%E3%80%82evil.com"),
        ("/\x7f/x", "/%7F/x"),
        ("/\u2028x", "/%E2%80%A8x"),
        ("/\uff0f\uff0fevil.com", "/%EF%BC%8F%EF%BC%8Fevil.com"),
        ("/#post=caf\u00e9", "/#post=caf%C3%A9"),
    ],
)
def test_a_path_here_goes_as_ascii(value: str, location: str) -> None:
    assert safe_next(value) == location
    assert location.isascii()
