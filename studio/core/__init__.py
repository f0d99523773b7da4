"""Qt-free logic: the only place that knows how things are done. The CLI and the GUI call it."""

from deploy.errors import UnreachableError, UserError

__all__ = ["UnreachableError", "UserError"]
