"""Fixtures shared by the tests that run the project's command lines in subprocesses."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
"""Root of the checkout (holds the ``theory`` and ``mcsim`` packages)."""


def _checkout_env(**extra) -> dict:
    """Copy of ``os.environ`` with the checkout first on ``PYTHONPATH``.

    Parameters
    ----------
    **extra
        Further variables to set; values are converted with ``str``.

    Returns
    -------
    dict of str -> str
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture(scope="session")
def subprocess_env():
    """Factory ``subprocess_env(**extra) -> dict`` of environments for ``python -m theory/mcsim`` subprocesses.

    The environment is the current one with the checkout first on ``PYTHONPATH``
    (so subprocesses import this checkout's packages) plus ``extra`` (values
    converted with ``str``, e.g. ``NUMBA_CACHE_DIR``).
    """
    return _checkout_env


@pytest.fixture(scope="session")
def mpiexec() -> str:
    """Path of ``mpiexec``: the one next to this interpreter (venv's mpich), else the first on ``PATH``.

    Skips the requesting test when there is none.
    """
    local = Path(sys.executable).parent / "mpiexec"
    exe = str(local) if local.exists() else shutil.which("mpiexec")
    if exe is None:
        pytest.skip("mpiexec not found")
    return exe
