"""The exception types for user-facing mistakes: the CLI prints each as a single line."""


class BsrnError(Exception):
    """A problem the user can fix (bad file, bad option); printed without a traceback."""


class UsageProblem(BsrnError):
    """A mistake in the command line itself (exit status 2): which option, what was wrong, a hint."""

    def __init__(self, option: str, problem: str, hint: str = "see bsrn upscale --help"):
        super().__init__(f"{option}: {problem}; {hint}")
        self.option, self.problem, self.hint = option, problem, hint


def require_torch(what: str, extra: str = "torch") -> None:
    """A one-line error, with the install command, when PyTorch is missing and ``what`` needs it.

    The packed CPU backend runs without torch; the torch backend (CUDA, the float reference,
    backbones other than BSRN+BAM), training, export, convert, bench and info need it."""
    try:
        import torch  # noqa: F401 (what needs it imports it next anyway)
    except ImportError:
        raise BsrnError(f"{what} needs PyTorch, which is not installed: pip install 'bsrn[{extra}]'") from None
