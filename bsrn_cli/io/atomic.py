"""Write a file so that it appears complete or not at all, with ordinary permissions.

Temporary files are hidden and carry the writing process's id: ``.NAME.PID-XXXXXXXX.part.EXT``
(``.frames.EXT`` for a video stream before its audio is added). A run that is killed outright
(SIGKILL, power loss) cannot remove them, so :func:`remove_stale_temporaries` removes those of
processes that no longer run when a later run writes into the same folder.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Callable

from bsrn_cli.errors import BsrnError

_TEMPORARY = re.compile(r"^\..+\.(?P<pid>\d+)-[a-z0-9_]{8}\.(?:part|frames)\.[A-Za-z0-9]+$")


class OutputExists(BsrnError):
    """The output appeared while it was being made (another run wrote it first)."""

    def __init__(self, path: Path, same: bool = False):
        super().__init__(f"{path}: already exists (another run wrote it meanwhile); kept")
        self.path = path
        self.same = same  # it holds exactly the bytes this write would have put there


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temporary_file(path: Path, kind: str = "part") -> str:
    """A new, empty hidden file beside ``path`` named for this process (see the module's doc)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.{os.getpid()}-", suffix=f".{kind}{path.suffix}", dir=path.parent)
    os.close(fd)
    return tmp


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # another user's process, or a pid we cannot ask about: leave its file
    return True


def remove_stale_temporaries(folder: Path, targets: set[Path] | None = None) -> int:
    """Remove our temporary files in ``folder`` whose process no longer runs; how many.
    ``targets``: only those of these outputs."""
    removed = 0
    prefixes = None if targets is None else [(f".{t.stem}.", t.suffix) for t in targets]
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    for name in names:
        match = _TEMPORARY.match(name)
        if prefixes is not None and not any(name.startswith(a) and name.endswith(b) for a, b in prefixes):
            continue
        if match and not _running(int(match["pid"])):
            try:
                os.unlink(folder / name)
                removed += 1
            except OSError:
                pass
    return removed


def _same_bytes(a: str, b: Path) -> bool:
    import filecmp

    try:
        return filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


def atomic_write(path: str | os.PathLike, write: Callable[[str], None], replace: bool = True) -> None:
    """Call ``write(temporary_path)`` in the target folder, then move it onto ``path``.

    An exception or interrupt removes the temporary file, so no partial output is left.
    The file gets the permissions a plain ``open`` would give (mkstemp's are 0600).
    ``replace=False`` never replaces a file that appeared meanwhile (:class:`OutputExists`; its
    ``same`` says whether that file holds exactly the bytes just made, as when a retried job's
    first try wrote it before dying):
    the file is hard-linked into place, which fails atomically if the name exists; where the
    file system has no hard links, the name is checked just before the rename.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_file(path)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        if replace:
            os.replace(tmp, path)
            return
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise OutputExists(path, _same_bytes(tmp, path)) from None
        except OSError:  # no hard links on this file system
            if path.exists():
                raise OutputExists(path, _same_bytes(tmp, path)) from None
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    Path(tmp).unlink(missing_ok=True)
