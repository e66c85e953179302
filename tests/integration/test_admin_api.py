"""The dashboard's admin routes on DynamoDB Local: the operator's alone, and the same
operations as `livecount admin`."""

import json
from pathlib import Path
from typing import Any

import pytest
from livecount.aws.store import Store
from livecount.core import moves
from livecount.core.ledger import Counts, Delta
from livecount.core.moves import Operation
from livecount.core.pages import Target
from livecount.node.admin_api import AdminApi, operator_only
from livecount.node.auth import Guard
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from tests.support import flush_of


@pytest.fixture
def guard(tmp_path: Path) -> Guard:
    return Guard(tmp_path / "admin-token", public=["all"])  # --public opens no admin route


@pytest.fixture
def told() -> list[tuple[str, Counts | None]]:
    return []


@pytest.fixture
def api(local_store: Store, guard: Guard, told: list[tuple[str, Counts | None]]) -> AdminApi:
    async def reset(articles: list[str]) -> None:  # forget what this node showed of them
        told.extend((article, None) for article in articles)

    return AdminApi(local_store, operator_only(guard), lambda a, c: told.append((a, c)),
                    reset=reset)


async def ask(api: AdminApi, path: str, method: str = "POST", token: str | None = None,
              **headers: str) -> tuple[Response, Any]:
    sent = Headers({"Host": "stats.example"} | headers)
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    answer = await api(Request(path, sent, method), "192.0.2.1")
    return answer, json.loads(answer.body)


async def test_every_route_needs_the_operators_token(api: AdminApi, local_store: Store,
                                                      guard: Guard):
    await local_store.flush(flush_of(targets={Target("post", "old"): Delta(3, 3)}))
    for path in ("/api/admin/rename?from=old&to=new", "/api/admin/delete?articleId=old",
                 "/api/admin/operation?articleId=old"):
        for token in (None, "not-the-token-at-all"):
            answer, body = await ask(api, path, token=token)
            assert answer.status_code == 401 and body["error"] == "unauthorized", path
    # A page of another site that holds the operator's cookie cannot act with it.
    answer, body = await ask(api, "/api/admin/delete?articleId=old", token=guard.current(),
                             Origin="https://evil.example")
    assert (answer.status_code, body["error"]) == (403, "cross_origin")
    raw = await local_store.ddb.get_item(TableName=local_store.tables.writer,
                                         Key={"articleId": {"S": "old"}})
    assert raw["Item"]["totalViews"] == {"N": "3"}  # nothing happened


async def test_a_rename_answers_what_it_did_and_tells_this_nodes_pages(
        api: AdminApi, local_store: Store, guard: Guard, told: list[tuple[str, Counts | None]]):
    await local_store.flush(flush_of(targets={Target("post", "old"): Delta(3, 2),
                                              Target("post", "new"): Delta(5, 5)}))
    answer, body = await ask(api, "/api/admin/rename?from=old&to=new", token=guard.current(),
                             Origin="http://stats.example")
    assert answer.status_code == 200
    assert body == {"status": "done", "operation": "rename", "articleId": "old", "to": "new",
                    "resumed": False, "itemsMoved": 1,
                    "movedViews": {"totalViews": 3, "uniqueViews": 2},
                    "now": {"totalViews": 8, "uniqueViews": 7}}
    # this node's pages: the old id's count is read again, the new id's is the merge
    assert told == [("old", None), ("new", Counts(8, 7))]
    answer, body = await ask(api, "/api/admin/operation?articleId=old", "GET",
                             token=guard.current())
    assert body["operation"] | {"started": ""} == {"operation": "rename", "articleId": "old",
                                                   "to": "new", "state": "done", "started": ""}


@pytest.mark.parametrize(("path", "method", "status", "error"), [
    ("/api/admin/rename?from=old&to=new", "GET", 405, "method_not_allowed"),
    ("/api/admin/operation?articleId=old", "POST", 405, "method_not_allowed"),
    ("/api/admin/rename?from=old", "POST", 400, "invalid_parameter"),
    ("/api/admin/delete?articleId=", "POST", 400, "invalid_parameter"),
    ("/api/admin/delete?articleId=a%00b", "POST", 400, "invalid_parameter"),
    ("/api/admin/rename?from=a&to=a", "POST", 400, "invalid_parameter"),
    ("/api/admin/purge?articleId=a", "POST", 404, "not_found"),
])
async def test_mistakes_get_clear_answers(api: AdminApi, guard: Guard, path: str, method: str,
                                          status: int, error: str):
    answer, body = await ask(api, path, method, token=guard.current())
    assert (answer.status_code, body["error"]) == (status, error)
    if status == 405:
        assert answer.headers["Allow"] in ("POST", "GET, HEAD")


async def test_a_long_operation_answers_running_and_then_its_outcome(
        local_store: Store, guard: Guard):
    await local_store.flush(flush_of(targets={Target("post", "old"): Delta(2, 2)}))
    api = AdminApi(local_store, operator_only(guard), wait=0)
    answer, body = await ask(api, "/api/admin/delete?articleId=old", token=guard.current())
    assert (answer.status_code, body["status"]) == (202, "running")
    api.wait = 30
    answer, body = await ask(api, "/api/admin/delete?articleId=old", token=guard.current())
    assert answer.status_code == 200 and body["movedViews"]["totalViews"] in (0, 2)
    raw = await local_store.ddb.get_item(TableName=local_store.tables.writer,
                                         Key={"articleId": {"S": "old"}})
    assert raw["Item"]["totalViews"] == {"N": "0"}


async def test_another_unfinished_operation_is_a_conflict(api: AdminApi, local_store: Store,
                                                          guard: Guard):
    await local_store.ddb.put_item(**moves.start_request(
        local_store.tables.index, Operation("old", "new", "running", "2026-01-01T00:00:00Z")))
    answer, body = await ask(api, "/api/admin/delete?articleId=old", token=guard.current())
    assert (answer.status_code, body["error"]) == (409, "operation_running")
    assert "rename of 'old' to 'new'" in body["detail"]


async def test_an_id_never_counted_is_not_found(api: AdminApi, guard: Guard):
    answer, body = await ask(api, "/api/admin/delete?articleId=ghost", token=guard.current())
    assert (answer.status_code, body["error"]) == (404, "never_counted")
