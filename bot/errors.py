"""Configuration problems as the bot reports them; the types live with the playbook model."""

from playbooks.problems import ConfigError, ConfigProblem, key_path, problems_from_validation

__all__ = ["ConfigError", "ConfigProblem", "key_path", "problems_from_validation"]
