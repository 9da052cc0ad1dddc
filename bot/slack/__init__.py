"""Everything that talks to Slack: the Bolt app, the Web API calls, the outbox, answers."""
