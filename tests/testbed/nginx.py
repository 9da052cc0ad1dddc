"""Debian nginx run from a temp prefix on a free loopback port, and small app backends behind it."""

from __future__ import annotations

import getpass
import json
import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.testbed.ports import free_port, wait_until

TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
WORKER_STARTED = re.compile(r"start worker process (\d+)")


def nginx_binary() -> str:
    # /usr/sbin is not on every user's PATH, and that is where Debian puts nginx
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        pytest.fail("nginx is not installed (apt-get install nginx-light; .ci/run does)")
    return found


class NginxError(RuntimeError):
    """nginx refused a configuration or did not come up; the message has its [emerg] lines."""


class Nginx:
    """One nginx master (`daemon off;`) owned by the test, everything inside `prefix`."""

    def __init__(self, binary: str, prefix: Path) -> None:
        self.binary = binary
        self.prefix = prefix
        self.port = free_port()  # chosen now so a config can be written before start()
        self.proc: subprocess.Popen[bytes] | None = None
        for sub in ("logs", *(f"temp/{name}" for name in TEMP_PATHS)):
            (prefix / sub).mkdir(parents=True, exist_ok=True)

    @property
    def conf_path(self) -> Path:
        return self.prefix / "nginx.conf"

    @property
    def error_log(self) -> Path:
        return self.prefix / "logs" / "error.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self, *args: str) -> list[str]:
        """The nginx command line for this instance, e.g. command("-t") or ("-s", "reload")."""
        return [
            self.binary,
            "-p",
            f"{self.prefix}/",
            "-c",
            str(self.conf_path),
            "-e",
            str(self.error_log),
            *args,
        ]

    def config(self, backend_url: str, locations: str = "") -> str:
        """A complete nginx.conf proxying everything to `backend_url`."""
        d = self.prefix
        temp = "\n".join(f"    {name}_temp_path {d}/temp/{name};" for name in TEMP_PATHS)
        # as root the workers would switch to `nobody`, who cannot enter pytest's 0700 tmp dirs
        user = f"user {getpass.getuser()};\n" if os.geteuid() == 0 else ""
        return (
            f"{user}daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\n"
            f"error_log {d}/logs/error.log notice;\n"
            "events { worker_connections 64; }\n"
            "http {\n"
            f"    access_log {d}/logs/access.log;\n{temp}\n"
            "    server {\n"
            f"        listen 127.0.0.1:{self.port};\n{locations}"
            "        location / {\n"
            f"            proxy_pass {backend_url};\n"
            "        }\n"
            "    }\n"
            "}\n"
        )

    def write_config(self, text: str, path: Path | None = None) -> Path:
        target = path or self.conf_path
        target.write_text(text)
        return target

    def test(self) -> subprocess.CompletedProcess[str]:
        """`nginx -t` on the current conf_path; check .returncode, the reason is in .stderr."""
        return subprocess.run(self.command("-t"), capture_output=True, text=True, timeout=30)

    def start(self, backend_url: str | None = None) -> Nginx:
        """Start serving conf_path (written for `backend_url` when given) on a free port."""
        if backend_url is None:
            return self._spawn()
        for _ in range(3):  # the free port may be taken before nginx binds it
            self.write_config(self.config(backend_url))
            try:
                return self._spawn()
            except NginxError as exc:
                if "Address already in use" not in str(exc):
                    raise
                self.port = free_port()
        raise NginxError("nginx found no free port in 3 tries")

    def _spawn(self) -> Nginx:
        offset = self._log_size()
        self.proc = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            _wait_raising(lambda: self._started(offset), 10, "nginx start")
        except TimeoutError:
            self.stop()
            raise NginxError(f"nginx did not start:\n{self._log_since(offset)}") from None
        return self

    def reload(self, timeout: float = 10) -> None:
        """SIGHUP, then wait until every worker of the old configuration is gone.

        Raises NginxError when nginx rejects the new configuration (it keeps the old one).
        """
        if self.proc is None or self.proc.poll() is not None:
            raise NginxError("nginx is not running")
        old_workers = self.workers()
        offset = self._log_size()
        self.proc.send_signal(signal.SIGHUP)

        def done() -> bool:
            log = self._log_since(offset)
            if "[emerg]" in log:
                raise NginxError(_emerg_lines(log))
            return bool(WORKER_STARTED.search(log)) and not any(map(_alive, old_workers))

        try:
            _wait_raising(done, timeout, "nginx reload")
        except TimeoutError:
            raise NginxError(f"reload did not finish:\n{self._log_since(offset)}") from None

    def workers(self) -> set[int]:
        """Worker pids still alive, as announced in the error log (nginx logs at notice)."""
        pids = {int(p) for p in WORKER_STARTED.findall(self._log_since(0))}
        return {p for p in pids if _alive(p)}

    def stop(self) -> None:
        """Graceful stop (SIGQUIT), killed if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def _started(self, offset: int) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise NginxError(f"nginx exited {self.proc.returncode}:\n{self._log_since(offset)}")
        return bool(WORKER_STARTED.search(self._log_since(offset)))

    def _log_size(self) -> int:
        return self.error_log.stat().st_size if self.error_log.exists() else 0

    def _log_since(self, offset: int) -> str:
        if not self.error_log.exists():
            return ""
        with self.error_log.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a worker the master has not reaped yet is a zombie: it serves nothing any more
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _emerg_lines(log: str) -> str:
    return "\n".join(line for line in log.splitlines() if "[emerg]" in line)


def _wait_raising(check: Callable[[], bool], timeout: float, what: str) -> None:
    """wait_until that stops at an NginxError instead of retrying on it."""
    failure: list[NginxError] = []

    def guarded() -> bool:
        try:
            return check()
        except NginxError as exc:
            failure.append(exc)
            return True

    wait_until(guarded, timeout, what, interval=0.01)
    if failure:
        raise failure[0]


@pytest.fixture
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Nginx]]:
    """Factory: nginx(backend_url) starts an instance proxying to it; nginx() only prepares
    the prefix (write a config, then .start()). All are stopped after the test."""
    binary = nginx_binary()
    made: list[Nginx] = []

    def make(backend_url: str | None = None) -> Nginx:
        instance = Nginx(binary, tmp_path_factory.mktemp("nginx"))
        made.append(instance)
        if backend_url is not None:
            instance.start(backend_url)
        return instance

    yield make
    for instance in made:
        instance.stop()


class AppBackend:
    """A stand-in app: GET /api/health/ answers `status` and `body`; anything else is 404."""

    def __init__(self, version: str, status: int = 200, body: str | None = None) -> None:
        self.version = version
        self.status = status
        healthy = {"status": "healthy", "version": version}
        self.body = body if body is not None else json.dumps(healthy)
        self.hits = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        # a short poll interval: shutdown() waits for it, once per backend and test
        serve = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        serve.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                app.hits += 1
                found = self.path.split("?", 1)[0] == "/api/health/"
                status, body = (app.status, app.body) if found else (404, "not found")
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("X-App-Version", app.version)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: object) -> None:
                return None

        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def app_backend() -> Iterator[Callable[..., AppBackend]]:
    """Factory: app_backend("good") / app_backend("bad", status=500); closed after the test."""
    made: list[AppBackend] = []

    def make(version: str, status: int = 200, body: str | None = None) -> AppBackend:
        made.append(AppBackend(version, status, body))
        return made[-1]

    yield make
    for backend in made:
        backend.close()
