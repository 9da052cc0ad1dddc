"""The ids Rollbot gives its Slack buttons and forms, shared by the domains that build them and
the listeners that answer them."""

from __future__ import annotations

from enum import StrEnum


class ActionId(StrEnum):
    APPROVE = "rollback_approve"
    REJECT = "rollback_reject"
    CONFIRM = "rollback_confirm"
    RETRY_FURTHER = "rollback_further"
    # the Roll back button under a diagnosis
    OPEN_FROM_DIAGNOSIS = "diagnose_rollback"
    # the form's target picker when the catalog is too large for a static select
    TARGET_SEARCH = "rollback_target_search"


class CallbackId(StrEnum):
    ROLLBACK_MODAL = "rollback_modal"
