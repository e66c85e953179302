"""The deployment files: Dockerfile, .dockerignore, docker-compose.yml, deploy/nginx.conf.

No Docker engine runs here, so the images cannot be built. Instead the Dockerfile's own
install steps (its COPY lines from the context, filtered by .dockerignore, and its
`deploy/install.sh` RUN lines) run on this machine with the image's absolute paths
moved under a temp dir, and the result is run the way the images run it: with their
ENV, their ENTRYPOINT, their HEALTHCHECK command, and SIGTERM. The rest is checked for
the invariants the images and the compose file must keep.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from botocore.exceptions import BotoCoreError, ClientError
from livecount import cli, config
from livecount.aws import local as dynamodb_local
from livecount.aws.store import Store
from livecount.core.tables import Tables
from livecount.node import lifecycle as app

from tests.support import http_get

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
NGINX = ROOT / "deploy" / "nginx.conf"
UNIT = ROOT / "deploy" / "livecount.service"
EMBEDDED_UNIT = ROOT / "deploy" / "livecount-embedded.service"
TARGETS = ("slim", "embedded")
PING_INTERVAL = 20  # server/app.py: websockets' ping_interval of every connection


# -- reading a Dockerfile ------------------------------------------------------------------
@dataclass
class Instruction:
    keyword: str  # upper case
    args: str  # the rest, continuation lines joined
    line: int

    def flags(self) -> tuple[dict[str, str], str]:
        """Leading `--name=value` flags, and what follows them."""
        found: dict[str, str] = {}
        rest = self.args
        while m := re.match(r"--([a-z-]+)=(\S+)\s*", rest):
            found[m[1]] = m[2]
            rest = rest[m.end() :]
        return found, rest

    def exec_form(self, text: str | None = None) -> list[str] | None:
        try:
            value = json.loads(self.args if text is None else text)
        except ValueError:
            return None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        return None


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[Instruction] = field(default_factory=list)


def parse_dockerfile(text: str) -> list[Stage]:
    logical: list[tuple[int, str]] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not buffer):
            continue  # comments, also inside a continued instruction, and blank lines
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        logical.append((start, buffer + stripped))
        buffer = ""
    assert not buffer, "the Dockerfile ends inside a continued line"
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for number, text_ in logical:
        keyword, _, rest = text_.partition(" ")
        instruction = Instruction(keyword.upper(), rest.strip(), number)
        if instruction.keyword == "FROM":
            words = instruction.args.split()
            base = re.sub(
                r"\$\{(\w+)\}|\$(\w+)", lambda m: global_args.get(m[1] or m[2], m[0]), words[0]
            )
            named = len(words) == 3 and words[1].upper() == "AS"
            stages.append(Stage(words[2] if named else str(len(stages)), base))
        elif not stages:
            assert instruction.keyword == "ARG", f"line {number}: only ARG may precede FROM"
            name, _, value = instruction.args.partition("=")
            global_args[name] = value
        else:
            stages[-1].instructions.append(instruction)
    return stages


def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())


def chain(target: str) -> list[Stage]:
    """The stage and the stages it is built FROM, base first."""
    by_name = {s.name: s for s in stages()}
    found = [by_name[target]]
    while found[0].base in by_name:
        found.insert(0, by_name[found[0].base])
    return found


def instructions(target: str, keyword: str) -> list[Instruction]:
    return [i for s in chain(target) for i in s.instructions if i.keyword == keyword]


def last(target: str, keyword: str) -> Instruction:
    found = instructions(target, keyword)
    assert found, f"{target}: no {keyword}"
    return found[-1]


def sources(target: str) -> list[str]:
    """The stages the target copies from (COPY --from), in order."""
    return list(
        dict.fromkeys(
            i.flags()[0]["from"] for i in instructions(target, "COPY") if "from" in i.flags()[0]
        )
    )


def builders(target: str, done: frozenset[str] | set[str] = frozenset()) -> list[Stage]:
    """The stages to build for what the target copies, base first, less those done."""
    found = [s for name in sources(target) for s in chain(name)]
    return list({s.name: s for s in found if s.name not in done}.values())


def inside(root: Path, path: str) -> Path:
    """Where an absolute path of the image lives in the temp dir that stands for it."""
    assert path.startswith("/"), path
    return root / path.lstrip("/")


def image_env(target: str, root: Path, host_path: str) -> dict[str, str]:
    """The target's ENV, its absolute paths moved under root; $PATH is host_path."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LIVECOUNT_", "PYTHON", "VIRTUAL_ENV", "XDG_CACHE_HOME"))
    }
    for instruction in instructions(target, "ENV"):
        for word in shlex.split(instruction.args):
            name, _, value = word.partition("=")
            if name == "PATH":
                value = ":".join(
                    host_path
                    if part == "$PATH"
                    else str(inside(root, part))
                    if part.startswith("/")
                    else part
                    for part in value.split(":")
                )
            elif value.startswith("/"):
                value = str(inside(root, value))
            env[name] = value
    return env


def command(argv: list[str], env: dict[str, str]) -> list[str]:
    """An image command with its program found on the image's PATH."""
    program = shutil.which(argv[0], path=env["PATH"])
    assert program is not None, f"{argv[0]} is not on the image's PATH {env['PATH']}"
    return [program, *argv[1:]]


# -- .dockerignore ---------------------------------------------------------------------
def _glob(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def ignored(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or a parent of it decides."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [p.strip() for p in lines if p.strip() and not p.strip().startswith("#")]
    parts = path.split("/")
    result = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = _glob(pattern.lstrip("!").strip("/"))
        if any(regex.fullmatch("/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            result = not negated
    return result


# -- running the Dockerfile's install steps here ----------------------------------------
def run_stage(stage: Stage, root: Path) -> None:
    """COPY from the context and RUN deploy/install.sh, as `docker build` would."""
    before = [i for s in chain(stage.name)[:-1] for i in s.instructions if i.keyword == "WORKDIR"]
    workdir = before[-1].args if before else "/"
    for instruction in stage.instructions:
        if instruction.keyword == "WORKDIR":
            workdir = instruction.args
        elif instruction.keyword == "COPY":
            flags, rest = instruction.flags()
            if "from" not in flags:
                *paths, dest = shlex.split(rest)
                for path in paths:
                    copy_from_context(path, dest, workdir, root)
        elif instruction.keyword == "RUN" and "install.sh" in instruction.args:
            words = shlex.split(instruction.args)
            assert not {"&&", "||", ";", "|"} & set(words), (
                f"line {instruction.line}: keep install.sh alone on its RUN line"
            )
            argv = [str(inside(root, w)) if w.startswith("/") else w for w in words]
            done = subprocess.run(
                argv,
                cwd=inside(root, workdir),
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHON": sys.executable},
                timeout=300,
                check=False,
            )
            assert done.returncode == 0, f"line {instruction.line} failed:\n{done.stderr}"
        elif instruction.keyword == "RUN":
            assert instruction.args.startswith(("apt-get", "mkdir -p /usr/share/man")), (
                f"line {instruction.line}: install steps belong in deploy/install.sh"
            )


def copy_from_context(source: str, dest: str, workdir: str, root: Path) -> None:
    target = dest if dest.startswith("/") else f"{workdir.rstrip('/')}/{dest}"
    origin = ROOT / source
    assert origin.exists(), f"COPY {source}: not in the repository"
    files = [origin] if origin.is_file() else sorted(p for p in origin.rglob("*") if p.is_file())
    kept = [f for f in files if not ignored(f.relative_to(ROOT).as_posix())]
    assert kept, f"COPY {source}: .dockerignore leaves nothing of it in the context"
    for file in kept:
        if origin.is_dir():
            to = inside(root, target) / file.relative_to(origin)
        elif target.endswith("/"):
            to = inside(root, target) / file.name
        else:
            to = inside(root, target)
        to.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, to)


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The `build` stage, run here: the temp dir stands for the image's root."""
    root = tmp_path_factory.mktemp("image")
    for stage in builders("slim"):
        run_stage(stage, root)
    yield root


def test_the_images_copy_what_the_build_stages_make() -> None:
    """Running the stages in one root is faithful only if paths are copied unchanged."""
    names = {s.name for s in stages()}
    for target in TARGETS:
        for instruction in instructions(target, "COPY"):
            flags, rest = instruction.flags()
            if "from" in flags:
                assert flags["from"] in names, instruction.args
                source, dest = shlex.split(rest)
                assert source == dest, instruction.args


def test_the_package_step_installs_a_self_contained_livecount(image_root: Path) -> None:
    env = image_env("slim", image_root, os.environ["PATH"])
    workdir = inside(image_root, last("slim", "WORKDIR").args)
    workdir.mkdir(parents=True, exist_ok=True)
    livecount = command(["livecount"], env)[0]
    assert Path(livecount).is_relative_to(image_root)
    usage = subprocess.run(
        [livecount, "serve", "--help"],
        capture_output=True,
        text=True,
        cwd=workdir,
        env=env,
        check=True,
        timeout=60,
    ).stdout
    assert "--dynamodb-endpoint" in usage and "--table-prefix" in usage
    # Installed, not linked to this checkout: the image has no source tree.
    where = subprocess.run(
        [
            *command(["python"], env),
            "-c",
            "import livecount, livecount.node.http as h; "
            "print(livecount.__file__); print(h.CLIENT.joinpath('demo.html'))",
        ],
        capture_output=True,
        text=True,
        cwd=workdir,
        env=env,
        check=True,
        timeout=60,
    ).stdout.split()
    assert all(Path(p).is_relative_to(image_root) for p in where), where
    # One top-level package of our own, named for the product: no `server` to collide.
    names = subprocess.run(
        [
            *command(["python"], env),
            "-c",
            "import importlib.util as u, sys; "
            "print(u.find_spec('server') is None); sys.argv = ['livecount', '--version']; "
            "import runpy; runpy.run_module('livecount', run_name='__main__')",
        ],
        capture_output=True,
        text=True,
        cwd=workdir,
        env=env,
        timeout=60,
    )
    assert names.stdout.split()[0] == "True", names
    assert names.returncode == 0 and "0.1.0" in names.stdout, names


async def test_the_image_command_serves_health_and_the_snippet_and_stops_on_sigterm(
    image_root: Path, dynamodb_local_url: str, prefix: str
) -> None:
    env = image_env("slim", image_root, os.environ["PATH"])
    workdir = inside(image_root, last("slim", "WORKDIR").args)
    workdir.mkdir(parents=True, exist_ok=True)
    entrypoint = last("slim", "ENTRYPOINT").exec_form()
    assert entrypoint is not None
    # The image's command, with test settings appended: a later flag wins.
    argv = command(
        [
            *entrypoint,
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--dynamodb-endpoint",
            dynamodb_local_url,
            "--table-prefix",
            prefix,
            "--flush-interval",
            "0.2",
        ],
        env,
    )
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=workdir,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    logs: list[dict[str, Any]] = []
    listening: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def read() -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            try:
                logs.append(json.loads(raw))
            except ValueError:
                logs.append({"event": "text", "line": raw.decode(errors="replace")})
            if logs[-1].get("event") == "listening" and not listening.done():
                listening.set_result(int(logs[-1]["port"]))
        if not listening.done():
            listening.set_exception(RuntimeError(f"exited before listening: {logs[-20:]}"))

    reader = asyncio.create_task(read())
    try:
        port = await asyncio.wait_for(listening, 90)
        _, health_rest = last("slim", "HEALTHCHECK").flags()
        check = last("slim", "HEALTHCHECK").exec_form(health_rest.removeprefix("CMD").strip())
        assert check is not None
        check_env = {**env, "LIVECOUNT_PORT": str(port)}

        def healthcheck() -> int:
            return subprocess.run(
                command(check, check_env),
                env=check_env,
                capture_output=True,
                timeout=10,
                check=False,
            ).returncode

        assert await asyncio.to_thread(healthcheck) == 0
        status, _, body = await asyncio.to_thread(http_get, f"http://127.0.0.1:{port}/livecount.js")
        # the browser client is installed, and the tag is built from it
        assert status == 200 and b"startTag(window, document.currentScript)" in body

        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 60) == 0
        await reader
        assert [e for e in logs if e.get("event") == "stopped"], logs[-10:]
        assert await asyncio.to_thread(healthcheck) != 0  # nothing answers: unhealthy
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        reader.cancel()
        # The DynamoDB Local is the session's: leave it as many tables as it had.
        async with Store.open(dynamodb_local_url, "us-east-1", prefix) as store:
            for definition in store.tables.definitions():
                with contextlib.suppress(ClientError, BotoCoreError):  # the raw client's
                    await store.ddb.delete_table(TableName=definition["TableName"])


def test_the_jar_step_fetches_dynamodb_local_so_the_embedded_image_needs_no_npm(
    image_root: Path, tmp_path: Path
) -> None:
    java = shutil.which("java")
    if java is None:
        pytest.skip("needs java")
    jar_stages = builders("embedded", done={s.name for s in builders("slim")})
    assert jar_stages, "the embedded image copies nothing more than the slim one"
    for stage in jar_stages:
        run_stage(stage, image_root)
    # At run time: Java, but no npm on the PATH. The jar must already be in the cache.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "java").symlink_to(java)
    env = image_env("embedded", image_root, str(bin_dir))
    cache = Path(env["XDG_CACHE_HOME"]) / "livecount" / f"dynamodb-local-{dynamodb_local.VERSION}"
    assert sorted(cache.glob("*/DynamoDBLocal.jar")), f"no jar in {cache}"
    assert shutil.which("npm", path=env["PATH"]) is None
    data = Path(env["LIVECOUNT_DATA_DIR"])
    data.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        command(["livecount", "tables", "create", "--table-prefix", "e_"], env),
        cwd=data,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    ready = [e for e in events if e["event"] == "tables_ready"]
    assert ready and set(ready[0]["created"]) == {
        d["TableName"] for d in Tables.named("e_").definitions()
    }
    assert (data / "dynamodb").is_dir()  # DynamoDB Local kept its files in the data dir


# -- the Dockerfile's invariants ----------------------------------------------------------
def test_two_targets_on_python_slim_and_slim_is_the_default() -> None:
    all_stages = stages()
    assert all_stages[-1].name == "slim"  # `docker build .` builds the last stage
    for target in TARGETS:
        base = chain(target)[0].base
        assert base.startswith("python:3.11-slim"), base


def test_the_images_run_as_a_non_root_user() -> None:
    for target in TARGETS:
        user = last(target, "USER").args.split(":")[0]
        assert user not in ("root", "0"), target
        made = " ".join(i.args for i in instructions(target, "RUN"))
        assert re.search(rf"useradd\b.*--uid {user}\b", made), f"{target}: who is {user}?"


def test_the_healthcheck_asks_healthz_with_python_after_the_catch_up() -> None:
    for target in TARGETS:
        healthcheck = last(target, "HEALTHCHECK")
        flags, rest = healthcheck.flags()
        assert rest.startswith("CMD ")
        argv = healthcheck.exec_form(rest.removeprefix("CMD").strip())
        assert argv is not None and argv[:2] == ["python", "-c"], "exec form, with python"
        assert "/healthz" in argv[2] and "LIVECOUNT_PORT" in argv[2]
        assert not {"curl", "wget"} & set(" ".join(argv).split())
        # A node listens only once its stream consumer caught up (or gave up waiting).
        assert int(flags["start-period"].rstrip("s")) > app.CATCH_UP_TIMEOUT


def test_the_entrypoint_is_exec_form_livecount_serve_on_every_interface() -> None:
    for target in TARGETS:
        entrypoint = last(target, "ENTRYPOINT").exec_form()
        assert entrypoint is not None, "shell form would put /bin/sh between SIGTERM and us"
        assert entrypoint[:2] == ["livecount", "serve"]
        assert entrypoint[entrypoint.index("--host") + 1] == "0.0.0.0"
        assert instructions(target, "EXPOSE")[-1].args == "8080"
        assert last(target, "STOPSIGNAL").args == "SIGTERM"
        port = [i.args for i in instructions(target, "ENV") if "LIVECOUNT_PORT=" in i.args]
        assert port and "LIVECOUNT_PORT=8080" in port[-1]  # what the HEALTHCHECK asks


def test_java_is_only_in_the_embedded_image() -> None:
    def installed(target: str) -> str:
        return " ".join(i.args for i in instructions(target, "RUN") + instructions(target, "COPY"))

    assert re.search(r"openjdk-\d+-jre-headless", installed("embedded"))
    assert not re.search(r"jre|jdk|java|nodejs|npm", installed("slim"))
    assert "XDG_CACHE_HOME" not in " ".join(i.args for i in instructions("slim", "ENV"))
    env = " ".join(i.args for i in instructions("embedded", "ENV"))
    extra = set(sources("embedded")) - set(sources("slim"))
    copied = [
        shlex.split(i.flags()[1])[1]
        for i in instructions("embedded", "COPY")
        if i.flags()[0].get("from") in extra
    ]
    assert copied and f"XDG_CACHE_HOME={copied[0]}" in env  # the jar is read where it was put


def test_every_install_step_is_the_install_script() -> None:
    runs = [i.args for s in stages() for i in s.instructions if i.keyword == "RUN"]
    assert any(
        re.fullmatch(r"bash deploy/install\.sh package /opt/livecount /src", r) for r in runs
    )
    assert any(re.fullmatch(r"bash deploy/install\.sh jar /opt/livecount \S+", r) for r in runs)
    assert not [r for r in runs if re.search(r"\bpip install\b|\bnpm (install|pack|ci)\b", r)]


def test_dockerignore_keeps_the_context_to_what_the_image_needs() -> None:
    for path in (
        ".venv/bin/python",
        "data/dynamodb/shared-local-instance.db",
        ".git/HEAD",
        "tests/unit/test_config.py",
        "server/__pycache__/app.cpython-311.pyc",
        ".env",
        "docker-compose.yml",
        "livecount.egg-info/PKG-INFO",
        "build/lib/x.py",
    ):
        assert ignored(path), path
    for path in (
        "pyproject.toml",
        "README.md",
        "server/node/node.py",
        "deploy/install.sh",
        "client/gatsby-plugin-livecount/livecount.mjs",
    ):
        assert not ignored(path), path


# -- the CLI reads deployment settings as a node would ------------------------------------
def serve_config(
    args: list[str], environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> config.Config:
    """`livecount serve ARGS` under exactly these LIVECOUNT_* variables."""
    with monkeypatch.context() as env:
        for variable in [v for v in os.environ if v.startswith("LIVECOUNT_")]:
            env.delenv(variable)
        for variable, value in environment.items():
            env.setenv(variable, str(value))
        try:
            return config.from_args(cli.parser().parse_args(["serve", *args]))
        except SystemExit as exc:
            raise AssertionError(f"livecount serve refuses {args}") from exc


# Options the docs use that are being added to the server; checked once they exist.
COMING_OPTIONS = {"--stream-consumer"}


def test_every_serve_command_in_the_deploy_guide_is_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = (ROOT / "docs" / "DEPLOY.md").read_text().replace("\\\n", " ")
    commands = [c for c in re.findall(r"livecount serve (-[^\n`]*)", text) if c != "--help"]
    assert len(commands) >= 3
    for line in commands:
        for variable in [v for v in os.environ if v.startswith("LIVECOUNT_")]:
            monkeypatch.delenv(variable)
        ns, unknown = cli.parser().parse_known_args(["serve", *shlex.split(line)])
        for option in COMING_OPTIONS & set(unknown):
            del unknown[unknown.index(option) : unknown.index(option) + 2]
        assert unknown == [], f"livecount serve {line}"
        config.from_args(ns)


# -- the systemd unit ---------------------------------------------------------------------
def unit(path: Path = UNIT) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_the_systemd_unit_runs_the_installed_node_on_aws_with_time_to_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = unit()
    program, _, *args = shlex.split(settings["ExecStart"][0])
    assert program == "/opt/livecount/bin/livecount"  # where install.sh puts it in the image
    environment = dict(e.partition("=")[::2] for e in settings["Environment"])
    cfg = serve_config(args, environment, monkeypatch)
    assert cfg.dynamodb_endpoint == "aws" and cfg.host == "0.0.0.0"
    state = f"/var/lib/{settings['StateDirectory'][0]}"
    assert str(cfg.data_dir) == settings["WorkingDirectory"][0] == state
    assert settings["User"] == ["livecount"] and settings["KillSignal"] == ["SIGTERM"]
    stop = int(settings["TimeoutStopSec"][0])
    assert stop > app.SHUTDOWN_FLUSH_TIMEOUT + app.STREAM_SETTLE_TIMEOUT


def test_the_vps_unit_runs_the_embedded_store_behind_a_local_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = unit(EMBEDDED_UNIT)
    program, _, *args = shlex.split(settings["ExecStart"][0])
    assert program == "/opt/livecount/bin/livecount"
    environment = dict(e.partition("=")[::2] for e in settings["Environment"])
    cfg = serve_config(args, environment, monkeypatch)
    assert cfg.dynamodb_endpoint == "embedded" and cfg.host == "127.0.0.1"
    assert cfg.trusted_proxies == ("127.0.0.1",)  # nginx on this host
    # DynamoDB Local's jar and launcher where `install.sh all PREFIX CACHE` puts them.
    assert environment["XDG_CACHE_HOME"] == "/opt/livecount/cache"
    assert (
        str(cfg.data_dir)
        == settings["WorkingDirectory"][0]
        == f"/var/lib/{settings['StateDirectory'][0]}"
    )
    # SIGTERM to livecount alone: it stops DynamoDB Local after its last flush.
    assert settings["KillMode"] == ["mixed"] and settings["KillSignal"] == ["SIGTERM"]
    assert int(settings["TimeoutStopSec"][0]) > app.SHUTDOWN_FLUSH_TIMEOUT


@pytest.mark.parametrize("path", [UNIT, EMBEDDED_UNIT], ids=lambda p: p.name)
def test_systemd_accepts_the_unit(image_root: Path, tmp_path: Path, path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    text = path.read_text().replace("/opt/livecount", str(inside(image_root, "/opt/livecount")))
    copy = tmp_path / path.name
    copy.write_text(text)
    done = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


# -- docker-compose.yml and nginx ---------------------------------------------------------
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def nodes() -> dict[str, dict[str, Any]]:
    return {
        name: s
        for name, s in compose()["services"].items()
        if isinstance(s.get("build"), dict) and s["build"].get("context") == "."
    }


def test_compose_runs_dynamodb_local_on_a_volume() -> None:
    parsed = compose()
    ddb = parsed["services"]["dynamodb-local"]
    assert ddb["image"].startswith("amazon/dynamodb-local:")
    args = ddb["command"]
    assert "-sharedDb" in args
    db_path = args[args.index("-dbPath") + 1]
    volume, _, mount = next(v for v in ddb["volumes"] if v.endswith(":" + db_path)).partition(":")
    assert mount == db_path and volume in parsed["volumes"]


def test_compose_runs_two_nodes_on_the_same_tables_each_with_its_own_id_and_data(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    found = nodes()
    assert len(found) >= 2
    data_dir = [i.args for i in instructions("slim", "ENV") if "LIVECOUNT_DATA_DIR=" in i.args]
    assert data_dir
    data = re.search(r"LIVECOUNT_DATA_DIR=(\S+)", data_dir[-1])
    assert data is not None
    prefixes, ids, volumes = set(), set(), set()
    for name, node in found.items():
        assert node["build"]["target"] == "slim"
        assert "ports" not in node, f"{name}: reach the nodes through the proxy only"
        # The real CLI reads the command and the environment: an unknown flag or a
        # misspelt variable shows here, not when the node starts.
        cfg = serve_config(node["command"], node["environment"], monkeypatch)
        assert cfg.dynamodb_endpoint == "http://dynamodb-local:8000"
        prefixes.add(cfg.table_prefix)
        ids.add(cfg.node_id)
        assert cfg.node_id == node["environment"]["LIVECOUNT_NODE_ID"]
        mounted = [v.partition(":")[0] for v in node["volumes"] if v.endswith(":" + data[1])]
        assert len(mounted) == 1 and mounted[0] in compose()["volumes"], name
        volumes.add(mounted[0])
        assert "dynamodb-local" in node["depends_on"]
        grace = int(str(node["stop_grace_period"]).rstrip("s"))
        assert grace > app.SHUTDOWN_FLUSH_TIMEOUT + app.STREAM_SETTLE_TIMEOUT
    assert len(prefixes) == 1 and prefixes != {""}
    assert len(ids) == len(volumes) == len(found)  # no two nodes share an id or a journal


def test_compose_puts_nginx_in_front_with_this_config() -> None:
    proxy = compose()["services"]["proxy"]
    assert proxy["image"].startswith("nginx:")
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in proxy["volumes"]
    assert set(nodes()) <= set(proxy["depends_on"])
    assert proxy["ports"] == ["8080:8080"]


def test_nginx_proxies_websockets_round_robin_to_every_node() -> None:
    text = re.sub(r"#.*", "", NGINX.read_text())
    upstream = re.search(r"upstream\s+(\w+)\s*\{([^}]*)\}", text)
    assert upstream is not None
    servers = re.findall(r"^\s*server\s+(\S+)", upstream[2], re.MULTILINE)
    assert sorted(servers) == sorted(f"{name}:8080" for name in nodes())
    assert not re.search(r"\b(ip_hash|hash|sticky|least_conn|random)\b", upstream[2])
    assert re.search(rf"proxy_pass\s+http://{upstream[1]};", text)
    assert re.search(r"proxy_http_version\s+1\.1;", text)
    assert re.search(r"proxy_set_header\s+Upgrade\s+\$http_upgrade;", text)
    connection = re.search(r"proxy_set_header\s+Connection\s+(\S+);", text)
    assert connection is not None
    mapped = re.search(rf"map\s+\$http_upgrade\s+{re.escape(connection[1])}\s*\{{([^}}]*)\}}", text)
    assert mapped is not None and re.search(r"default\s+upgrade;", mapped[1])
    timeout = re.search(r"proxy_read_timeout\s+(\d+)s;", text)
    assert timeout is not None and int(timeout[1]) > PING_INTERVAL
    assert re.search(r"listen\s+8080;", text)


def test_the_tls_site_passes_what_livecount_reads_to_the_vps_node() -> None:
    """The TLS server sets the forwarded headers that `--trusted-proxy` (the reader's
    address) and the Secure cookie (the scheme) need, upgrades WebSockets, and proxies to
    the port the VPS unit listens on, which trusts this proxy."""
    text = re.sub(r"#.*", "", (ROOT / "deploy" / "nginx-tls.conf").read_text())
    assert re.search(r"listen\s+443\s+ssl;", text)
    assert re.search(r"ssl_certificate\s+\S+;", text)
    assert re.search(r"proxy_set_header\s+X-Forwarded-For\s+\$proxy_add_x_forwarded_for;", text)
    assert re.search(r"proxy_set_header\s+X-Forwarded-Proto\s+\$scheme;", text)
    assert re.search(r"proxy_set_header\s+Upgrade\s+\$http_upgrade;", text)
    assert re.search(r"proxy_set_header\s+Connection\s+\$connection_upgrade;", text)
    assert re.search(
        r"map\s+\$http_upgrade\s+\$connection_upgrade\s*\{[^}]*default\s+upgrade;", text
    )
    timeout = re.search(r"proxy_read_timeout\s+(\d+)s;", text)
    assert timeout is not None and int(timeout[1]) > PING_INTERVAL
    target = re.search(r"proxy_pass\s+http://([\d.]+):(\d+);", text)
    assert target is not None
    ours = shlex.split(unit(EMBEDDED_UNIT)["ExecStart"][0])
    assert ours[ours.index("--port") + 1] == target[2]
    assert ours[ours.index("--trusted-proxy") + 1] == target[1]


def test_nginx_accepts_the_config(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if nginx is None:
        pytest.skip("nginx is not installed")
    text = NGINX.read_text()
    for name in nodes():  # compose's service names resolve only inside compose
        text = text.replace(f"{name}:8080", "127.0.0.1:8080")
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    done = subprocess.run(
        [
            nginx,
            "-t",
            "-p",
            str(tmp_path),
            "-c",
            str(conf),
            "-e",
            "stderr",
            "-g",
            f"pid {tmp_path}/nginx.pid;",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_nginx_accepts_the_tls_site(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    openssl = shutil.which("openssl")
    if nginx is None or openssl is None:
        pytest.skip("nginx or openssl is not installed")
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=count.example.com",
            "-keyout",
            str(tmp_path / "key.pem"),
            "-out",
            str(tmp_path / "cert.pem"),
        ],
        capture_output=True,
        timeout=60,
        check=True,
    )
    site = (ROOT / "deploy" / "nginx-tls.conf").read_text()
    site = re.sub(r"/etc/letsencrypt/live/[^/]+/fullchain\.pem", str(tmp_path / "cert.pem"), site)
    site = re.sub(r"/etc/letsencrypt/live/[^/]+/privkey\.pem", str(tmp_path / "key.pem"), site)
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "logs").mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"events {{}}\nhttp {{ include {tmp_path / 'site.conf'}; }}\n")
    done = subprocess.run(
        [
            nginx,
            "-t",
            "-p",
            str(tmp_path),
            "-c",
            str(conf),
            "-e",
            "stderr",
            "-g",
            f"pid {tmp_path}/nginx.pid;",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
