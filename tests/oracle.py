"""The parity oracle: parallel-wavegan 0.6.1 (a test extra, installed by `make setup`).

Its import needs ``scipy.signal.kaiser``, which current SciPy moved to ``scipy.signal.windows``.
"""

from __future__ import annotations

import importlib

import pytest


def parallel_wavegan(submodule: str = ""):
    """Import ``parallel_wavegan[.submodule]`` or skip the test, saying why."""
    try:
        import scipy.signal
        import scipy.signal.windows

        if not hasattr(scipy.signal, "kaiser"):
            scipy.signal.kaiser = scipy.signal.windows.kaiser
        return importlib.import_module("parallel_wavegan" + (f".{submodule}" if submodule else ""))
    except ImportError as error:
        pytest.skip(
            f"parallel-wavegan 0.6.1 is not installed ({error}); "
            "pip install --no-deps --no-build-isolation parallel-wavegan==0.6.1 h5py"
        )
