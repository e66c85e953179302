"""Rename and delete plans: what each move takes, gives, and on what condition."""

import pytest
from livecount.core.moves import ADMIN, Operation, Plan, Source, operation_key, start_request
from livecount.core.pages import Target
from livecount.core.report_rows import buckets_of
from livecount.core.tables import Tables

T = Tables.named("p_")


def writer(total: int, unique: int, title: str = "", admin: int = 0) -> dict:
    item = {
        "articleId": {"S": "old"},
        "totalViews": {"N": str(total)},
        "uniqueViews": {"N": str(unique)},
        "version": {"N": "7"},
        "flush:n1": {"N": "99"},
    }
    if title:
        item["articleTitle"] = {"S": title}
    if admin:
        item[ADMIN] = {"N": str(admin)}
    return item


def test_a_source_reads_the_counts_its_kind_keeps():
    assert Source.of("count", writer(5, 3, "Old", admin=2)) == Source("count", "", (5, 3), 2, "Old")
    assert Source.of(
        "timeline",
        {
            "target": {"S": "post#old"},
            "hour": {"S": "2026-01-02T03"},
            "totalViews": {"N": "4"},
            "uniqueViews": {"N": "1"},
        },
    ) == Source("timeline", "2026-01-02T03", (4, 1), 0)
    assert Source.of(
        "referrer", {"target": {"S": "post#old"}, "host": {"S": "a.example"}, "views": {"N": "2"}}
    ) == Source("referrer", "a.example", (2,), 0)


def test_moves_skip_emptied_items_and_leave_the_count_item_for_last():
    sources = [
        Source("count", "", (5, 3), 0),
        Source("timeline", "h", (0, 0), 1),
        Source("referrer", "a.example", (2,), 0),
        Source("count", "", (0, 0), 3, ""),
    ]
    moved = Plan("old", "new").moves(sources)
    assert [s.kind for s in moved] == ["referrer", "count"]
    assert Source("count", "", (0, 0), 1, "Title left").empty is False  # its title goes too


def test_a_rename_moves_the_count_item_on_condition_of_its_admin_counter():
    source = Source.of("count", writer(5, 3, "Old", admin=2))
    take, give = Plan("old", "new").transaction(source, T)
    take, give = take["Update"], give["Update"]
    assert take["TableName"] == give["TableName"] == "p_PostCountWriter"
    assert take["Key"] == {"articleId": {"S": "old"}}
    assert give["Key"] == {"articleId": {"S": "new"}}
    names, values = take["ExpressionAttributeNames"], take["ExpressionAttributeValues"]
    assert take["ConditionExpression"] == "#adm = :seen" and values[":seen"] == {"N": "2"}
    assert names["#adm"] == ADMIN and "#adm :one" in take["UpdateExpression"]
    taken = {names[f"#a{i}"]: values[f":a{i}"]["N"] for i in range(2)}
    assert taken == {"totalViews": "-5", "uniqueViews": "-3"}
    # Both bump `version`, so the stream copy carries both images to the reader table.
    assert "#v :one" in take["UpdateExpression"] and "#v :one" in give["UpdateExpression"]
    assert take["UpdateExpression"].endswith("REMOVE #t")
    gnames, gvalues = give["ExpressionAttributeNames"], give["ExpressionAttributeValues"]
    given = {gnames[f"#a{i}"]: gvalues[f":a{i}"]["N"] for i in range(2)}
    assert given == {"totalViews": "5", "uniqueViews": "3"}
    assert "SET #t = if_not_exists(#t, :t)" in give["UpdateExpression"]  # NEW's title wins
    assert "ConditionExpression" not in give  # servers may be adding to NEW meanwhile


def test_an_item_never_moved_is_taken_on_condition_that_no_move_touched_it():
    source = Source.of(
        "referrer", {"target": {"S": "post#old"}, "host": {"S": "a.example"}, "views": {"N": "2"}}
    )
    take, give = Plan("old", "new").transaction(source, T)
    assert take["Update"]["ConditionExpression"] == "attribute_not_exists(#adm)"
    assert give["Update"]["Key"] == {"target": {"S": "post#new"}, "host": {"S": "a.example"}}
    assert give["Update"]["TableName"] == "p_Referrer"


def test_a_delete_takes_rows_out_of_the_site_and_gives_the_count_item_nowhere():
    row = Source("timeline", "2026-01-02T03", (4, 1), 0)
    taken, site, *rollups = Plan("old").transaction(row, T)
    assert taken["Update"]["ExpressionAttributeValues"][":a0"] == {"N": "-4"}
    assert site["Update"]["Key"] == {"target": {"S": "site"}, "hour": {"S": "2026-01-02T03"}}
    values = site["Update"]["ExpressionAttributeValues"]
    assert (values[":a0"], values[":a1"]) == ({"N": "-4"}, {"N": "-1"})
    # The hour's rollups, in the same transaction: the post's and the site's go down.
    keys = [
        (
            u["Update"]["Key"]["target"]["S"],
            u["Update"]["Key"]["hour"]["S"],
            u["Update"]["ExpressionAttributeValues"][":a0"]["N"],
        )
        for u in rollups
    ]
    assert keys == [
        (b, ref, "-4") for b in buckets_of("2026-01-02T03") for ref in ("post#old", "site")
    ]


def test_a_rename_moves_an_hours_rollups_with_it():
    row = Source("timeline", "2026-01-02T03", (4, 1), 0)
    _, _, *rollups = Plan("old", "new").transaction(row, T)
    keys = [
        (
            u["Update"]["Key"]["target"]["S"],
            u["Update"]["Key"]["hour"]["S"],
            u["Update"]["ExpressionAttributeValues"][":a0"]["N"],
        )
        for u in rollups
    ]
    assert keys == [
        (b, ref, n)
        for b in buckets_of("2026-01-02T03")
        for ref, n in (("post#old", "-4"), ("post#new", "4"))
    ]
    assert not Plan("old", "new").moves([Source("rollup", "dall", (4, 1), 0)])
    (only,) = Plan("old").transaction(Source("count", "", (5, 3), 0, "Old"), T)
    assert only["Update"]["Key"] == {"articleId": {"S": "old"}}


def test_a_purge_deletes_only_an_item_still_at_zero_and_unmoved_since():
    request = Plan("old").purge(Source("referrer", "a.example", (0,), 4), T)
    assert request["Key"] == {"target": {"S": "post#old"}, "host": {"S": "a.example"}}
    assert "#a0 = :zero" in request["ConditionExpression"]
    assert "#adm = :seen" in request["ConditionExpression"]
    assert request["ExpressionAttributeValues"][":seen"] == {"N": "4"}


def test_a_rename_onto_itself_is_refused():
    with pytest.raises(ValueError, match="itself"):
        Plan("a", "a")


def test_operation_records_round_trip_and_block_other_operations():
    running = Operation(Plan("old", "new"), "running", "2026-01-01T00:00:00Z")
    item = running.item()
    assert item["index"] == {"S": "admin"} and item["target"] == {"S": "post#old"}
    assert {k: item[k] for k in ("index", "target")} == operation_key(Target("post", "old"))
    assert Operation.from_item(item) == running
    assert Operation.from_item({"target": {"S": "site"}, "state": {"S": "done"}}) is None
    request = start_request(T.index, running)
    assert (
        request["ConditionExpression"]
        == "attribute_not_exists(#t) OR #s = :done OR (#op = :op AND #to = :to)"
    )
    delete = start_request(T.index, Operation(Plan("old"), "running", ""))
    assert "attribute_not_exists(#to)" in delete["ConditionExpression"]
    assert delete["ExpressionAttributeValues"][":op"] == {"S": "delete"}
    page = Operation(Plan("/about", None, "page"), "done", "2026-01-01T00:00:00Z")
    assert page.item()["target"] == {"S": "page#/about"}
    assert Operation.from_item(page.item()) == page


def test_a_page_moves_its_home_and_profile_item_and_its_page_rows():
    """A page's count is its HomeAndProfile item: no `version` (no stream copies it), no
    title; its rows are under `page#<name>`."""
    item = {
        "pageName": {"S": "Home_Page"},
        "totalViews": {"N": "9"},
        "uniqueViews": {"N": "4"},
        "flush:n1": {"N": "3"},
    }
    source = Source.of("count", item)
    assert source == Source("count", "", (9, 4), 0)
    (only,) = Plan("Home_Page", None, "page").transaction(source, T)
    assert only["Update"]["TableName"] == "p_HomeAndProfile"
    assert only["Update"]["Key"] == {"pageName": {"S": "Home_Page"}}
    assert "#v" not in only["Update"]["UpdateExpression"]
    take, give = Plan("/about", "/about-us", "page").transaction(source, T)
    assert give["Update"]["Key"] == {"pageName": {"S": "/about-us"}}
    row = Source("referrer", "a.example", (2,), 1)
    take, site = Plan("/about", None, "page").transaction(row, T)
    assert take["Update"]["Key"] == {"target": {"S": "page#/about"}, "host": {"S": "a.example"}}
    assert site["Update"]["Key"] == {"target": {"S": "site"}, "host": {"S": "a.example"}}
    assert Plan("/about", None, "page").describe() == "delete of the page '/about'"


def test_operations_cross_when_one_moves_the_others_destination_or_into_its_source():
    def running(old: str, new: str) -> Operation:
        return Operation(Plan(old, new), "running", "")

    assert running("new", "old").crosses(Plan("old", "new"))  # a swap
    assert running("x", "old").crosses(Plan("old"))  # a rename into what is deleted
    assert not running("x", "new").crosses(Plan("old", "new"))  # both into one: they add
    assert not running("old", "new").crosses(Plan("old", "new"))  # itself (resumed)
    assert not Operation(Plan("new", "old"), "done", "").crosses(Plan("old", "new"))
    assert not Operation(Plan("new", "old", "page"), "running", "").crosses(Plan("old", "new"))
