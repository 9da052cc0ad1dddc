"""/diagnose: evidence captured concurrently, judged against the runbooks' rollback triggers."""

from bot.diagnose.capture import capture
from bot.diagnose.models import Capture, Figures, SourceResult, Trigger, Verdict

__all__ = ["Capture", "Figures", "SourceResult", "Trigger", "Verdict", "capture"]
