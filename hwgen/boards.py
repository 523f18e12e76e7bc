"""Board presets: data files in ``boards/`` (TOML), one per board."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from hwgen.errors import TwnError
from hwgen.paths import BOARDS_DIR

__all__ = ["Board", "list_boards", "load_board"]


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    vendor: str
    family: str
    device: str
    package: str
    speed: str
    part: str
    clock_mhz: float
    lut: int
    ff: int
    bram36: int
    dsp: int

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "part": self.part,
            "clock_mhz": self.clock_mhz,
            "resources": {"lut": self.lut, "ff": self.ff, "bram": self.bram36, "dsp": self.dsp},
        }


def _read(path: Path) -> Board:
    try:
        d = tomllib.loads(path.read_text())
        r = d["resources"]
        return Board(
            name=str(d["name"]),
            description=str(d["description"]),
            vendor=str(d["vendor"]),
            family=str(d["family"]),
            device=str(d["device"]),
            package=str(d["package"]),
            speed=str(d["speed"]),
            part=str(d["part"]),
            clock_mhz=float(d["clock_mhz"]),
            lut=int(r["lut"]),
            ff=int(r["ff"]),
            bram36=int(r["bram36"]),
            dsp=int(r["dsp"]),
        )
    except (KeyError, ValueError, tomllib.TOMLDecodeError) as exc:
        raise TwnError(f"board preset {path} is malformed: {exc}") from None


def list_boards(directory: Path = BOARDS_DIR) -> list[Board]:
    return [_read(p) for p in sorted(directory.glob("*.toml"))]


def load_board(name: str, directory: Path = BOARDS_DIR) -> Board:
    path = directory / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(b.name for b in list_boards(directory)) or "none"
        raise TwnError(f"unknown board {name!r}; known boards: {known} (see `twngen boards`)")
    return _read(path)
