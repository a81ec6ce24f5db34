"""The operators' web console: topics, consumer groups (who owns what, lag), dead letters, a live stream."""

from delivery.console.api import ConsoleService, console_routes
from delivery.console.data import ConsoleData

__all__ = ["ConsoleData", "ConsoleService", "console_routes"]
