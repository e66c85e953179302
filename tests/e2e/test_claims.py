"""One node on the embedded store, as a VPS runs it: its DynamoDB Local answers this
host only, its whole process tree listens on loopback only, it says in its data dir
where its store is, and a second `serve` on its port or its data dir fails at once, in
one line, having started and written nothing."""

from __future__ import annotations

import asyncio
import fcntl
import ipaddress
import json
import os
import socket
import struct
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support import ROOT, Launch, Served, http_get

SIOCGIFADDR = 0x8915  # Linux: an interface's IPv4 address


@pytest_asyncio.fixture(scope="module")
async def node(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    """`livecount serve` with everything default but the port and the data dir."""
    data = tmp_path_factory.mktemp("claims") / "data"
    served = await Served("--data-dir", str(data)).start()
    yield served
    await served.kill()


def data_dir(served: Served) -> Path:
    return Path(served.argv[served.argv.index("--data-dir") + 1])


def own_addresses() -> list[str]:
    """This machine's addresses that are not loopback, from every interface."""
    found: set[str] = set()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for _, name in socket.if_nameindex():
            try:
                answer = fcntl.ioctl(
                    probe.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15])
                )
            except OSError:  # no IPv4 address
                continue
            found.add(socket.inet_ntoa(answer[20:24]))
    with open("/proc/net/if_inet6") as lines:
        for line in lines:
            raw = line.split()[0]
            found.add(str(ipaddress.IPv6Address(bytes.fromhex(raw))))
    for *_, address in socket.getaddrinfo(socket.gethostname(), None):
        found.add(str(address[0]))
    return sorted(
        a
        for a in found
        if not ipaddress.ip_address(a).is_loopback and not ipaddress.ip_address(a).is_link_local
    )


def tree(pid: int) -> set[int]:
    """`pid` and every process under it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        found.add(current := todo.pop())
        todo += children.get(current, [])
    return found


def listening(pids: set[int]) -> list[tuple[str, int]]:
    """The (address, port) of every TCP socket these processes listen on."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    found = []
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            raw, port = local.split(":")
            packed = bytes.fromhex(raw)
            # /proc prints each 32-bit word in host order (little endian here).
            words = b"".join(packed[i : i + 4][::-1] for i in range(0, len(packed), 4))
            found.append((socket.inet_ntop(family, words), int(port, 16)))
    return found


async def test_the_store_answers_this_host_only_and_the_tree_listens_on_loopback(
    node: Served,
) -> None:
    record = json.loads((data_dir(node) / "store.json").read_text())
    assert record["endpoint"].startswith("http://127.0.0.1:")
    store_port = int(record["endpoint"].rsplit(":", 1)[1])
    sockets = listening(tree(node.pid))
    assert {port for _, port in sockets} >= {node.port, store_port}
    assert all(ipaddress.ip_address(address).is_loopback for address, _ in sockets), sockets
    status, _, _ = await asyncio.to_thread(http_get, record["endpoint"])
    assert status == 400  # DynamoDB Local answers a bare GET on loopback
    addresses = own_addresses()
    if not addresses:
        pytest.skip("this machine has no address but loopback")
    for address in addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            with pytest.raises(ConnectionRefusedError):
                s.connect((address, store_port))


async def second(*args: str) -> tuple[int, list[str], list[str]]:
    """A second `serve`: its exit code, its stderr lines, its stdout lines."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "livecount",
        "serve",
        "--log-format",
        "json",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, err.decode().splitlines(), out.decode().splitlines()


def files(directory: Path) -> dict[str, int | None]:
    """Every file and its size, but the store's own (the running node writes them)."""
    return {
        str(p.relative_to(directory)): None
        if p.parent.name == "dynamodb" or p.is_dir()
        else p.stat().st_size
        for p in sorted(directory.rglob("*"))
    }


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_a_second_serve_on_the_port_fails_at_once_in_one_line(
    node: Served, tmp_path: Path, workers: str
) -> None:
    fresh = tmp_path / "fresh"
    code, err, out = await second(
        "--port", str(node.port), "--data-dir", str(fresh), "--workers", workers
    )
    assert code == 2
    assert err == [
        f"livecount: cannot listen on 127.0.0.1 port {node.port}: Address already in use"
    ]
    assert out == []  # nothing started: not even DynamoDB Local's first step
    assert not fresh.exists()


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_a_second_serve_on_the_data_dir_fails_at_once_in_one_line(
    node: Served, workers: str
) -> None:
    before = files(data_dir(node))
    code, err, out = await second(
        "--port", "0", "--data-dir", str(data_dir(node)), "--workers", workers
    )
    assert code == 2
    assert len(err) == 1 and "is in use by another livecount" in err[0], err
    assert out == []
    assert files(data_dir(node)) == before  # nothing new, no second DynamoDB Local logging


async def test_the_node_says_where_its_store_is_until_it_stops(
    launch: Launch, dynamodb_local_url: str, prefix: str, tmp_path: Path
) -> None:
    served = await launch("--node-id", "n1")
    record = json.loads((tmp_path / "node" / "store.json").read_text())
    assert record == {
        "endpoint": dynamodb_local_url,
        "region": "us-east-1",
        "tablePrefix": prefix,
        "nodeId": "n1",
        "leaseTime": 10.0,
        "pid": served.pid,
    }
    assert await served.stop() == 0
    assert not (tmp_path / "node" / "store.json").exists()
