"""Weights from the Hugging Face Hub: pinned revision, sha256 checked before use, kept in the user cache.

A download goes into a staging folder inside the cache, is checked against the registry's size and
sha256, and only then is renamed into place; a file that does not match is deleted, never cached.
Offline mode (``HF_HUB_OFFLINE=1``) never touches the network. Before downloading, one HEAD request
without retries checks that the Hub answers, so an unreachable Hub costs one timeout, not a backoff.
"""

from __future__ import annotations

import inspect
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bsrn_cli import __version__
from bsrn_cli.errors import BsrnError
from bsrn_cli.pretrained.registry import PretrainedModel
from bsrn_cli.pretrained.weights import sha256_file

CACHE_ENV = "BSRN_CACHE_DIR"
OFFLINE_ENV = "HF_HUB_OFFLINE"
DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_TIMEOUT_S = 10.0
TRUE_VALUES = {"1", "ON", "YES", "TRUE"}


def say(message: str) -> None:
    """One informational line on stderr (stdout stays for results)."""
    print(message, file=sys.stderr, flush=True)


def cache_root() -> Path:
    """``$BSRN_CACHE_DIR``, else the platform's user cache folder for bsrn."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("bsrn", appauthor=False))


def cached_path(entry: PretrainedModel) -> Path:
    owner_repo = entry.hub_repo.replace("/", "--")
    return cache_root() / "models" / owner_repo / entry.revision / entry.filename


def offline_mode() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub reads it, looked up now rather than at import time."""
    if os.environ.get(OFFLINE_ENV, "").upper() in TRUE_VALUES:
        return True
    constants = sys.modules.get("huggingface_hub.constants")
    return bool(constants is not None and getattr(constants, "HF_HUB_OFFLINE", False))


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")


def _timeout() -> float:
    try:
        return float(os.environ.get("HF_HUB_ETAG_TIMEOUT", DEFAULT_TIMEOUT_S))
    except ValueError:
        return DEFAULT_TIMEOUT_S


def hub_location(entry: PretrainedModel) -> str:
    return f"{entry.hub_repo}@{entry.revision}/{entry.filename}"


def mismatch(path: Path, entry: PretrainedModel) -> str | None:
    """How the file differs from the registry's size and sha256, or None when it matches."""
    size = path.stat().st_size
    if size != entry.size:
        return f"{size} bytes, the registry pins {entry.size}"
    digest = sha256_file(path)
    if digest != entry.sha256:
        return f"sha256 {digest[:12]}... does not match the registry ({entry.sha256[:12]}...)"
    return None


def check_file(path: Path, entry: PretrainedModel) -> None:
    """Refuse a file that is not the one the registry pins for ``entry``."""
    reason = mismatch(path, entry)
    if reason is not None:
        raise BsrnError(f"{path}: {reason} for {entry.name}; the file is damaged or was replaced, refused")


@dataclass(frozen=True)
class LocalCopy:
    kind: str  # "bundled" or "cache"
    path: Path

    def problem(self, entry: PretrainedModel) -> str | None:
        """None when the copy matches the registry, else the one-line reason."""
        try:
            check_file(self.path, entry)
        except BsrnError as exc:
            return str(exc)
        except OSError as exc:
            return f"{self.path}: cannot read ({exc.strerror or exc})"
        return None


def local_copies(entry: PretrainedModel) -> list[LocalCopy]:
    """The copies on this machine, in resolution order: bundled, then cache."""
    copies = []
    bundled = entry.bundled_path()
    if bundled is not None and bundled.is_file():
        copies.append(LocalCopy("bundled", bundled))
    cached = cached_path(entry)
    if cached.is_file():
        copies.append(LocalCopy("cache", cached))
    return copies


def _network_errors() -> tuple[type[BaseException], ...]:
    """Connection-level exceptions of whichever HTTP client this huggingface_hub uses."""
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module_name, attribute in (("httpx2", "TransportError"), ("httpx", "TransportError"),
                                   ("requests", "RequestException")):
        module = sys.modules.get(module_name)
        if module is not None and hasattr(module, attribute):
            errors.append(getattr(module, attribute))
    return tuple(errors)


def _hub_error(entry: PretrainedModel, exc: BaseException) -> BsrnError:
    from huggingface_hub import utils as hf  # the error classes, exported there since before 0.23

    where = f"{hub_location(entry)} on {endpoint()}"
    if isinstance(exc, hf.RevisionNotFoundError):
        return BsrnError(f"{entry.name}: revision {entry.revision!r} not found in {entry.hub_repo} on {endpoint()}; "
                         "this bsrn version pins it, so the Hub repo or HF_ENDPOINT is not the expected one")
    if isinstance(exc, hf.RepositoryNotFoundError):
        return BsrnError(f"{entry.name}: repository {entry.hub_repo} not found on {endpoint()}")
    if isinstance(exc, hf.EntryNotFoundError) and not isinstance(exc, hf.LocalEntryNotFoundError):
        return BsrnError(f"{entry.name}: file {entry.filename} not found at {where}")
    if isinstance(exc, hf.HfHubHTTPError) and getattr(exc, "response", None) is not None:
        return BsrnError(f"{entry.name}: the Hub answered HTTP {exc.response.status_code} for {where}")
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return BsrnError(f"{entry.name}: cannot reach {endpoint()} ({reason[:160]})")


def _probe(entry: PretrainedModel):
    """HEAD the file once, no retries: its metadata, or the client's exception."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(entry.hub_repo, entry.filename, revision=entry.revision, endpoint=endpoint())
    wanted = {"url": url, "token": False, "timeout": _timeout(), "endpoint": endpoint(), "retry_on_errors": False}
    accepted = inspect.signature(get_hf_file_metadata).parameters
    return get_hf_file_metadata(**{k: v for k, v in wanted.items() if k in accepted})


def _prune_empty_dirs(start: Path, stop: Path) -> None:
    """Remove empty folders from ``start`` up to, not including, ``stop``."""
    current = start
    while current != stop and stop in current.parents:
        try:
            current.rmdir()
        except OSError:
            return
        current = current.parent


def download(entry: PretrainedModel, force: bool = False) -> Path:
    """Fetch the entry's file at its pinned revision into the cache, verified; return its path."""
    target = cached_path(entry)
    reason = mismatch(target, entry) if target.is_file() else "not cached"
    if reason is None and not force:
        return target
    if offline_mode():
        raise BsrnError(f"{entry.name}: offline mode ({OFFLINE_ENV}=1) forbids downloading {hub_location(entry)}; "
                        f"unset {OFFLINE_ENV} and run `bsrn models download {entry.name}`")
    if target.is_file() and reason is not None:
        say(f"{target}: {reason}; downloading it again")
    from huggingface_hub import hf_hub_download
    from huggingface_hub import utils as hf

    root = cache_root()
    client_errors = (hf.HfHubHTTPError, hf.LocalEntryNotFoundError, hf.EntryNotFoundError, OSError,
                     *_network_errors())
    try:
        metadata = _probe(entry)
    except client_errors as exc:
        raise _hub_error(entry, exc) from exc
    if metadata.size is not None and metadata.size != entry.size:
        raise BsrnError(f"{entry.name}: the Hub file {hub_location(entry)} is {metadata.size} bytes, the registry "
                        f"pins {entry.size}; refused without downloading")
    say(f"downloading {entry.name} from {hub_location(entry)} ({entry.size / 1e6:.1f} MB)")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".download-", dir=target.parent))
    except OSError as exc:
        raise BsrnError(f"{entry.name}: cannot write to the model cache {target.parent} "
                        f"({exc.strerror or exc}); set {CACHE_ENV} to a folder you can write") from exc
    try:
        try:
            fetched = Path(hf_hub_download(
                entry.hub_repo, entry.filename, revision=entry.revision, local_dir=staging, cache_dir=staging,
                endpoint=endpoint(), etag_timeout=_timeout(), token=False, library_name="bsrn",
                library_version=__version__))
        except client_errors as exc:
            raise _hub_error(entry, exc) from exc
        reason = mismatch(fetched, entry)
        if reason is not None:
            raise BsrnError(f"{entry.name}: the file downloaded from {hub_location(entry)} is not the pinned one "
                            f"({reason}); refused and deleted, nothing cached")
        os.replace(fetched, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not target.is_file():
            _prune_empty_dirs(target.parent, root)
    return target
