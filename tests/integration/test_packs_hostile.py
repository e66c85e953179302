"""Hostile probes of referrer packs: many hosts, two nodes, lost answers, crashes,
renames, deletes, purges and export/import round trips, on DynamoDB Local."""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
from botocore.exceptions import ReadTimeoutError
from livecount.aws import store_requests
from livecount.aws.store import Store
from livecount.aws.store_admin import Exports, Operations
from livecount.core import journal as records
from livecount.core.ledger import SITE, Ledger
from livecount.core.moves import Plan
from livecount.core.pages import Target
from livecount.core.referrer_packs import MEMBERS, PACK, PACK_HOSTS, PACKABLE_HOST

from tests.support import Launch

H = "2024-05-01T10"
_decode = msgspec.json.Decoder()


def item_size(item: dict[str, Any]) -> int:
    """DynamoDB's item size, roughly: names plus values (numbers ~ digits/2 + 1)."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        if "S" in value:
            size += len(value["S"].encode())
        elif "N" in value:
            size += len(value["N"]) // 2 + 2
        elif "SS" in value:
            size += sum(len(s.encode()) for s in value["SS"])
    return size


class Lossy:
    """A ddb client whose pack UpdateItems apply but whose answers are lost, while on."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.lose = False
        self.lost = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    async def update_item(self, **kw: Any) -> Any:
        got = await self.real.update_item(**kw)
        if self.lose and kw["Key"].get("host", {}).get("S") == PACK:
            self.lost += 1
            raise ReadTimeoutError(endpoint_url="http://lost")
        return got


class Node:
    """A node's ledger and journal (in memory, as the flusher writes it) on a store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.ledger = Ledger()
        self.journal: list[list[Any]] = [["s", 0]]
        self.seq = itertools.count(1000)
        self.last = 0

    def view(self, target: Target, host: str | None, hour: str = H) -> None:
        self.journal.append(_decode.decode(records.view_record(target, False, hour, None, host)))
        self.ledger.record(target, refreshed=False, hour=hour, referrer=host, force=True)

    async def flush(self, crash_before_complete: bool = False) -> Any:
        seq = self.last = next(self.seq)
        self.journal.append(_decode.decode(records.taken_record(seq)))
        flush = self.ledger.take(seq, hold=True)
        if not flush:
            return None
        result = await self.store.flush(flush)
        if crash_before_complete:
            return result
        self.ledger.complete(flush, result)
        self.journal.append(_decode.decode(records.completed_record(flush, result)))
        self.ledger.release(flush)
        return result

    def crash(self) -> None:
        """SIGKILL: a fresh ledger from the journal, a new file's start record."""
        self.ledger = Ledger()
        got = records.replay(self.journal, self.ledger)
        self.seq = itertools.count(max(got.last_seq, self.last) + 1)
        self.journal.append(["s", got.last_seq])

    async def drain(self, rounds: int = 10) -> None:
        for _ in range(rounds):
            if self.ledger.idle:
                return
            await self.flush()
        assert self.ledger.idle, "not drained"


async def totals(store: Store, ref: str) -> dict[str, int]:
    items = await Operations(store).partition(store.tables.referrers, "target", ref)
    return store_requests.referrer_totals(items)


async def pack_item(store: Store, ref: str) -> dict[str, Any]:
    got = await store.ddb.get_item(TableName=store.tables.referrers, ConsistentRead=True,
                                   Key={"target": {"S": ref}, "host": {"S": PACK}})
    return dict(got.get("Item", {}))


async def raw(store: Store, ref: str) -> dict[str, dict[str, int]]:
    """Per item (sort key) of a target, its counters, negative ones included."""
    items = await Operations(store).partition(store.tables.referrers, "target", ref)
    return {i["host"]["S"]: store_requests.referrer_counts(i) for i in items}


def expect(sent: Counter[tuple[str, str]], ref: str) -> dict[str, int]:
    return {h: n for (r, h), n in sent.items() if r == ref and n > 0}


A, B = Target("post", "a"), Target("post", "b")


def host_of(i: int, length: int | None = None) -> str:
    base = f"h{i}.example"
    if length is None:
        return base
    pad = length - len(base) - 1
    return ("x" * pad + "." + base) if pad > 0 else base


async def test_hundreds_of_hosts_from_two_nodes(dynamodb_local_url: str, prefix: str):
    async with Store.open(dynamodb_local_url, "us-east-1", prefix, node_id="a") as sa, \
            Store.open(dynamodb_local_url, "us-east-1", prefix, node_id="b") as sb:
        await sa.create_tables()
        na, nb = Node(sa), Node(sb)
        sent: Counter[tuple[str, str]] = Counter()
        # hosts of all lengths up to 48 and 49/60, punycode, attribute-ish names
        hosts = [host_of(i, 48 if i % 3 == 0 else (49 if i % 7 == 0 else None))
                 for i in range(400)]
        hosts += ["xn--bcher-kva.example", "hosts", "views", "admin", "flush", "a" * 48,
                  "b" * 49, "xn--" + "c" * 40 + ".de"]
        hosts = [h for h in hosts]
        for rnd in range(4):
            for i, h in enumerate(hosts):
                node = na if (i + rnd) % 2 else nb
                for t in (A, B) if i % 5 == 0 else (A,):
                    node.view(t, h)
                    sent[(t.ref, h)] += 1
                    sent[(SITE, h)] += 1
                if i % 50 == 0:
                    await na.flush()
                    await nb.flush()
            await na.flush()
            await nb.flush()
        await na.drain()
        await nb.drain()
        for ref in (A.ref, B.ref, SITE):
            got = await totals(sa, ref)
            want = expect(sent, ref)
            diff = {h: (want.get(h), got.get(h)) for h in set(got) | set(want)
                    if want.get(h) != got.get(h)}
            assert not diff, (ref, sorted(diff.items())[:10], len(diff))
            pack = await pack_item(sa, ref)
            print(ref, "members", len(pack.get(MEMBERS, {}).get("SS", [])),
                  "size", item_size(pack), "rows", len(await raw(sa, ref)) - 1)
            assert len(pack[MEMBERS]["SS"]) < 64


async def test_worst_case_pack_size(local_store: Store):
    node = Node(local_store)
    long = [host_of(i, PACKABLE_HOST) for i in range(200)]
    assert all(len(h) == PACKABLE_HOST for h in long)
    for h in long[:31]:
        node.view(A, h)
    await node.flush()
    for h in long[31:63]:
        node.view(A, h)
    await node.flush()
    for h in long[63:]:
        node.view(A, h)
    await node.drain()
    pack = await pack_item(local_store, A.ref)
    print("members", len(pack[MEMBERS]["SS"]), "size", item_size(pack))
    assert await totals(local_store, A.ref) == dict.fromkeys(long, 1)
    assert len(pack[MEMBERS]["SS"]) <= PACK_HOSTS
    assert item_size(pack) < 3 * 1024, item_size(pack)  # a few write units at worst


async def test_a_host_at_the_length_limit_in_the_pack_one_longer_alone(local_store: Store):
    node = Node(local_store)
    h48, h49 = host_of(1, PACKABLE_HOST), host_of(2, PACKABLE_HOST + 1)
    node.view(A, h48)
    node.view(A, h49)
    await node.drain()
    got = await raw(local_store, A.ref)
    assert got == {PACK: {h48: 1}, h49: {h49: 1}}, got


async def test_lost_answer_resent_after_pack_filled(dynamodb_local_url: str, prefix: str):
    async with Store.open(dynamodb_local_url, "us-east-1", prefix, node_id="a") as sa, \
            Store.open(dynamodb_local_url, "us-east-1", prefix, node_id="b") as sb:
        await sa.create_tables()
        lossy = Lossy(sa.writer.ddb)
        sa.writer.ddb = lossy
        na, nb = Node(sa), Node(sb)
        sent: Counter[tuple[str, str]] = Counter()

        def view(node: Node, h: str) -> None:
            node.view(A, h)
            sent[(A.ref, h)] += 1
            sent[(SITE, h)] += 1

        for h in ("h1.example", "h2.example", "h1.example"):
            view(na, h)
        lossy.lose = True
        r = await na.flush()  # applied, answers lost: unsettled
        assert r.failed_rows and lossy.lost == 2, r
        lossy.lose = False
        for i in range(40):  # node b fills the packs meanwhile
            view(nb, f"b{i}.example")
        await nb.drain()
        view(na, "h1.example")
        view(na, "h3.example")
        r = await na.flush()  # the resend: applied before, not full
        assert not r.full_packs, r
        await na.drain()
        for ref in (A.ref, SITE):
            assert await totals(sa, ref) == expect(sent, ref)


async def test_lost_answer_then_crash_replay_after_pack_filled(dynamodb_local_url: str,
                                                                prefix: str):
    async with Store.open(dynamodb_local_url, "us-east-1", prefix, node_id="a") as sa, \
            Store.open(dynamodb_local_url, "us-east-1", prefix, node_id="b") as sb:
        await sa.create_tables()
        lossy = Lossy(sa.writer.ddb)
        sa.writer.ddb = lossy
        na, nb = Node(sa), Node(sb)
        sent: Counter[tuple[str, str]] = Counter()

        def view(node: Node, t: Target, h: str) -> None:
            node.view(t, h)
            sent[(t.ref, h)] += 1
            sent[(SITE, h)] += 1

        for i in range(20):
            view(na, A, f"a{i}.example")
        lossy.lose = True
        await na.flush(crash_before_complete=True)  # applied, then SIGKILL before "c"
        lossy.lose = False
        na.crash()
        for i in range(40):
            view(nb, A, f"b{i}.example")
        await nb.drain()
        for i in range(15, 25):
            view(na, A, f"a{i}.example")
        na.crash()  # again, before anything was flushed
        await na.drain()
        await nb.drain()
        for ref in (A.ref, SITE):
            assert await totals(sa, ref) == expect(sent, ref)


async def test_not_applied_resend_after_pack_filled_goes_to_rows(dynamodb_local_url: str,
                                                                 prefix: str):
    async with Store.open(dynamodb_local_url, "us-east-1", prefix, node_id="a") as sa, \
            Store.open(dynamodb_local_url, "us-east-1", prefix, node_id="b") as sb:
        await sa.create_tables()
        na, nb = Node(sa), Node(sb)
        sent: Counter[tuple[str, str]] = Counter()

        def view(node: Node, h: str) -> None:
            node.view(A, h)
            sent[(A.ref, h)] += 1
            sent[(SITE, h)] += 1

        for i in range(10):
            view(na, f"a{i}.example")
        # the take is journaled, then the node dies before sending anything
        seq = na.last = next(na.seq)
        na.journal.append(["t", seq, 1])
        na.ledger.take(seq, hold=True)
        na.crash()
        for i in range(2 * PACK_HOSTS):  # fill both packs, a write at a time
            view(nb, f"b{i}.example")
            if i % 8 == 7:
                await nb.flush()
        await nb.drain()
        r = await na.flush()
        assert r.full_packs == {A.ref, SITE}, r
        na.crash()  # after the "c" with full packs: replay must route as the node did
        await na.drain()
        for ref in (A.ref, SITE):
            assert await totals(sa, ref) == expect(sent, ref)


async def test_rename_into_a_full_pack(local_store: Store):
    store = local_store
    node = Node(store)
    sent: Counter[tuple[str, str]] = Counter()
    for i in range(40):
        node.view(B, f"n{i}.example")  # B ("new"): full pack
        sent[(B.ref, f"n{i}.example")] += 1
    for i in range(30):
        node.view(A, f"o{i}.example" if i % 2 else f"n{i}.example")
        sent[(B.ref, f"o{i}.example" if i % 2 else f"n{i}.example")] += 1
    await node.drain()
    await Operations(store).run(Plan("a", "b"))
    pack = await pack_item(store, B.ref)
    print("new pack members", len(pack[MEMBERS]["SS"]), "size", item_size(pack),
          "counters", sum(1 for n in pack if n.startswith("@")))
    assert await totals(store, B.ref) == expect(sent, B.ref)
    assert await totals(store, A.ref) == {}
    for i in range(5):
        node.view(B, f"o{i}.example")
        node.view(B, f"late{i}.example")
        sent[(B.ref, f"o{i}.example")] += 1
        sent[(B.ref, f"late{i}.example")] += 1
    await node.drain()
    assert await totals(store, B.ref) == expect(sent, B.ref)


async def test_delete_when_the_site_holds_the_host_on_its_own_row(local_store: Store):
    store = local_store
    node = Node(store)
    site: Counter[str] = Counter()
    for i in range(40):  # the site's pack fills through B
        node.view(B, f"s{i}.example")
        site[f"s{i}.example"] += 1
    await node.drain()
    for h in ("x.example", "y.example", "s1.example", "s39.example"):
        for _ in range(3):
            node.view(A, h)  # A's pack takes them; the site counts them on rows
    await node.drain()
    print("site before", await raw(store, SITE))
    await Operations(store).run(Plan("a"))
    rows = await raw(store, SITE)
    print("site after", {k: v for k, v in rows.items() if k != PACK},
          {h: n for h, n in rows[PACK].items() if n <= 0})
    assert await totals(store, SITE) == dict(site)
    recs = [r async for r in Exports(store).records()]
    exported = {r.host: r.total for r in recs if r.record == "referrer" and r.target == SITE}
    assert exported == dict(site), exported
    assert all(r.total > 0 for r in recs if r.record == "referrer")
    # more views from x after: site counts 1
    node.view(B, "x.example")
    site["x.example"] += 1
    await node.drain()
    assert await totals(store, SITE) == dict(site)


async def test_purge_of_a_pack_with_a_member_it_has_no_counter_for(local_store: Store):
    store = local_store
    node = Node(store)
    C = Target("post", "c")
    node.view(A, "x.example")
    node.view(A, "y.example")
    await node.drain()
    await Operations(store).run(Plan("a", "b"))
    node.view(A, "y.example")  # a page still open on the old id
    await node.drain()
    await Operations(store).run(Plan("a", "c"))
    pack = await pack_item(store, C.ref)
    print("c's pack:", {k: v for k, v in pack.items() if k.startswith("@") or k == MEMBERS})
    deleted = await Operations(store).run(Plan("c"), purge=True)
    left = await pack_item(store, C.ref)
    print("purged", deleted.purged, "c's pack left:", bool(left))
    assert not left, "the emptied pack of a deleted post was not purged"


async def test_export_import_round_trip(dynamodb_local_url: str, prefix: str, tmp_path):
    import subprocess
    import sys
    async with Store.open(dynamodb_local_url, "us-east-1", prefix, node_id="a") as sa, \
            Store.open(dynamodb_local_url, "us-east-1", prefix, node_id="b") as sb:
        await sa.create_tables()
        na, nb = Node(sa), Node(sb)
        for i in range(120):
            h = host_of(i, 48 if i % 4 == 0 else (49 if i % 4 == 1 else None))
            for node in (na, nb) if i % 3 else (na,):
                node.view(A, h)
                if i % 2:
                    node.view(B, h)
            if i % 25 == 0:
                await na.flush()
                await nb.flush()
        await na.drain()
        await nb.drain()
        await Operations(sa).run(Plan("b", "c"))  # some renamed
        before = {ref: await totals(sa, ref) for ref in ("post#a", "post#c", SITE)}
    out = tmp_path / "export.ndjson"
    cli = [sys.executable, "-m", "livecount"]
    store = ["--dynamodb-endpoint", dynamodb_local_url]
    await asyncio.to_thread(
        subprocess.run, [*cli, "export", "--format", "ndjson", "--output", str(out), *store,
                         "--table-prefix", prefix], check=True, capture_output=True)
    fresh = prefix + "imp_"
    done = await asyncio.to_thread(
        subprocess.run, [*cli, "import", str(out), "--json", *store, "--table-prefix", fresh],
        check=True, capture_output=True, text=True)
    print(json.loads(done.stdout)["rowsAdded"])
    async with Store.open(dynamodb_local_url, "us-east-1", fresh) as s2:
        after = {ref: await totals(s2, ref) for ref in ("post#a", "post#c", SITE)}
    for ref in before:
        assert before[ref] == after[ref], (ref, len(before[ref]), len(after[ref]))
    print({ref: (len(v), sum(v.values())) for ref, v in after.items()})


async def test_site_pack_growth_under_deletes(local_store: Store):
    """Posts whose packs hold hosts the site counts on rows (its pack full): deletes
    take them from the site's rows and leave the site's pack as it was."""
    from livecount.core.ledger import Delta, Row

    from tests.support import flush_of
    store = local_store
    site_pack = Row("referrer", SITE, PACK)
    first = {host_of(10_000 + i, PACKABLE_HOST): 1 for i in range(PACK_HOSTS)}
    assert not (await store.flush(flush_of(rows={site_pack: Delta(32, hosts=first)}))).full_packs
    posts = 20
    for p in range(posts):
        hosts = [host_of(p * 100 + i, PACKABLE_HOST) for i in range(PACK_HOSTS)]
        pack = Row("referrer", f"post#p{p}", PACK)
        t = Target("post", f"p{p}")
        for part in (hosts[:PACK_HOSTS // 2], hosts[PACK_HOSTS // 2:]):
            r = await store.flush(flush_of(
                targets={t: Delta(len(part), len(part))}, new={t},
                rows={pack: Delta(len(part), hosts=dict.fromkeys(part, 1)),
                      **{Row("referrer", SITE, h): Delta(1) for h in part}}))
            assert not (r.full_packs or r.failed_rows or r.rejected_rows), r
    sizes = []
    try:
        for p in range(posts):
            await Operations(store).run(Plan(f"p{p}"))
            item = await pack_item(store, SITE)
            sizes.append((p, len(item[MEMBERS]["SS"]), item_size(item)))
    finally:
        print("site pack after deletes (deleted, members, bytes):", sizes[::10], sizes[-1:])
    assert await totals(store, SITE) == first
    assert all(members == PACK_HOSTS for _, members, _ in sizes), sizes


async def test_serve_sigkill_many_referrers(launch: Launch, tmp_path: Path) -> None:
    import random

    from websockets.asyncio.client import connect

    from tests.support import eventually, http_get

    rng = random.Random(int(__import__("os").environ.get("SEED", "7")))
    hosts = [f"r{i}.example.org" for i in range(150)]
    hosts += [("a" * 33 + f"{i:03d}.example.org") for i in range(10)]  # 48 chars
    hosts += [("a" * 34 + f"{i:03d}.example.org") for i in range(10)]  # 49 chars
    hosts += ["bücher.example", "WWW.Mixed.Example", "xn--80ak6aa92e.com"]
    norm = {h: h for h in hosts}
    norm["bücher.example"] = "xn--bcher-kva.example"
    norm["WWW.Mixed.Example"] = "mixed.example"
    assert {len(norm[h]) for h in hosts} >= {48, 49}
    articles = ["k1", "k2"]
    sent: Counter[tuple[str, str]] = Counter()
    maybe: Counter[tuple[str, str]] = Counter()  # sent, never answered

    nodes = {n: await launch("--node-id", n, "--data-dir", str(tmp_path / n),
                             "--lease-time", "3") for n in ("n1", "n2")}

    async def client(node: str, count: int, stop: asyncio.Event) -> None:
        try:
            async with connect(nodes[node].ws) as ws:
                for _ in range(count):
                    if stop.is_set():
                        return
                    art = rng.choice(articles)
                    h = rng.choice(hosts)
                    await ws.send(json.dumps({"message": "views", "articleId": art,
                                              "referrer": f"https://{h}/p?q=1"}))
                    maybe[(f"post#{art}", norm[h])] += 1
                    maybe[(SITE, norm[h])] += 1
                    while True:
                        m = json.loads(await ws.recv())
                        if m["message"] == "views":
                            break
                        assert m["message"] in ("count",), m
                    sent[(f"post#{art}", norm[h])] += 1
                    sent[(SITE, norm[h])] += 1
                    maybe[(f"post#{art}", norm[h])] -= 1
                    maybe[(SITE, norm[h])] -= 1
        except Exception as exc:  # the killed node's sockets
            if node != "n1":
                raise
            print("client lost:", type(exc).__name__)

    for cycle in range(3):
        stop = asyncio.Event()
        tasks = [asyncio.create_task(client(n, 1500, stop)) for n in ("n1", "n1", "n2", "n2")]
        before = sent.total()

        async def answered(before: int = before) -> int:
            return sent.total() - before

        # SIGKILL mid-load, at a different point each cycle
        def far_enough(n: int, cycle: int = cycle) -> bool:  # a view counts post and site
            return n >= 2 * (300 + 150 * cycle)

        await eventually(answered, far_enough, timeout=60)
        await nodes["n1"].kill()
        await asyncio.gather(*tasks)
        nodes["n1"] = await launch("--node-id", "n1", "--data-dir", str(tmp_path / "n1"),
                                   "--lease-time", "3")
    print("views sent", sum(n for (r, _), n in sent.items() if r == SITE))

    async def get(ref: str) -> dict[str, int]:
        q = f"?articleId={ref.split('#')[1]}&" if ref != SITE else "?"
        _, _, body = await asyncio.to_thread(
            http_get, nodes["n2"].http + f"/api/referrers{q}limit=1000")
        return {r["host"]: r["views"] for r in json.loads(body)}

    for ref in ("post#k1", "post#k2", SITE):
        want = expect(sent, ref)
        hi = {h: sent[(r, h)] + maybe[(r, h)] for (r, h) in set(sent) | set(maybe) if r == ref}

        def fits(g: dict[str, int], w: dict[str, int] = want, hi: dict[str, int] = hi) -> bool:
            return all(w.get(h, 0) <= g.get(h, 0) <= hi.get(h, 0) for h in set(w) | set(g))
        print(ref, "unanswered", {h: n for (r, h), n in maybe.items() if r == ref and n})
        try:
            got = await eventually(functools.partial(get, ref), fits, timeout=30)
        except Exception:
            got = await get(ref)
            diff = {h: (want.get(h), got.get(h), hi.get(h)) for h in set(want) | set(got)
                    if not want.get(h, 0) <= got.get(h, 0) <= hi.get(h, 0)}
            raise AssertionError((ref, diff)) from None
        if ref != SITE:
            async def total(ref: str = ref) -> int:  # the reader copy follows the stream
                _, _, body = await asyncio.to_thread(
                    http_get, nodes["n2"].http + f"/api/pages/{ref.split('#')[1]}")
                return int(json.loads(body)["totalViews"])

            def as_referred(n: int, views: int = sum(got.values())) -> bool:
                return n == views

            await eventually(total, as_referred, timeout=30)


async def test_rename_and_delete_racing_live_pack_writes(dynamodb_local_url: str, prefix: str):
    import random
    async with Store.open(dynamodb_local_url, "us-east-1", prefix, node_id="a") as sa, \
            Store.open(dynamodb_local_url, "us-east-1", prefix, node_id="b") as sb:
        await sa.create_tables()
        nodes = [Node(sa), Node(sb)]
        rng = random.Random(3)
        sent: Counter[tuple[str, str]] = Counter()
        hosts = [host_of(i, 48 if i % 5 == 0 else None) for i in range(70)]
        C = Target("post", "c")

        started = asyncio.Event()  # both nodes have counted a while

        async def count(node: Node) -> None:
            for round_ in range(40):
                if round_ == 10:
                    started.set()
                for _ in range(8):
                    t = rng.choice((A, C))
                    h = rng.choice(hosts)
                    node.view(t, h)
                    sent[(t.ref, h)] += 1
                    sent[(SITE, h)] += 1
                await node.flush()
                await asyncio.sleep(0)
            await node.drain()

        async def operate() -> None:
            ops = Operations(sa)
            await started.wait()
            for _ in range(6):  # each pass yields to the counting between its moves
                await ops.run(Plan("a", "b"))
                await ops.run(Plan("c"))

        await asyncio.gather(count(nodes[0]), count(nodes[1]), operate())
        got = {r: await totals(sa, r) for r in (A.ref, B.ref, C.ref, SITE)}
        # every view of a is on a or b; the site lost exactly what c's delete took
        a_b = Counter(got[A.ref]) + Counter(got[B.ref])
        assert dict(a_b) == expect(sent, A.ref)
        site_want = Counter(expect(sent, SITE))
        site_want.subtract(Counter(expect(sent, C.ref)))
        site_want.update(got[C.ref])
        assert got[SITE] == {h: n for h, n in site_want.items() if n > 0}
        print({r: sum(v.values()) for r, v in got.items()})


async def test_delete_purge_of_a_pack_renamed_into_twice(local_store: Store,
                                                         dynamodb_local_url: str, prefix: str):
    from livecount.core.ledger import Delta, Row

    from tests.support import flush_of
    store = local_store
    for p in range(2):
        hosts = [host_of(p * 100 + i, 20) for i in range(63)]
        t = Target("post", f"p{p}")
        for part in (hosts[:31], hosts[31:]):
            r = await store.flush(flush_of(
                targets={t: Delta(len(part), len(part))}, new={t},
                rows={Row("referrer", t.ref, PACK): Delta(len(part), hosts=dict.fromkeys(part, 1)),
                      Row("referrer", SITE, PACK): Delta(len(part), hosts=dict.fromkeys(part, 1))}))
            assert not (r.failed_rows or r.rejected_rows), r
        await Operations(store).run(Plan(f"p{p}", "t"))
    pack = await pack_item(store, "post#t")
    print("t's pack counters", sum(1 for n in pack if n.startswith("@")))
    import subprocess
    import sys
    for attempt in range(2):
        run = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "livecount", "admin", "delete", "t",
                             "--purge", "--dynamodb-endpoint", dynamodb_local_url,
                             "--table-prefix", prefix], capture_output=True, text=True)
        print("attempt", attempt, "rc", run.returncode, "stdout", run.stdout.strip()[-200:],
              "stderr tail", run.stderr.strip().splitlines()[-1:])
    print("operation", await Operations(store).current("t"))
    assert await pack_item(store, "post#t") == {}
