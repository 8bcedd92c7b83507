"""Preparing the api's shared metrics directory before its server processes start.

prometheus-client chooses where samples live (process memory or files in
``PROMETHEUS_MULTIPROC_DIR``) when it is first imported, and granian forks its
workers from the ``serve`` process. So the variable must be set in that process
before anything imports prometheus-client; this module does not import it.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_dir(path: Path) -> Path:
    """Empty ``path`` and point ``PROMETHEUS_MULTIPROC_DIR`` at it; return the path.

    Call it in a process before it imports ``prometheus_client``. Samples left
    by a previous run would otherwise be added to this run's. The ``serve``
    command does the same itself when the variable is unset.
    """
    if "prometheus_client" in sys.modules:
        raise RuntimeError(
            "prometheus_client is already imported; set up the metrics directory before "
            "importing the app, or set PROMETHEUS_MULTIPROC_DIR in the environment."
        )
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(path)
    return path
