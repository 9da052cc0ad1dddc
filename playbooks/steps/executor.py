"""Where host steps run commands: an Executor runs one argv list and reports a CommandResult.
Only local execution exists; SSH or SSM executors register under another name later."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import signal
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field

from playbooks.base import StepContext, StepFailed
from playbooks.redact import HIDDEN, is_secret_name

# What one stream keeps in memory: its beginning and its end, where the errors are.
CAPTURE_HEAD = 64 * 1024
CAPTURE_TAIL = 192 * 1024
# What one stream keeps in the journal: the failure output file in the thread is made from it,
# so a failing command's output up to 16 kB arrives whole (Slack messages show only its end).
JOURNAL_HEAD = 4 * 1024
JOURNAL_TAIL = 12 * 1024
# After SIGTERM, how long a timed-out command may take to exit before SIGKILL.
KILL_GRACE = 3.0
SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "ash"}
SHELL_C = re.compile(r"-[A-Za-z]*c[A-Za-z]*")
ERROR_WORDS = re.compile(r"error|fail|no such|denied|invalid|cannot|not found|refused", re.I)


@dataclass(frozen=True)
class CommandResult:
    """How one command went; stdout/stderr may be shortened in the middle."""

    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    @property
    def command(self) -> str:
        return shown(self.argv)

    def reason(self, lines: int = 3) -> str:
        """What a failure message quotes: the first line that reads like an error (else the
        first line) and the last lines of stderr (else stdout). Tools often print the cause
        first and a generic summary last, so the tail alone can drop the explanation."""
        text = [ln.strip() for ln in (self.stderr.strip() or self.stdout.strip()).splitlines()]
        text = [ln for ln in text if ln]
        tail = text[-lines:]
        head = text[: len(text) - len(tail)]
        first = next((ln for ln in head if ERROR_WORDS.search(ln)), head[0] if head else None)
        if first is None:
            return " | ".join(tail) or "no output"
        gap = " | ... | " if text.index(first) + 1 < len(head) else " | "
        return f"{first}{gap}{' | '.join(tail)}"

    def journal(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "exit_code": self.exit_code,
            "seconds": self.seconds,
            "stdout": clip(self.stdout),
            "stderr": clip(self.stderr),
            **({"timed_out": True} if self.timed_out else {}),
        }


class Executor(Protocol):
    """Runs argv lists somewhere: never a shell string, so no input is ever parsed by a shell.

    `timeout` belongs to the executor rather than to the caller's asyncio.timeout: only the
    executor can stop what it started (a local process group, later a remote command).
    """

    async def run(
        self,
        argv: Sequence[str],
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 60.0,  # noqa: ASYNC109
        input: bytes | None = None,
    ) -> CommandResult: ...


def shown(argv: Sequence[str]) -> str:
    """An argv list as a copy-pasteable command line, for plans and journals."""
    return shlex.join(argv)


def clip(text: str, head: int = JOURNAL_HEAD, tail: int = JOURNAL_TAIL) -> str:
    if len(text) <= head + tail:
        return text
    return f"{text[:head]}\n[... {len(text) - head - tail} characters left out ...]\n{text[-tail:]}"


def check_argv(argv: Sequence[str]) -> list[str]:
    if not argv or not all(isinstance(a, str) for a in argv):
        raise ValueError("a command is a non-empty list of strings")
    if any("\0" in a for a in argv):
        raise ValueError("command arguments cannot contain NUL characters")
    if not argv[0]:
        raise ValueError("the program name is empty")
    return list(argv)


class _Capture:
    """Keeps the head and the tail of a stream, counting what was dropped in between."""

    def __init__(self) -> None:
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        room = CAPTURE_HEAD - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        self.tail += chunk
        if len(self.tail) > 2 * CAPTURE_TAIL:  # trim now and then, not on every chunk
            self._trim()

    def _trim(self) -> None:
        excess = len(self.tail) - CAPTURE_TAIL
        if excess > 0:
            del self.tail[:excess]
            self.dropped += excess

    def text(self) -> str:
        self._trim()
        gap = f"\n[... {self.dropped} bytes left out ...]\n".encode() if self.dropped else b""
        return (bytes(self.head) + gap + bytes(self.tail)).decode("utf-8", "replace")


async def _drain(stream: asyncio.StreamReader, capture: _Capture) -> None:
    while chunk := await stream.read(65536):
        capture.add(chunk)


class _Pipes:
    """stdout and stderr as our own pipes: asyncio's wait() on PIPE streams would not return
    while a background process the command left behind still holds them open."""

    def __init__(self) -> None:
        self.fds = [*os.pipe(), *os.pipe()]  # out_r, out_w, err_r, err_w
        self.transports: list[asyncio.BaseTransport] = []

    @property
    def write_ends(self) -> tuple[int, int]:
        return self.fds[1], self.fds[3]

    def close_write_ends(self) -> None:
        for fd in self.write_ends:
            with contextlib.suppress(OSError):
                os.close(fd)

    async def read(self, out: _Capture, err: _Capture) -> None:
        loop = asyncio.get_running_loop()
        readers = []
        for fd in (self.fds[0], self.fds[2]):
            reader = asyncio.StreamReader()
            transport, _ = await loop.connect_read_pipe(
                lambda r=reader: asyncio.StreamReaderProtocol(r), os.fdopen(fd, "rb", buffering=0)
            )
            self.transports.append(transport)
            readers.append(reader)
        await asyncio.gather(_drain(readers[0], out), _drain(readers[1], err))

    def close(self) -> None:
        for transport in self.transports:
            transport.close()
        if not self.transports:  # the command never started: nothing owns the read ends
            for fd in (self.fds[0], self.fds[2]):
                with contextlib.suppress(OSError):
                    os.close(fd)


class LocalExecutor:
    """Runs commands on the bot's own machine with asyncio subprocesses."""

    async def run(
        self,
        argv: Sequence[str],
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 60.0,  # noqa: ASYNC109
        input: bytes | None = None,
    ) -> CommandResult:
        """`env` is the child's whole environment (default: `child_env(HOST_ENV | COMPOSE_ENV)`,
        what diagnose's host checks need)."""
        args = check_argv(argv)
        started = time.monotonic()
        pipes = _Pipes()
        try:
            proc = await asyncio.create_subprocess_exec(
                *args,
                cwd=cwd,
                # exactly what the caller allows: never the bot's own environment whole
                env=dict(env) if env is not None else child_env(HOST_ENV | COMPOSE_ENV),
                stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
                stdout=pipes.write_ends[0],
                stderr=pipes.write_ends[1],
                # its own process group, so a timeout also stops what the command started
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            pipes.close()
            missing = f"working directory {cwd}" if exc.filename == cwd else f"{args[0]}: command"
            return self._failed(args, 127, f"{missing} not found", started)
        except PermissionError:
            pipes.close()
            return self._failed(args, 126, f"{args[0]}: permission denied", started)
        finally:
            pipes.close_write_ends()  # the child has its copies; EOF comes when it is done
        try:
            return await self._wait(proc, pipes, args, input, timeout, started)
        finally:
            pipes.close()

    async def _wait(
        self,
        proc: asyncio.subprocess.Process,
        pipes: _Pipes,
        args: list[str],
        input: bytes | None,
        timeout: float,  # noqa: ASYNC109
        started: float,
    ) -> CommandResult:
        out, err = _Capture(), _Capture()
        io = asyncio.ensure_future(asyncio.gather(pipes.read(out, err), _feed(proc, input)))
        timed_out = False
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            timed_out = True
            await _stop(proc)
        except asyncio.CancelledError:
            # a cancelled rollback must not leave the command running unattended
            await _stop(proc)
            io.cancel()
            raise
        await _finish_io(io)
        code = proc.returncode if proc.returncode is not None else -1
        stderr = err.text()
        if timed_out:
            stderr += f"\n[stopped after {timeout:g}s]"
        seconds = round(time.monotonic() - started, 3)
        return CommandResult(tuple(args), code, out.text(), stderr, seconds, timed_out)

    @staticmethod
    def _failed(args: list[str], code: int, message: str, started: float) -> CommandResult:
        return CommandResult(tuple(args), code, "", message, round(time.monotonic() - started, 3))


async def _feed(proc: asyncio.subprocess.Process, data: bytes | None) -> None:
    if data is None or proc.stdin is None:
        return
    try:
        proc.stdin.write(data)
        await proc.stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the command did not read all of it; its exit code tells the rest
    finally:
        proc.stdin.close()


async def _finish_io(io: asyncio.Future[Any]) -> None:
    """Collect the rest of the output; a background process the command left behind may hold
    its pipes open, and must not make a finished command look hung."""
    try:
        await asyncio.wait_for(asyncio.shield(io), KILL_GRACE)
    except TimeoutError:
        io.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await io


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM to the whole process group, SIGKILL if it is still there after a grace period."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            await asyncio.wait_for(proc.wait(), KILL_GRACE)
            return
        except TimeoutError:
            continue


ExecutorFactory = Callable[[StepContext], Executor]
# name -> factory; a future "ssh" entry would read its host from the target's parameters
EXECUTORS: dict[str, ExecutorFactory] = {"local": lambda ctx: LocalExecutor()}


def executor_for(name: str, ctx: StepContext) -> Executor:
    factory = EXECUTORS.get(name)
    if factory is None:
        raise StepFailed(f"unknown executor {name!r} (known: {', '.join(sorted(EXECUTORS))})")
    return factory(ctx)


def shown_env(env: Mapping[str, str]) -> str:
    """Environment for plans: values of secret-looking names are hidden."""
    return " ".join(
        f"{k}={HIDDEN if is_secret_name(k) else shlex.quote(v)}" for k, v in sorted(env.items())
    )


# What every command needs from the bot's environment to find programs and speak its locale
# (LC_* variables pass as well, whatever their name).
HOST_ENV = frozenset({"PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR"})
LOCALE_PREFIX = "LC_"
# What `docker compose` (or podman's) needs to find its engine and credentials.
COMPOSE_ENV = frozenset(
    {"DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY"}
    | {"COMPOSE_FILE", "COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "CONTAINER_HOST"}
    # how images are built: the classic builder or BuildKit/Bake, and for which platform
    | {"DOCKER_BUILDKIT", "COMPOSE_BAKE", "COMPOSE_DOCKER_CLI_BUILD", "DOCKER_DEFAULT_PLATFORM"}
    | {"XDG_RUNTIME_DIR"}
)


def child_env(allowed: Iterable[str], extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A child process's whole environment: the bot's variables named in `allowed` (a step's
    `needs_env`) and its locale, plus what the step sets itself. Anything else the bot holds
    (Slack, GitHub, AWS secrets) stays with the bot."""
    names = frozenset(allowed)
    env = {k: v for k, v in os.environ.items() if k in names or k.startswith(LOCALE_PREFIX)}
    env.update(extra or {})
    return env


class HostCommands(BaseModel):
    """What a step adds to Step or ChangeStep to run commands through an executor, on this
    machine unless told otherwise: the `executor` and `timeout` fields and the helpers."""

    model_config = ConfigDict(extra="forbid")

    executor: str = "local"
    timeout: float = Field(default=120.0, gt=0)  # seconds for each command

    summary: ClassVar[str] = "Run a command"
    needs_env: ClassVar[frozenset[str]] = HOST_ENV

    if TYPE_CHECKING:  # from Step, which every class using these helpers derives from too
        type: str

    def workdir(self, ctx: StepContext) -> str | None:
        """Where commands run; subclasses default it to a target parameter."""
        return None

    def line(
        self, ctx: StepContext, argv: Sequence[str], env: Mapping[str, str] | None = None
    ) -> str:
        """One plan line: where, with which environment, which command."""
        where = self.workdir(ctx)
        prefix = f"[in {where}] " if where else ""
        extra = f"{shown_env(env)} " if env else ""
        return f"{prefix}{extra}{shown(argv)}"

    async def exec(
        self,
        ctx: StepContext,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        input: bytes | None = None,
        cwd: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> CommandResult:
        # git must never stop to ask for a password in a bot's subprocess
        merged = {"GIT_TERMINAL_PROMPT": "0", **(env or {})}
        try:
            return await executor_for(self.executor, ctx).run(
                argv,
                cwd=cwd or self.workdir(ctx),
                env=child_env(self.needs_env, merged),
                timeout=timeout or self.timeout,
                input=input,
            )
        except ValueError as exc:
            raise StepFailed(f"{self.type}: {exc}") from None

    def failed(self, what: str, result: CommandResult) -> StepFailed:
        if result.timed_out:
            how = f"timed out after {self.timeout:g}s"
        else:
            how = f"exited {result.exit_code}"
        return StepFailed(f"{what}: `{result.command}` {how}: {result.reason()}", result.journal())

    async def must(self, ctx: StepContext, what: str, argv: Sequence[str], **kw: Any) -> str:
        """Run a command that has to succeed; its stdout."""
        result = await self.exec(ctx, argv, **kw)
        if not result.ok:
            raise self.failed(what, result)
        return result.stdout


def is_shell_string(argv: Sequence[str]) -> bool:
    """`sh -c "..."` and friends: a string a shell would parse, which the bot never builds."""
    args = list(argv)
    if args and os.path.basename(args[0]) == "busybox":
        args = args[1:]
    if not args or os.path.basename(args[0]) not in SHELLS:
        return False
    for arg in args[1:]:
        if not arg.startswith("-"):
            return False  # a script file: what follows are its own arguments
        if SHELL_C.fullmatch(arg):
            return True
    return False
