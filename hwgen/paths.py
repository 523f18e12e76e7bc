"""Where the repository's data folders are (boards/, sim/, rtl_templates/)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["BOARDS_DIR", "REPO_ROOT", "RTL_TEMPLATES_DIR", "SIM_DIR"]

REPO_ROOT = Path(__file__).resolve().parent.parent
BOARDS_DIR = Path(os.environ.get("TWNGEN_BOARDS", REPO_ROOT / "boards"))
SIM_DIR = REPO_ROOT / "sim"
RTL_TEMPLATES_DIR = REPO_ROOT / "rtl_templates"
