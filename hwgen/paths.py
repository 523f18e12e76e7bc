"""Where the repository's data folders are (boards/, sim/, rtl_templates/), and file fingerprints."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["BOARDS_DIR", "REPO_ROOT", "RTL_TEMPLATES_DIR", "SIM_DIR", "file_sha256"]

REPO_ROOT = Path(__file__).resolve().parent.parent
BOARDS_DIR = Path(os.environ.get("TWNGEN_BOARDS", REPO_ROOT / "boards"))
SIM_DIR = REPO_ROOT / "sim"
RTL_TEMPLATES_DIR = REPO_ROOT / "rtl_templates"


def file_sha256(path: Path) -> str:
    """Content fingerprint recorded in reports (models and calibration batches)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
