"""The `rollbot` command line: serve, socket, check, plan, audit, iam-policy."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from datetime import UTC, datetime

from pydantic import ValidationError

from bot.errors import ConfigError
from bot.startup import StartupError

log = logging.getLogger("rollbot")

SERVE_DESCRIPTION = """\
Serve Slack's HTTP requests (POST /slack/events), GET /healthz and GET /metrics.

Before listening it checks the Slack token (auth.test), the store (REDIS_URL, else the SQLite
file ROLLBOT_DB) and the port; any failure is one line on stderr and exit status 2.
Settings come from the environment: SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (required),
ROLLBOT_CONFIG (default ./rollbot.yml), REDIS_URL, ROLLBOT_DB (default ./rollbot.db),
ROLLBOT_DRAIN_SECONDS (default 20: how long SIGTERM lets work finish); see the README.
"""


def _settings():
    from bot.settings import Settings

    return Settings()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rollbot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve",
        help="HTTP mode: /slack/events, /healthz, /metrics",
        description=SERVE_DESCRIPTION,
        # help text starts where it did with the short options, long ones on their own line
        formatter_class=lambda prog: argparse.RawDescriptionHelpFormatter(
            prog, max_help_position=17
        ),
    )
    serve.add_argument(
        "--port",
        type=int,
        default=os.environ.get("ROLLBOT_PORT") or "3000",  # argparse applies type=int
        help="TCP port to listen on (default: ROLLBOT_PORT, else 3000; now %(default)s)",
    )
    serve.add_argument(
        "--host",
        default="0.0.0.0",
        help="address to listen on (default: %(default)s, every interface; 127.0.0.1: this "
        "machine only)",
    )
    serve.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        default=os.environ.get("ROLLBOT_METRICS_PORT") or None,
        help="serve GET /metrics on this port (on 127.0.0.1 unless --metrics-host says "
        "otherwise) instead of the public one (default: ROLLBOT_METRICS_PORT, else the public "
        "port)",
    )
    serve.add_argument(
        "--metrics-host",
        metavar="HOST",
        default="127.0.0.1",
        help="address of the --metrics-port listener (default: %(default)s)",
    )
    sub.add_parser("socket", help="Socket Mode (needs SLACK_APP_TOKEN)")
    check_parser = sub.add_parser("check", help="validate settings, catalog, playbooks and store")
    check_parser.add_argument(
        "--online",
        action="store_true",
        help="also check the Slack token (auth.test), AWS credentials (sts "
        "get-caller-identity), GitHub (when GITHUB_TOKEN is set) and that each compose project "
        "has the containers its steps name; warns when Redis would evict or lose keys",
    )
    plan = sub.add_parser("plan", help="print what a rollback would do; changes nothing")
    plan.add_argument("target")
    plan.add_argument("--to", dest="ref", default="previous")
    policy = sub.add_parser(
        "iam-policy",
        help="print the IAM policy (JSON) the catalog's playbooks and /diagnose need",
        description="Print the least-privilege IAM policy document for every target of the "
        "catalog (or one): each AWS action the playbook steps and /diagnose sources call, scoped "
        "to the target's resources where AWS allows it. See docs/deploy.md to attach it.",
    )
    policy.add_argument("--target", help="only this target (default: every target)")
    policy.add_argument(
        "--account", default="*", help="AWS account id in resource ARNs (default: %(default)s)"
    )
    policy.add_argument(
        "--pass-role",
        action="append",
        metavar="ROLE_ARN",
        help="task or execution role the ECS task definitions name (repeatable); without it "
        "or --lookup-roles, iam:PassRole covers any role of the account, passed only to ECS tasks",
    )
    policy.add_argument(
        "--lookup-roles",
        action="store_true",
        help="read those roles from the task definitions the services run now (needs AWS "
        "credentials allowed ecs:DescribeServices and ecs:DescribeTaskDefinition)",
    )
    audit = sub.add_parser("audit", help="export the audit log as JSON lines, or verify it")
    audit.add_argument("--since", default="1970-01-01", help="ISO date or time (UTC)")
    audit.add_argument(
        "--verify", action="store_true", help="check the hash chain of the whole log"
    )
    audit.add_argument(
        "--expect-head",
        metavar="HASH",
        help="with --verify: a head hash recorded earlier, which must still be in the chain",
    )
    args = parser.parse_args(argv)
    if args.command == "audit" and args.expect_head and not args.verify:
        parser.error("--expect-head needs --verify")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("botocore", "boto3", "urllib3", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from bot.redaction import install_log_filter, learn_settings

    install_log_filter()
    try:
        settings = _settings()
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            print(f"environment: {'.'.join(map(str, err['loc'])).upper()}: {err['msg']}")
        return 2
    learn_settings(settings)
    try:
        match args.command:
            case "check":
                code = asyncio.run(check(settings, online=args.online))
                if args.online:
                    asyncio.run(check_store_online(settings))
                return code
            case "plan":
                return asyncio.run(plan_target(settings, args.target, args.ref))
            case "audit" if args.verify:
                return asyncio.run(verify_audit(settings, args.expect_head))
            case "audit":
                return asyncio.run(export_audit(settings, args.since))
            case "iam-policy":
                from bot.iam_policy import print_policy

                return print_policy(
                    settings, args.target, args.account, args.pass_role, args.lookup_roles
                )
            case "serve" | "socket":
                from bot.server import run

                metrics_at = None
                if getattr(args, "metrics_port", None) is not None:
                    metrics_at = (args.metrics_host, args.metrics_port)
                return asyncio.run(
                    run(
                        settings,
                        args.command,
                        getattr(args, "port", 0),
                        getattr(args, "host", ""),
                        metrics_at=metrics_at,
                    )
                )
    except ConfigError as exc:
        _print_problems(exc)
        return 2
    except StartupError as exc:
        print(f"rollbot: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 1


def _print_problems(exc: ConfigError) -> None:
    say(f"{len(exc.problems)} problem(s) found:", file=sys.stderr)
    for problem in exc.problems:
        say(f"  - {problem}", file=sys.stderr)


async def check(settings, *, online: bool = False) -> int:
    """Catalog and playbooks, then the store (Redis reachable, SQLite file writable); online:
    also Slack, AWS, GitHub and the compose projects. Each reachability check prints one line."""
    from bot import startup
    from bot.catalog import load_catalog
    from playbooks.loader import load_playbook, shipped_playbooks

    problems = []
    for name in shipped_playbooks():
        try:
            load_playbook(name)
        except ConfigError as exc:
            problems += exc.problems
    try:
        catalog = load_catalog(settings.rollbot_config)
    except ConfigError as exc:
        problems += exc.problems
        catalog = None
    for warning in settings.problems(serving=True):
        print(f"warning: {warning}")
    if problems:
        _print_problems(ConfigError(problems))
    else:
        assert catalog is not None
        print(f"{catalog.path}: OK — {len(catalog.targets)} target(s)")
        for name, target in sorted(catalog.targets.items()):
            count = len(target.steps)
            print(f"  {name}: {target.playbook.name} ({count} step{'' if count == 1 else 's'})")
    if online:
        reached = await startup.online_checks(settings)
    else:
        reached = [await startup.store_check(settings)]
    for outcome in reached:
        print(outcome.line())
    host_problems = await _online_problems(catalog) if online and catalog is not None else []
    for problem in host_problems:
        print(f"  - {problem}", file=sys.stderr)
    failed = problems or host_problems or not all(outcome.ok for outcome in reached)
    return 1 if failed else 0


async def _online_problems(catalog) -> list[str]:
    """What the hosts say now: compose steps whose project has no containers to act on."""
    from playbooks.runner import step_context
    from playbooks.steps.compose import ComposeStep

    problems: list[str] = []
    for name, target in sorted(catalog.targets.items()):
        ctx = step_context(target, "previous")
        for step in target.steps:
            if isinstance(step, ComposeStep):
                problem = await step.container_problem(ctx)
                line = f"{name}: step {step.id}: {problem}"
                if problem and line not in problems:
                    problems.append(line)
    return problems


async def check_store_online(settings) -> None:
    """Warn when the state store's server would evict or lose what Rollbot keeps."""
    from bot.store.redis_check import check_store_online as store_warnings

    for warning in await store_warnings(settings.secret("redis_url")):
        print(f"warning: {warning}")


async def plan_target(settings, name: str, ref: str) -> int:
    from bot.catalog import load_catalog
    from playbooks.base import NothingToDo, StepFailed
    from playbooks.runner import plan, step_context

    catalog = load_catalog(settings.rollbot_config)
    target = catalog.targets.get(name)
    if target is None:
        print(f"unknown target {name!r}; known: {', '.join(catalog.names())}", file=sys.stderr)
        return 2
    say(f"Plan for {name} ({target.playbook.name}, to {ref}) — nothing will be changed:")
    try:
        planned = await plan(target.steps, step_context(target, ref, settings))
    except StepFailed as exc:
        say(f"cannot plan: {exc}", file=sys.stderr)
        return 1
    except NothingToDo as exc:
        print(f"{exc}.")
        return 0
    for entry in planned:
        mark = "CHANGE" if entry.mutating else "read  "
        say(f"{entry.index + 1:>2}. [{mark}] {entry.title}")
        for call in entry.calls:
            say(f"      {call}")
    return 0


def say(line: str, file=None) -> None:
    """A line of a plan on the terminal: it leaves the process, so it passes the redactor."""
    from playbooks.redact import redact_text

    print(redact_text(line), file=file or sys.stdout)


async def export_audit(settings, since: str) -> int:
    from bot.store import open_store
    from playbooks.redact import redact

    try:
        start = datetime.fromisoformat(since)
    except ValueError:
        print(f"--since: {since!r} is not an ISO date or time", file=sys.stderr)
        return 2
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    store = open_store(settings)
    await store.connect()
    try:
        for entry in await store.audit_since(start.timestamp()):
            print(json.dumps(redact(entry.model_dump()), sort_keys=True))
    finally:
        await store.close()
    return 0


async def verify_audit(settings, expect_head: str | None) -> int:
    """Check the whole log's hash chain: 0 and a summary with the head hash (record it
    elsewhere, and pass it back as --expect-head later), or 1 naming the first broken entry."""
    from bot.store import open_store
    from bot.store.audit_chain import verify

    store = open_store(settings)
    await store.connect()
    try:
        entries = await store.audit_since(float("-inf"), limit=sys.maxsize)
    finally:
        await store.close()
    verdict = verify(entries, expect_head)
    print(verdict.summary(), file=sys.stdout if verdict.intact else sys.stderr)
    return 0 if verdict.intact else 1
