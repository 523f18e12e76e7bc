"""Where twngen's data folders are (board presets, RTL templates, cocotb testbenches), and
file fingerprints.

The folders live at the repository's top level (``boards/``, ``rtl_templates/``,
``sim/``); a wheel carries them inside the package as ``hwgen/_data/<folder>``
(``pyproject.toml`` maps them there at build time). Installed from a wheel the
package's own copy is used; in a source checkout or an editable install, where
``hwgen/_data`` does not exist, the folders beside the package.
"""

from __future__ import annotations

import hashlib
import os
from importlib.resources import files
from pathlib import Path

__all__ = ["BOARDS_DIR", "DATA_ROOT", "RTL_TEMPLATES_DIR", "SIM_DIR", "file_sha256"]


def _data_root() -> Path:
    # Real directories, not Traversables: cocotb puts SIM_DIR on the simulator's Python
    # path and the templates are read by path. pip installs wheels unpacked, so the
    # package is always on the file system.
    package = Path(str(files("hwgen")))
    installed = package / "_data"
    return installed if installed.is_dir() else package.parent


DATA_ROOT = _data_root()
BOARDS_DIR = Path(os.environ.get("TWNGEN_BOARDS", DATA_ROOT / "boards"))
SIM_DIR = DATA_ROOT / "sim"
RTL_TEMPLATES_DIR = DATA_ROOT / "rtl_templates"


def file_sha256(path: Path) -> str:
    """Content fingerprint recorded in reports (models and calibration batches)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
