"""The one exception type for user-facing mistakes: the CLI prints it as a single line."""


class BsrnError(Exception):
    """A problem the user can fix (bad file, bad option); printed without a traceback."""
