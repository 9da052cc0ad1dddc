"""/diagnose: evidence captured concurrently, checked against the runbooks' triggers."""

from bot.diagnose.capture import Capture, capture

__all__ = ["Capture", "capture"]
