"""Real git repositories in temp dirs: commits, the `last-stable-release` tag, a bare origin."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

STABLE_TAG = "last-stable-release"
# Commits and tags must not depend on the machine's git config (identity, signing, hooks).
ISOLATED_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
}


def git_binary() -> str:
    found = shutil.which("git")
    if found is None:
        pytest.fail("git is not installed (apt-get install git)")
    return found


class GitRepo:
    """A working repository on branch main; every method runs the real git binary."""

    def __init__(self, binary: str, path: Path) -> None:
        self.binary = binary
        self.path = path
        self.origin: Path | None = None

    def git(self, *args: str, check: bool = True) -> str:
        """Run git in the repository and return its stdout, stripped."""
        done = subprocess.run(
            [self.binary, *args],
            cwd=self.path,
            env={**os.environ, **ISOLATED_ENV},
            capture_output=True,
            text=True,
            timeout=30,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed ({done.returncode}): {done.stderr}")
        return done.stdout.strip()

    def write(self, files: dict[str, str]) -> None:
        """Change files in the working tree without committing (a dirty tree)."""
        for name, text in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)

    def commit(self, message: str, files: dict[str, str] | None = None) -> str:
        """Write `files`, stage everything and commit; returns the new commit id."""
        self.write(files or {})
        self.git("add", "--all")
        self.git("commit", "--allow-empty", "-q", "-m", message)
        return self.head()

    def tag(self, name: str, ref: str = "HEAD") -> str:
        """Create or move a lightweight tag; returns the commit it points at."""
        self.git("tag", "--force", name, ref)
        return self.rev(name)

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def rev(self, ref: str) -> str:
        """Commit id of `ref`; AssertionError if it does not name a commit."""
        return self.git("rev-parse", "--verify", "-q", f"{ref}^{{commit}}")

    def exists(self, ref: str) -> bool:
        return self.git("rev-parse", "--verify", "-q", f"{ref}^{{commit}}", check=False) != ""

    def dirty(self) -> bool:
        return bool(self.git("status", "--porcelain"))

    def push(self, *refs: str) -> None:
        """Push main (and the given refs) to the bare origin made with origin=True."""
        self.git("push", "-q", "--force", "origin", "main", *refs)


def make_repo(binary: str, path: Path, stable: bool = True, origin: Path | None = None) -> GitRepo:
    path.mkdir(parents=True, exist_ok=True)
    repo = GitRepo(binary, path)
    repo.git("init", "-q", "-b", "main")
    # local config, so a bot process working on the repository can commit too
    repo.git("config", "user.name", "Rollbot Tests")
    repo.git("config", "user.email", "rollbot-tests@example.invalid")
    repo.git("config", "commit.gpgsign", "false")
    repo.git("config", "tag.gpgsign", "false")
    repo.commit("release 1", {"app/version.txt": "1\n", "README.md": "app\n"})
    if stable:
        repo.tag(STABLE_TAG)
    if origin is not None:
        subprocess.run(
            [binary, "init", "-q", "--bare", "-b", "main", str(origin)],
            env={**os.environ, **ISOLATED_ENV},
            check=True,
            capture_output=True,
            timeout=30,
        )
        repo.git("remote", "add", "origin", str(origin))
        repo.origin = origin
        repo.push("--tags")
    return repo


@pytest.fixture
def git_repo(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., GitRepo]:
    """Factory: git_repo() is a repo on main with one commit ("release 1") tagged
    last-stable-release; stable=False skips the tag, origin=True adds a bare `origin`."""
    binary = git_binary()

    def make(name: str = "app", stable: bool = True, origin: bool = False) -> GitRepo:
        base = tmp_path_factory.mktemp(f"git-{name}")
        remote = base / f"{name}.git" if origin else None
        return make_repo(binary, base / name, stable=stable, origin=remote)

    return make


@pytest.fixture
def git_env() -> dict[str, str]:
    """Environment entries that keep a git subprocess away from the machine's git config."""
    return dict(ISOLATED_ENV)
