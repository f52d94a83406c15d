"""pytest setup for the Python suites: tensorc_ct on the import path, the backend in the header,
and, when TENSORC_TEST_BACKEND=cuda but no CUDA engine can run here, every test skipped with the
reason (never silently green)."""
import os
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))


def _backend_state():
    """(backend, None) when the chosen backend can run, else (backend, reason it cannot)."""
    backend = os.environ.get("TENSORC_TEST_BACKEND", "").strip().lower() or "cpu"
    if backend not in ("cpu", "cuda"):
        return backend, f"TENSORC_TEST_BACKEND={backend!r} is not 'cpu' or 'cuda'"
    if backend == "cpu":
        return backend, None
    try:
        import tensorc_ct
    except Exception as e:  # the library itself is missing: the CPU run would fail the same way
        return backend, f"libtensorc could not be loaded: {e}"
    return backend, tensorc_ct.cuda_unavailable_reason()


def pytest_report_header(config):
    backend, why = _backend_state()
    line = f"tensorc test backend: {backend} (TENSORC_TEST_BACKEND)"
    if why:
        line += f" -- UNAVAILABLE, all tests skip: {why}"
    elif backend == "cuda":
        import torch
        line += f" on {torch.cuda.get_device_name(0)}"
    return line


def pytest_collection_modifyitems(config, items):
    backend, why = _backend_state()
    if not why:
        return
    mark = pytest.mark.skip(reason=f"TENSORC_TEST_BACKEND={backend} but {why}")
    for item in items:
        item.add_marker(mark)
