"""Fixtures of the backend tests."""

import pytest


@pytest.fixture(params=["portable", "popcnt", "avx2"])
def dispatch_path(request):
    """Each kernel path in turn (forced), restoring the one chosen at run time afterwards."""
    from bsrn_cli import _packed
    before = _packed.path()
    _packed.set_path(request.param)
    yield _packed.path()
    _packed.set_path(before)
