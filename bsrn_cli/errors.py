"""The exception types for user-facing mistakes: the CLI prints each as a single line."""


class BsrnError(Exception):
    """A problem the user can fix (bad file, bad option); printed without a traceback."""


class UsageProblem(BsrnError):
    """A mistake in the command line itself (exit status 2): which option, what was wrong, a hint."""

    def __init__(self, option: str, problem: str, hint: str = "see bsrn upscale --help"):
        super().__init__(f"{option}: {problem}; {hint}")
        self.option, self.problem, self.hint = option, problem, hint
