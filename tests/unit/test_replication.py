import zlib

from livecount.core import feed
from livecount.core.replication import Shard, copy_for, counts_of, readable
from livecount.core.stream_copy import copy_and_feed
from livecount.core.tables import Tables


def image(article: str, version: int, total: int = 1) -> dict:
    return {
        "articleId": {"S": article},
        "version": {"N": str(version)},
        "totalViews": {"N": str(total)},
        "uniqueViews": {"N": "1"},
    }


def record(event: str, new: dict | None = None, old: dict | None = None) -> dict:
    change: dict = {"Keys": {"articleId": {"S": "a"}}, "SequenceNumber": "1"}
    if new:
        change["NewImage"] = new
    if old:
        change["OldImage"] = old
    return {"eventName": event, "dynamodb": change}


def test_insert_and_modify_become_a_versioned_put():
    for event in ("INSERT", "MODIFY"):
        copy = copy_for(record(event, new=image("a", 3)))
        assert copy is not None and copy.action == "put" and copy.version == 3
        request = copy.request("Reader")
        assert request["Item"] == image("a", 3)
        assert request["ConditionExpression"] == "attribute_not_exists(#k) OR #v < :v"
        assert request["ExpressionAttributeValues"] == {":v": {"N": "3"}}


def test_remove_deletes_only_what_is_not_newer():
    copy = copy_for(record("REMOVE", old=image("a", 4)))
    assert copy is not None and copy.action == "delete"
    request = copy.request("Reader")
    assert request["Key"] == {"articleId": {"S": "a"}}
    assert request["ConditionExpression"] == "attribute_exists(#k) AND #v <= :v"


def test_images_without_a_version_are_not_copied():
    unversioned = {"articleId": {"S": "a"}, "totalViews": {"N": "1"}}
    assert copy_for(record("MODIFY", new=unversioned)) is None
    assert copy_for(record("REMOVE")) is None
    assert copy_for({"eventName": "MODIFY", "dynamodb": {}}) is None


def test_counts_of_an_image():
    assert counts_of(image("a", 1, total=5)) == ("a", 5, 1)
    assert counts_of({"totalViews": {"N": "1"}}) is None


def test_children_wait_for_their_parents():
    shards = [Shard("p", None), Shard("c1", "p"), Shard("c2", "c1")]
    assert [s.id for s in readable(shards, set())] == ["p"]
    assert [s.id for s in readable(shards, {"p"})] == ["c1"]
    assert [s.id for s in readable(shards, {"p", "c1"})] == ["c2"]
    assert readable(shards, {"p", "c1", "c2"}) == []


def test_a_parent_that_aged_out_of_the_stream_does_not_block():
    assert [s.id for s in readable([Shard("c", "gone")], set())] == ["c"]


def test_siblings_after_a_split_are_read_together():
    shards = [Shard("p", None), Shard("a", "p"), Shard("b", "p")]
    assert [s.id for s in readable(shards, {"p"})] == ["a", "b"]


def numbered(
    event: str,
    sequence: str,
    new: dict | None = None,
    old: dict | None = None,
) -> dict:
    made = record(event, new=new, old=old)
    made["dynamodb"]["SequenceNumber"] = sequence
    return made


TABLES = Tables.named("p_")


def test_copy_and_feed_turns_records_into_reader_writes_in_stream_order():
    records = [
        numbered("INSERT", "1", new=image("a", 1)),
        numbered("MODIFY", "2", new=image("a", 2, total=5)),
        {"eventName": "MODIFY", "dynamodb": {"SequenceNumber": "3"}},  # nothing to copy
        numbered("REMOVE", "4", old=image("a", 2)),
    ]
    work = copy_and_feed(records, TABLES, "node-1", 1_700_000_000.0)
    assert [(w.sequence, w.action) for w in work.writes] == [
        ("1", "put"),
        ("2", "put"),
        ("4", "delete"),
    ]
    assert [w.change for w in work.writes] == [("a", 1, 1), ("a", 5, 1), None]
    for write, rec in zip(work.writes, (records[0], records[1], records[3]), strict=True):
        copy = copy_for(rec)
        assert copy is not None and write.request == copy.request("p_PostCountReader")


def test_the_feed_carries_the_newest_image_of_each_article_once():
    records = [
        numbered("MODIFY", "1", new=image("a", 3, total=7)),
        numbered("MODIFY", "2", new=image("b", 1, total=2)),
        numbered("MODIFY", "3", new=image("a", 2, total=6)),
    ]  # reordered: older
    work = copy_and_feed(records, TABLES, "node-1", 1_700_000_000.5)
    [put] = work.feed
    assert put["TableName"] == "p_LiveFeed"
    item = put["Item"]
    assert feed.decode(item["changes"]["S"]) == [("a", 7, 1), ("b", 2, 1)]
    assert item["feed"] == {"S": feed.PARTITION}
    assert item["expires"] == {"N": str(1_700_000_000 + feed.TTL_SECONDS)}
    salt = zlib.crc32(b"node-1") % 1000
    assert item["at"] == {"S": f"{1_700_000_000_500_000 * 1000 + salt:024d}"}
    # Another writer in the same microsecond gets another sort key.
    other = copy_and_feed(records, TABLES, "node-2", 1_700_000_000.5).feed[0]["Item"]["at"]
    assert other != item["at"]
    assert copy_and_feed([numbered("REMOVE", "4", old=image("a", 2))], TABLES, "n", 0).feed == []


def test_a_count_that_went_down_is_reset_after_every_image_before_it():
    """`livecount admin` moved `a`'s views away (a delete): nodes merge counts by
    maximum, so the images copied before the move would bring them back, unless the
    feed says after them to read `a` again."""
    records = [
        numbered("MODIFY", "1", new=image("a", 3, total=7), old=image("a", 2, total=6)),
        numbered("MODIFY", "2", new=image("a", 4, total=0), old=image("a", 3, total=7)),
        numbered("MODIFY", "3", new=image("b", 2, total=9), old=image("b", 1, total=2)),
    ]
    work = copy_and_feed(records, TABLES, "n", 0.0)
    assert work.down == ["a"]  # b only went up (a rename onto it, or views)
    said = [feed.read(put["Item"]["changes"]["S"]) for put in work.feed]
    assert said == [[("a", 0, 1), ("b", 9, 1)], feed.Reset([("post", "a")], reports=False)]
    assert [put["Item"]["at"]["S"] for put in work.feed] == sorted(
        put["Item"]["at"]["S"] for put in work.feed
    )  # the reset is read last
    assert copy_and_feed(records[2:], TABLES, "n", 0.0).down == []


def test_a_large_batch_is_shared_in_items_under_the_size_limit():
    records = [
        numbered("MODIFY", str(i), new=image(f"article-{i:06d}-" + "x" * 200, 1))
        for i in range(3000)
    ]
    work = copy_and_feed(records, TABLES, "n", 0.0)
    assert len(work.feed) > 1
    sizes = [len(put["Item"]["changes"]["S"].encode()) for put in work.feed]
    assert max(sizes) <= feed.MAX_ITEM_BYTES
    shared = [c for put in work.feed for c in feed.decode(put["Item"]["changes"]["S"])]
    assert len(shared) == 3000 and len({at["Item"]["at"]["S"] for at in work.feed}) == len(
        work.feed
    )


def test_feed_payloads_that_are_not_changes_decode_to_nothing():
    assert feed.decode('[["a",1,2],["b",3,4]]') == [("a", 1, 2), ("b", 3, 4)]
    for bad in (
        "not json",
        "{}",
        '[["a",1]]',
        '[["a","1",2]]',
        '[["a",1.5,2]]',
        '[["a",true,2]]',
        "[[1,1,2]]",
        '"x"',
    ):
        assert feed.decode(bad) == [], bad
