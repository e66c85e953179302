"""The dashboard's admin routes on DynamoDB Local, through the node's route table: the
operator's alone, JSON bodies in, and the same operations as `livecount admin`."""

import json
from pathlib import Path
from typing import Any

import pytest
from livecount.aws.store import Store
from livecount.core import moves
from livecount.core.ledger import Counts, Delta
from livecount.core.moves import Operation, Plan
from livecount.core.pages import PageRules, Target
from livecount.node.admin_api import AdminApi, operator_only
from livecount.node.auth import Guard
from livecount.node.http import Routes
from livecount.node.router import Route, parse_target
from websockets.datastructures import Headers
from websockets.http11 import Response

from tests.support import flush_of


@pytest.fixture
def guard(tmp_path: Path) -> Guard:
    return Guard(tmp_path / "admin-token", public=["all"])  # --public opens no admin route


@pytest.fixture
def told() -> list[tuple[str, Counts | None]]:
    return []


@pytest.fixture
def api(local_store: Store, guard: Guard, told: list[tuple[str, Counts | None]]) -> AdminApi:
    async def reset(targets: list[Target]) -> None:  # forget what this node showed of them
        told.extend((target.ref, None) for target in targets)

    return AdminApi(
        local_store, operator_only(guard), lambda a, c: told.append((a, c)), reset=reset
    )


async def ask(
    api: AdminApi,
    path: str,
    method: str = "POST",
    token: str | None = None,
    body: Any = None,
    raw: bytes | None = None,
    **headers: str,
) -> tuple[Response, Any]:
    """One request through the node's route table and router, as a connection would."""
    sent = Headers({"Host": "stats.example"} | {k.replace("_", "-"): v for k, v in headers.items()})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    if body is not None or raw is not None:
        sent.setdefault("Content-Type", "application/json")
    request = parse_target(method, path, sent, "192.0.2.1")
    assert not isinstance(request, Response)
    request.body = raw if raw is not None else json.dumps(body).encode() if body else b""
    router = Routes(api.operations.store, lambda target: None, PageRules(), admin=api).router
    route = router.find(request)
    answer = route if not isinstance(route, Route) else await router(request, route)
    return answer, json.loads(answer.body)


async def test_every_route_needs_the_operators_token(
    api: AdminApi, local_store: Store, guard: Guard
):
    await local_store.flush(flush_of(targets={Target("post", "old"): Delta(3, 3)}))
    for method, path, sent in (
        ("POST", "/api/admin/rename", {"from": "old", "to": "new"}),
        ("POST", "/api/admin/delete", {"articleId": "old"}),
        ("POST", "/api/admin/delete", {"pageName": "Home_Page"}),
        ("POST", "/api/admin/delete", {"prefix": "o"}),
        ("POST", "/api/admin/delete", {"prefix": "o", "dryRun": True}),
        ("GET", "/api/admin/operation?articleId=old", None),
    ):
        for token in (None, "not-the-token-at-all"):
            answer, body = await ask(api, path, method, token=token, body=sent)
            assert answer.status_code == 401 and body["error"] == "unauthorized", path
    # A page of another site that holds the operator's cookie cannot act with it.
    for sent in ({"articleId": "old"}, {"prefix": "o"}):
        answer, body = await ask(
            api,
            "/api/admin/delete",
            token=guard.current(),
            body=sent,
            Origin="https://evil.example",
        )
        assert (answer.status_code, body["error"]) == (403, "cross_origin")
    raw = await local_store.ddb.get_item(
        TableName=local_store.tables.writer, Key={"articleId": {"S": "old"}}
    )
    assert raw["Item"]["totalViews"] == {"N": "3"}  # nothing happened


async def test_a_rename_answers_what_it_did_and_tells_this_nodes_pages(
    api: AdminApi, local_store: Store, guard: Guard, told: list[tuple[str, Counts | None]]
):
    await local_store.flush(
        flush_of(targets={Target("post", "old"): Delta(3, 2), Target("post", "new"): Delta(5, 5)})
    )
    answer, body = await ask(
        api,
        "/api/admin/rename",
        token=guard.current(),
        body={"from": "old", "to": "new"},
        Origin="http://stats.example",
    )
    assert answer.status_code == 200
    assert body == {
        "status": "done",
        "operation": "rename",
        "articleId": "old",
        "to": "new",
        "resumed": False,
        "itemsMoved": 1,
        "movedViews": {"totalViews": 3, "uniqueViews": 2},
        "now": {"totalViews": 8, "uniqueViews": 7},
    }
    # this node's pages: both ids are read again (the new one may have taken the old
    # one's title), and the new id's count is the merge
    assert told == [("post#old", None), ("post#new", None), ("new", Counts(8, 7))]
    answer, body = await ask(
        api, "/api/admin/operation?articleId=old", "GET", token=guard.current()
    )
    assert body["operation"] | {"started": ""} == {
        "operation": "rename",
        "articleId": "old",
        "to": "new",
        "state": "done",
        "started": "",
    }


@pytest.mark.parametrize(
    ("path", "method", "body", "status", "error", "parameter"),
    [
        ("/api/admin/rename", "GET", None, 405, "method_not_allowed", None),
        ("/api/admin/operation?articleId=old", "POST", None, 405, "method_not_allowed", None),
        ("/api/admin/rename", "POST", b'{"from":"old"}', 400, "invalid_parameter", "to"),
        ("/api/admin/delete", "POST", b'{"articleId":""}', 400, "invalid_parameter", "articleId"),
        (
            "/api/admin/delete",
            "POST",
            rb'{"articleId":"a\u0000b"}',
            400,
            "invalid_parameter",
            "articleId",
        ),
        ("/api/admin/delete", "POST", b'{"articleId":7}', 400, "invalid_parameter", "articleId"),
        ("/api/admin/rename", "POST", b'{"from":"a","to":"a"}', 400, "invalid_parameter", "to"),
        (
            "/api/admin/rename",
            "POST",
            b'{"from":"a","to":"b","purge":true}',
            400,
            "invalid_parameter",
            "purge",
        ),
        ("/api/admin/delete", "POST", b'["a"]', 400, "invalid_parameter", "body"),
        ("/api/admin/delete", "POST", b"articleId=a", 400, "invalid_parameter", "body"),
        ("/api/admin/delete", "POST", b"", 400, "invalid_parameter", "body"),
        ("/api/admin/delete", "POST", b"{}", 400, "invalid_parameter", "articleId"),
        (
            "/api/admin/delete",
            "POST",
            b'{"articleId":"a","prefix":"a"}',
            400,
            "invalid_parameter",
            "prefix",
        ),
        (
            "/api/admin/delete",
            "POST",
            b'{"articleId":"a","dryRun":true}',
            400,
            "invalid_parameter",
            "dryRun",
        ),
        (
            "/api/admin/delete",
            "POST",
            b'{"prefix":"a","dryRun":1}',
            400,
            "invalid_parameter",
            "dryRun",
        ),
        ("/api/admin/delete", "POST", b'{"prefix":""}', 400, "invalid_parameter", "prefix"),
        ("/api/admin/delete", "POST", b'{"pageName":null}', 400, "invalid_parameter", "pageName"),
        ("/api/admin/operation", "GET", None, 400, "invalid_parameter", "articleId"),
        # The parameters of old, in the query: told to send a JSON body instead.
        ("/api/admin/rename?from=a&to=b", "POST", None, 400, "invalid_parameter", "from"),
        (
            "/api/admin/delete?articleId=a",
            "POST",
            b'{"articleId":"a"}',
            400,
            "invalid_parameter",
            "articleId",
        ),
        ("/api/admin/purge", "POST", b"{}", 404, "not_found", None),
    ],
)
async def test_mistakes_get_clear_answers(
    api: AdminApi,
    guard: Guard,
    path: str,
    method: str,
    body: bytes | None,
    status: int,
    error: str,
    parameter: str | None,
):
    answer, said = await ask(api, path, method, token=guard.current(), raw=body)
    assert (answer.status_code, said["error"]) == (status, error), said
    assert said.get("parameter") == parameter, said
    if status == 405:
        assert answer.headers["Allow"] == ("POST" if "rename" in path else "GET, HEAD")
    if "?" in path and status == 400:
        assert "JSON body" in said["detail"], said


async def test_a_body_must_say_it_is_json(api: AdminApi, guard: Guard):
    """A form or `text/plain` (what another site's page may send without asking first)
    is refused before it is read."""
    for kind in ("text/plain", "application/x-www-form-urlencoded", ""):
        answer, said = await ask(
            api,
            "/api/admin/delete",
            token=guard.current(),
            raw=b'{"articleId":"old"}',
            Content_Type=kind,
        )
        assert (answer.status_code, said["error"]) == (415, "unsupported_media_type"), kind
        assert "Content-Type: application/json" in said["detail"]


async def test_a_long_operation_answers_running_and_then_its_outcome(
    local_store: Store, guard: Guard
):
    await local_store.flush(flush_of(targets={Target("post", "old"): Delta(2, 2)}))
    api = AdminApi(local_store, operator_only(guard), wait=0)
    answer, body = await ask(
        api, "/api/admin/delete", token=guard.current(), body={"articleId": "old"}
    )
    assert (answer.status_code, body["status"]) == (202, "running")
    api.wait = 2
    answer, body = await ask(
        api, "/api/admin/delete", token=guard.current(), body={"articleId": "old"}
    )
    # Finished meanwhile, it was kept for this answer: what it did, not a second run.
    assert answer.status_code == 200 and body["movedViews"]["totalViews"] == 2
    raw = await local_store.ddb.get_item(
        TableName=local_store.tables.writer, Key={"articleId": {"S": "old"}}
    )
    assert raw["Item"]["totalViews"] == {"N": "0"}


async def test_another_unfinished_operation_is_a_conflict(
    api: AdminApi, local_store: Store, guard: Guard
):
    await local_store.ddb.put_item(
        **moves.start_request(
            local_store.tables.index,
            Operation(Plan("old", "new"), "running", "2026-01-01T00:00:00Z"),
        )
    )
    answer, body = await ask(
        api, "/api/admin/delete", token=guard.current(), body={"articleId": "old"}
    )
    assert (answer.status_code, body["error"]) == (409, "operation_running")
    assert "rename of 'old' to 'new'" in body["detail"]


async def test_an_id_never_counted_is_not_found(api: AdminApi, guard: Guard):
    answer, body = await ask(
        api, "/api/admin/delete", token=guard.current(), body={"articleId": "ghost"}
    )
    assert (answer.status_code, body["error"]) == (404, "never_counted")


async def test_a_page_is_deleted_by_its_name(
    api: AdminApi, local_store: Store, guard: Guard, told: list[tuple[str, Counts | None]]
):
    await local_store.flush(flush_of(targets={Target("page", "Home_Page"): Delta(4, 3)}))
    answer, body = await ask(
        api, "/api/admin/delete", token=guard.current(), body={"articleId": "Home_Page"}
    )
    assert (answer.status_code, body["error"]) == (404, "never_counted")  # no post of that name
    answer, body = await ask(
        api, "/api/admin/delete", token=guard.current(), body={"pageName": "Home_Page"}
    )
    assert answer.status_code == 200, body
    assert (body["pageName"], body["movedViews"]) == (
        "Home_Page",
        {"totalViews": 4, "uniqueViews": 3},
    )
    assert told == [("page#Home_Page", None)]
    answer, body = await ask(
        api, "/api/admin/operation?pageName=Home_Page", "GET", token=guard.current()
    )
    assert (body["operation"]["pageName"], body["operation"]["state"]) == ("Home_Page", "done")


async def test_a_prefix_delete_runs_in_the_background_and_says_how_far_it_is(
    local_store: Store, guard: Guard
):
    tested = [Target("post", f"loadtest-{i}") for i in range(5)] + [Target("page", "loadtest-p")]
    await local_store.pages.register([*tested, Target("post", "real")], None)
    await local_store.flush(
        flush_of(targets={t: Delta(2, 1) for t in tested} | {Target("post", "real"): Delta(1, 1)})
    )
    told: list[Target] = []

    async def reset(targets: list[Target]) -> None:
        told.extend(targets)

    api = AdminApi(local_store, operator_only(guard), wait=0, reset=reset)
    token = guard.current()
    answer, body = await ask(
        api, "/api/admin/delete", token=token, body={"prefix": "loadtest-", "dryRun": True}
    )
    assert answer.status_code == 200 and body["status"] == "dryRun"
    assert (body["totalViews"], body["uniqueViews"], len(body["ids"])) == (12, 6, 6)
    assert {"pageName": "loadtest-p", "totalViews": 2, "uniqueViews": 1} in body["ids"]
    answer, body = await ask(api, "/api/admin/delete", token=token, body={"prefix": "loadtest-"})
    assert (answer.status_code, body["status"], body["of"]) == (202, "running", 6), body
    api.wait = 30
    answer, body = await ask(api, "/api/admin/delete", token=token, body={"prefix": "loadtest-"})
    assert answer.status_code == 200, body
    assert sorted(map(str, body["deleted"])) == sorted(map(str, (t.named for t in tested)))
    assert body["movedViews"] == {"totalViews": 12, "uniqueViews": 6} and body["refused"] == []
    assert sorted(told) == sorted(tested)  # this node forgets them at once
    assert await local_store.tracked() == [Target("post", "real")]
    assert await local_store.pages.count() == 1
    answer, body = await ask(api, "/api/admin/delete", token=token, body={"prefix": "loadtest-"})
    assert (answer.status_code, body["error"]) == (404, "never_counted")
    assert "no post or page with views has an id starting with 'loadtest-'" in body["detail"]
