"""Step implementations; importing this package registers every step type."""

from playbooks.steps import (  # noqa: F401
    alb,
    compose,
    ecs,
    ecs_taskdef,
    files,
    git,
    github,
    http,
    nginx,
    postgres,
    rds,
    shell,
)
