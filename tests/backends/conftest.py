"""Fixtures of the backend tests."""

import pytest

KERNEL_PATHS = ["portable", "popcnt", "avx2", "avx512", "neon"]


def force_path(name: str) -> str:
    """Force one kernel path, or skip (with the reason) where this CPU lacks it: a path test
    never silently runs on another path."""
    from bsrn_cli import _packed

    if name not in _packed.available_paths():
        pytest.skip(f"kernel path {name} not available on this CPU (available: {', '.join(_packed.available_paths())})")
    assert _packed.set_path(name) == name
    return name


@pytest.fixture(params=KERNEL_PATHS)
def dispatch_path(request):
    """Each kernel path in turn (forced), restoring the one chosen at run time afterwards."""
    from bsrn_cli import _packed

    before = _packed.path()
    yield force_path(request.param)
    _packed.set_path(before)
