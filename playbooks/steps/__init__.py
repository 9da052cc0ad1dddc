"""Step implementations; importing this package registers every step type."""

from playbooks.steps import ecs, ecs_taskdef, http  # noqa: F401
