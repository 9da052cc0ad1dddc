"""A recording `docker` on PATH that checks each `docker compose` call against the CLI grammar and
the compose file's services, and logs it as a JSON line (no container engine behind it)."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

# The shim itself: run by this interpreter (PyYAML is importable there), configured by a JSON
# file next to it that tests may change between calls (failures, canned exec output, services
# whose `exec` runs the command on this machine, as if the container were this machine).
SHIM = r'''
import json, os, re, subprocess, sys
import yaml

CONFIG = __CONFIG__
PROJECT = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
# subcommand -> (flags without a value, flags with a value)
GRAMMAR = {
    "stop": (set(), {"-t", "--timeout"}),
    "start": (set(), set()),
    "restart": (set(), {"-t", "--timeout"}),
    "up": ({"-d", "--detach", "--no-deps", "--build", "--no-build", "--force-recreate",
            "--no-recreate", "--remove-orphans"}, {"--scale"}),
    "build": ({"--pull", "--no-cache", "-q", "--quiet"}, set()),
    "ps": ({"-a", "--all", "-q", "--quiet"}, {"--format"}),
    "logs": ({"--no-color", "-t", "--timestamps"}, {"--tail", "-n"}),
    "exec": ({"-T", "--no-TTY", "-d", "--detach"}, {"-e", "--env", "-u", "--user", "-w",
             "--workdir"}),
}


class Usage(Exception):
    pass


class Failed(Exception):
    """A command run by `exec` on this machine failed: its exit code and output."""


def load(path):
    with open(path) as f:
        return json.load(f)


def save(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def split_flag(arg, args, i, valued):
    """(flag, value or None, next index) for --flag=value, --flag value and -f value."""
    if arg.startswith("--") and "=" in arg:
        flag, value = arg.split("=", 1)
        if flag not in valued:
            raise Usage(f"unknown flag: {flag}")
        return flag, value, i + 1
    if arg in valued:
        if i + 1 >= len(args):
            raise Usage(f"flag needs an argument: {arg}")
        return arg, args[i + 1], i + 2
    return arg, None, i + 1


def parse_globals(args):
    project, files, i = None, [], 0
    valued = {"-p", "--project-name", "-f", "--file"}
    while i < len(args) and args[i].startswith("-"):
        flag, value, i = split_flag(args[i], args, i, valued)
        if value is None:
            raise Usage(f"unknown flag: {flag}")
        if flag in ("-p", "--project-name"):
            project = value
        else:
            files.append(value)
    if i >= len(args):
        raise Usage("a compose subcommand is required")
    return project, files, args[i], args[i + 1:]


def parse_sub(sub, args):
    if sub not in GRAMMAR:
        raise Usage(f"unknown docker compose command: {sub}")
    plain, valued = GRAMMAR[sub]
    flags, values, positional, i = set(), [], [], 0
    while i < len(args):
        arg = args[i]
        if sub == "exec" and positional:
            return flags, values, positional + args[i:]  # the command and its own flags
        if arg.startswith("-") and arg != "-":
            if sub == "logs" and arg in ("-f", "--follow"):
                raise Usage("logs --follow never returns")
            flag, value, i = split_flag(arg, args, i, valued)
            if value is None and flag not in plain:
                raise Usage(f"unknown flag: {flag}")
            if value is None:
                flags.add(flag)
            else:
                values.append((flag, value))
            continue
        positional.append(arg)
        i += 1
    return flags, values, positional


def compose_services(files):
    services = {}
    for path in files:
        if not os.path.isfile(path):
            raise Usage(f"open {os.path.abspath(path)}: no such file or directory")
        with open(path) as f:
            services.update((yaml.safe_load(f) or {}).get("services") or {})
    return services


def check(sub, flags, values, positional, services):
    names = positional[:1] if sub == "exec" else positional
    for name in names:
        if name not in services:
            raise Usage(f"no such service: {name}")
    if sub == "up" and not flags & {"-d", "--detach"}:
        raise Usage("up without -d attaches and never returns")
    for flag, value in values:
        if flag == "--scale":
            name, _, count = value.partition("=")
            if name not in services or not count.isdigit():
                raise Usage(f"invalid --scale {value}")
        if flag in ("--tail", "-n") and not (value.isdigit() or value == "all"):
            raise Usage(f"invalid --tail {value}")
        if flag in ("-t", "--timeout") and not value.isdigit():
            raise Usage(f"invalid timeout {value}")
    if sub == "exec" and len(positional) < 2:
        raise Usage("exec needs a service and a command")


def apply(sub, flags, values, positional, services, state):
    """Effects on the recorded state; what the command prints."""
    named = positional[:1] if sub == "exec" else (positional or list(services))
    if sub == "stop":
        for s in named:
            state[s]["running"] = False
    elif sub in ("start", "restart"):
        for s in named:
            state[s]["running"] = True
    elif sub == "up":
        for flag, value in values:
            name, _, count = value.partition("=")
            state[name]["replicas"] = int(count)
        started = set(named)
        if "--no-deps" not in flags:
            for s in named:
                started |= set(services[s].get("depends_on") or [])
        for s in started:
            state[s]["running"] = True
        if "--build" in flags:
            for s in named:
                state[s]["builds"] += 1
    elif sub == "build":
        for s in named:
            state[s]["builds"] += 1
    elif sub == "ps":
        rows = [f"{s}-{n}  {s}  running" for s in named if state[s]["running"]
                for n in range(1, state[s]["replicas"] + 1)]
        return "NAME  SERVICE  STATUS\n" + "".join(r + "\n" for r in rows)
    elif sub == "logs":
        tail = dict(values).get("--tail") or dict(values).get("-n") or "all"
        n = 5 if tail == "all" else min(int(tail), 5)
        return "".join(f"{s}-1  | log line {i}\n" for s in named for i in range(1, n + 1))
    elif sub == "exec":
        if not state[named[0]]["running"]:
            raise Usage(f'service "{named[0]}" is not running')
        if named[0] in CONFIG_DATA["exec_on_host"]:
            done = subprocess.run(positional[1:], capture_output=True, text=True)
            if done.returncode:
                raise Failed(done.returncode, done.stdout, done.stderr.rstrip("\n"))
            return done.stdout
        return CONFIG_DATA["exec_output"].get(" ".join(positional[1:]), "")
    return ""


def injected(sub, positional):
    for rule in CONFIG_DATA["fail"]:
        if rule["command"] == sub and rule["times"] > 0 and (
            rule.get("service") is None or rule["service"] in positional
        ):
            rule["times"] -= 1
            save(CONFIG, CONFIG_DATA)
            return rule
    return None


def main(argv):
    record = {"argv": argv, "cwd": os.getcwd()}
    record["env"] = {k: os.environ[k] for k in CONFIG_DATA["record_env"] if k in os.environ}
    code, out, err = 0, "", ""
    try:
        if not argv or argv[0] != "compose":
            raise Usage("this docker only knows `docker compose`")
        project, files, sub, rest = parse_globals(argv[1:])
        if project is not None and not PROJECT.match(project):
            raise Usage(f"invalid project name {project!r}")
        if not files:
            files = [f for f in DEFAULT_FILES if os.path.isfile(f)][:1]
            if not files:
                raise Usage("no configuration file provided: not found")
        flags, values, positional = parse_sub(sub, rest)
        record.update(project=project, files=files, command=sub, flags=sorted(flags),
                      values=values, positional=positional)
        services = compose_services(files)
        check(sub, flags, values, positional, services)
        rule = injected(sub, positional)
        if rule:
            code, err = rule["exit"], rule["stderr"]
        else:
            state = load(CONFIG_DATA["state"])
            out = apply(sub, flags, values, positional, services, state)
            save(CONFIG_DATA["state"], state)
    except Usage as exc:
        code, err, record["error"] = 1, str(exc), str(exc)
    except Failed as exc:
        code, out, err = exc.args
    record["exit"] = code
    with open(CONFIG_DATA["log"], "a") as log:
        log.write(json.dumps(record) + "\n")
    sys.stdout.write(out)
    if err:
        sys.stderr.write(err + "\n")
    return code


CONFIG_DATA = load(CONFIG)
sys.exit(main(sys.argv[1:]))
'''


@dataclass
class ComposeShim:
    """One fake `docker` and the compose project it knows (in `app_dir`)."""

    bin_dir: Path
    app_dir: Path
    compose_file: Path
    project: str
    config_path: Path

    def _config(self) -> dict[str, Any]:
        return json.loads(self.config_path.read_text())

    def _save(self, config: dict[str, Any]) -> None:
        self.config_path.write_text(json.dumps(config))

    def calls(self) -> list[dict[str, Any]]:
        """Every invocation in order: argv, cwd, project, files, command, flags, values,
        positional, env (the watched variables), exit, and error for a grammar violation."""
        log = Path(self._config()["log"])
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    def commands(self) -> list[list[str]]:
        """Each call's argv after the global flags, e.g. ["stop", "backend-asgi"]."""
        out = []
        for call in self.calls():
            argv = call["argv"]
            sub = call.get("command")
            out.append(argv[argv.index(sub) :] if sub in argv else argv)
        return out

    def grammar_errors(self) -> list[str]:
        return [f"{c['argv']}: {c['error']}" for c in self.calls() if "error" in c]

    def fail(
        self,
        command: str,
        exit_code: int = 1,
        stderr: str = "failed",
        times: int = 1,
        service: str | None = None,
    ) -> None:
        """The next `times` calls of `command` (naming `service`, when given) fail."""
        config = self._config()
        rule = {"command": command, "exit": exit_code, "stderr": stderr, "times": times}
        config["fail"].append({**rule, "service": service})
        self._save(config)

    def exec_output(self, command: list[str], stdout: str) -> None:
        """What `exec SERVICE COMMAND...` prints for this command."""
        config = self._config()
        config["exec_output"][" ".join(command)] = stdout
        self._save(config)

    def exec_on_host(self, service: str) -> None:
        """`exec SERVICE COMMAND...` runs COMMAND on this machine (e.g. real PostgreSQL tools
        against a real server), with its real output and exit code."""
        config = self._config()
        config["exec_on_host"].append(service)
        self._save(config)

    def state(self) -> dict[str, dict[str, Any]]:
        """service -> {replicas, running, builds}."""
        return json.loads(Path(self._config()["state"]).read_text())

    def running(self) -> dict[str, int]:
        """service -> containers running now."""
        return {s: v["replicas"] if v["running"] else 0 for s, v in self.state().items()}


def write_project(app_dir: Path, services: dict[str, int], depends: dict[str, list[str]]) -> Path:
    spec: dict[str, Any] = {"services": {}}
    for name, replicas in services.items():
        service: dict[str, Any] = {
            "image": f"localhost/{name}:current",
            "deploy": {"replicas": replicas},
        }
        if depends.get(name):
            service["depends_on"] = depends[name]
        spec["services"][name] = service
    path = app_dir / "docker-compose.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture(name="compose_shim")
def compose_shim_fixture(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., ComposeShim]:
    """Factory: compose_shim(services={"backend-wsgi": 2, ...}, project="arena") writes a
    docker-compose.yml into a new app dir and puts the recording `docker` first on PATH.
    `app_dir` may name an existing directory (a git checkout) to write the file into."""

    def make(
        services: dict[str, int] | None = None,
        project: str = "arena",
        depends: dict[str, list[str]] | None = None,
        app_dir: Path | None = None,
        record_env: tuple[str, ...] = ("API_TAG",),
    ) -> ComposeShim:
        base = tmp_path_factory.mktemp("compose")
        bin_dir, app = base / "bin", app_dir or base / "app"
        bin_dir.mkdir()
        app.mkdir(exist_ok=True)
        services = services or {"backend-wsgi": 2, "backend-asgi": 2, "postgres": 1}
        compose_file = write_project(app, services, depends or {})
        state = {s: {"replicas": n, "running": True, "builds": 0} for s, n in services.items()}
        (base / "state.json").write_text(json.dumps(state))
        config = {
            "log": str(base / "calls.jsonl"),
            "state": str(base / "state.json"),
            "record_env": list(record_env),
            "fail": [],
            "exec_output": {},
            "exec_on_host": [],
        }
        config_path = base / "shim.json"
        config_path.write_text(json.dumps(config))
        script = bin_dir / "docker"
        body = SHIM.replace("__CONFIG__", repr(str(config_path)))
        script.write_text(f"#!{sys.executable}\n{body}")
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
        return ComposeShim(bin_dir, app, compose_file, project, config_path)

    return make
