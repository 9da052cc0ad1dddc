"""Shared fixtures: each real counterpart lives in its own module under tests/testbed/."""

pytest_plugins = [
    "tests.testbed.redis_server",
    "tests.testbed.aws",
    "tests.testbed.nginx",
    "tests.testbed.git",
    "tests.testbed.slack_api",
    "tests.testbed.rollbot_process",
    "tests.testbed.http_backend",
    "tests.testbed.github_api",
    "tests.testbed.aws_gate",
    "tests.testbed.postgres",
    "tests.testbed.podman",
]


def pytest_terminal_summary(terminalreporter: object) -> None:
    from tests import fuzz_counter

    if fuzz_counter.tried:
        terminalreporter.write_line(f"fuzz: {fuzz_counter.tried} hostile inputs tried")
