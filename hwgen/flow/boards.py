"""Board presets: data files in ``boards/`` (TOML), one per board.

A preset for a board that amaranth-boards defines names its platform class
(``amaranth_board = "amaranth_boards.icebreaker:ICEBreakerPlatform"``); the
oscillator's pin and frequency (``clock_mhz``), the first LED's pin and the ECP5
I/O standard then come from that class, and the preset gives the rest (capacity,
nextpnr's spellings). A value the preset states itself wins over the class's.
"""

from __future__ import annotations

import importlib
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwgen.errors import TwnError
from hwgen.paths import BOARDS_DIR

__all__ = ["Board", "PnrTarget", "amaranth_board_pins", "list_boards", "load_board"]


@dataclass(frozen=True)
class PnrTarget:
    """How the open toolchain (:mod:`hwgen.flow.pnr`) places and routes for a board.

    ``arch`` is ``ice40`` or ``ecp5`` (the Yosys ``synth_*`` script and the
    nextpnr binary); ``device``, ``package`` and ``speed`` are nextpnr's
    spellings; ``clock_pin`` takes the board oscillator and ``output_pin`` the
    one output of the place-and-route top (an LED); ``io_type`` is the ECP5
    I/O standard; ``use_dsp`` maps multiplies to the device's DSP blocks.
    """

    arch: str
    device: str
    package: str
    clock_pin: str
    output_pin: str
    speed: str = ""
    io_type: str = ""
    use_dsp: bool = True


@dataclass(frozen=True)
class Board:
    """A board preset. ``lut``, ``ff``, ``bram36`` and ``dsp`` are the capacity in the
    first-order estimate's units; ``lut_inputs``, ``bram_blocks``, ``bram_kbits`` and
    ``dsp_name`` describe the device's own blocks; ``pnr`` is set for boards the open
    toolchain builds bitstreams for (Vivado project files are written for Xilinx boards).
    """

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
    lut_inputs: int = 6
    bram_blocks: int = 0
    bram_kbits: int = 36
    dsp_name: str = "DSP"
    pnr: PnrTarget | None = None
    #: ``module:Class`` of the amaranth-boards platform the pins and clock came from, or "".
    amaranth_board: str = ""

    @property
    def flow(self) -> str:
        """The back-end flow twngen writes files for: ``vivado`` or ``nextpnr-<arch>``."""
        if self.vendor == "xilinx":
            return "vivado"
        return f"nextpnr-{self.pnr.arch}" if self.pnr is not None else "none"

    @property
    def checked_resources(self) -> tuple[str, ...]:
        """The estimate's resources a build checks against the board (multiplies mapped to
        LUTs leave the DSPs unchecked)."""
        if self.pnr is not None and not self.pnr.use_dsp:
            return ("lut", "ff", "bram")
        return ("lut", "ff", "bram", "dsp")

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "part": self.part,
            "clock_mhz": self.clock_mhz,
            "resources": {"lut": self.lut, "ff": self.ff, "bram": self.bram36, "dsp": self.dsp},
        }


def _one_pin(resource: Any) -> str:
    pins = resource.ios[0] if len(resource.ios) == 1 else None
    if pins is None or getattr(pins, "conn", None) is not None or len(getattr(pins, "names", ())) != 1:
        raise ValueError(f"its {resource.name} {resource.number} is not one pin of the device")
    return str(pins.names[0])


def amaranth_board_pins(spec: str, device: str) -> dict[str, Any]:
    """``clock_mhz``, ``clock_pin``, ``output_pin`` and ``io_type`` of the amaranth-boards
    platform ``spec`` (``amaranth_boards.<module>:<Class>``) for a board with ``device``.

    The pins are the default clock's and ``led`` 0's; ``io_type`` is their ``IO_TYPE``
    attribute (ECP5), "" where they have none (iCE40 takes no I/O standard here), and
    None where the two differ (the preset must then give one).
    """
    module_name, _, class_name = spec.partition(":")
    if module_name.split(".")[0] != "amaranth_boards" or not class_name:
        raise ValueError(f"amaranth_board must be 'amaranth_boards.<module>:<Class>', not {spec!r}")
    # Imported here, not at the top: amaranth-boards pulls in Amaranth, which only the
    # presets that name a platform need.
    from amaranth.build import ResourceError

    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"amaranth_board {spec!r}: cannot import {module_name} ({exc})") from None
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type) or not hasattr(cls, "default_clk"):
        raise ValueError(f"amaranth_board {spec!r}: {module_name} has no platform class {class_name!r}")
    try:
        platform = cls()
        if str(platform.device) != device:
            raise ValueError(f"it is a {platform.device} board, but the preset's device is {device}")
        if platform.default_clk is None:
            raise ValueError("it names no default clock")
        clock = platform.lookup(platform.default_clk)
        led = platform.lookup("led", 0)
        frequency = float(platform.default_clk_frequency)
        clock_pin, output_pin = _one_pin(clock), _one_pin(led)
    # A platform class is third-party code: whatever it raises becomes the preset's error.
    except (ResourceError, AttributeError, TypeError, ValueError) as exc:
        raise ValueError(f"amaranth_board {spec!r}: {exc}") from None
    io_types = {str(r.attrs.get("IO_TYPE", "")) for r in (clock, led)}
    return {
        "clock_mhz": frequency / 1e6,
        "clock_pin": clock_pin,
        "output_pin": output_pin,
        "io_type": io_types.pop() if len(io_types) == 1 else None,
    }


def _read(path: Path) -> Board:
    try:
        d = tomllib.loads(path.read_text())
        r = d["resources"]
        native = d.get("device_resources", {})
        spec = str(d.get("amaranth_board", ""))
        given = amaranth_board_pins(spec, str(d["device"])) if spec else {}
        pnr = None
        if "pnr" in d:
            t = {**given, **d["pnr"]}
            if t.get("io_type", "") is None:
                raise ValueError(f"amaranth_board {spec!r}: its clock and LED I/O types differ; set pnr.io_type")
            pnr = PnrTarget(
                arch=str(t["arch"]),
                device=str(t["device"]),
                package=str(t["package"]),
                clock_pin=str(t["clock_pin"]),
                output_pin=str(t["output_pin"]),
                speed=str(t.get("speed", "")),
                io_type=str(t.get("io_type", "")),
                use_dsp=bool(t.get("use_dsp", True)),
            )
            if pnr.arch not in ("ice40", "ecp5"):
                raise ValueError(f"pnr.arch must be ice40 or ecp5, not {pnr.arch!r}")
        return Board(
            name=str(d["name"]),
            description=str(d["description"]),
            vendor=str(d["vendor"]),
            family=str(d["family"]),
            device=str(d["device"]),
            package=str(d["package"]),
            speed=str(d["speed"]),
            part=str(d["part"]),
            clock_mhz=float(d["clock_mhz"] if "clock_mhz" in d else given["clock_mhz"]),
            lut=int(r["lut"]),
            ff=int(r["ff"]),
            bram36=int(r["bram36"]),
            dsp=int(r["dsp"]),
            lut_inputs=int(native.get("lut_inputs", 6)),
            bram_blocks=int(native.get("bram_blocks", r["bram36"])),
            bram_kbits=int(native.get("bram_kbits", 36)),
            dsp_name=str(native.get("dsp_name", "DSP")),
            pnr=pnr,
            amaranth_board=spec,
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
