"""PySide6 views only: they call studio.core, run jobs on worker threads, render events (GUI issue)."""
