from livecount.core.replication import Shard, copy_for, counts_of, readable


def image(article: str, version: int, total: int = 1) -> dict:
    return {"articleId": {"S": article}, "version": {"N": str(version)},
            "totalViews": {"N": str(total)}, "uniqueViews": {"N": "1"}}


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
