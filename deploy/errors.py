"""The two kinds of failure a user should see as one line instead of a traceback.

Only the command line (and the GUI) turn them into exit codes: 2 for `UserError`,
3 for `UnreachableError`. Anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A mistake the user can fix: a missing file, a wrong format, an unknown option.

    The message is the whole story, ideally with the fix: "... try: studio export --layout rknn-split".
    """


class UnreachableError(Exception):
    """A board or network that cannot be reached (exit code 3)."""
