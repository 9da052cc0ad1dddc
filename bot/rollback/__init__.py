"""The rollback domain: request, approval, execution, verification and announcements."""
