"""The playbook model: playbook files, the step contract, the steps and the adapters they use."""
