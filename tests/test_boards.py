"""hwgen.flow.boards: presets from TOML alone, and presets whose oscillator and LED come
from an amaranth-boards platform class (``amaranth_board``)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib

import pytest
from amaranth.build import Attrs, Clock, Pins, Resource
from amaranth.vendor import LatticeECP5Platform
from conftest import REPO

from hwgen.errors import TwnError
from hwgen.flow.boards import load_board

BOARDS = REPO / "boards"


@pytest.mark.parametrize(
    "name, spec, clock_mhz, clock_pin, output_pin, io_type",
    [
        # The values the presets stated by hand before they named the platform class.
        ("icebreaker", "amaranth_boards.icebreaker:ICEBreakerPlatform", 12.0, "35", "11", ""),
        ("ulx3s-85f", "amaranth_boards.ulx3s:ULX3S_85F_Platform", 25.0, "G2", "B2", "LVCMOS33"),
    ],
)
def test_amaranth_boards_gives_the_oscillator_and_led(name, spec, clock_mhz, clock_pin, output_pin, io_type):
    preset = tomllib.loads((BOARDS / f"{name}.toml").read_text())
    # The preset does not state them itself: they come from the class.
    assert preset["amaranth_board"] == spec and "clock_mhz" not in preset
    assert not {"clock_pin", "output_pin", "io_type"} & preset["pnr"].keys()
    board = load_board(name)
    assert board.amaranth_board == spec
    assert (board.clock_mhz, board.pnr.clock_pin, board.pnr.output_pin, board.pnr.io_type) == (
        clock_mhz,
        clock_pin,
        output_pin,
        io_type,
    )


def test_a_toml_only_board_is_read_as_written_without_amaranth_boards():
    # A fresh interpreter: the Xilinx presets (which amaranth-boards does not define) are the
    # TOML's values, and reading them imports nothing from amaranth-boards.
    probe = (
        "import sys; from hwgen.flow.boards import load_board; b = load_board('zcu111'); "
        "print(b.clock_mhz, b.part, b.pnr, repr(b.amaranth_board), 'amaranth_boards' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["250.0", "xczu28dr-ffvg1517-2-e", "None", "''", "False"]


def _preset(tmp_path, source: str, drop: tuple[str, ...] = (), **changes: str) -> None:
    """boards/<source>.toml copied to tmp_path/custom.toml with top-level and [pnr] lines changed."""
    lines = []
    for line in (BOARDS / f"{source}.toml").read_text().splitlines():
        key = line.split("=")[0].strip()
        if key in drop:
            continue
        lines.append(f'{key} = "{changes.pop(key)}"' if key in changes else line)
        if line == "[pnr]":
            lines += [f'{k} = "{changes.pop(k)}"' for k in list(changes) if k in ("clock_pin", "output_pin", "io_type")]
    lines.insert(0, "".join(f'{k} = "{v}"\n' for k, v in changes.items()))
    (tmp_path / "custom.toml").write_text("\n".join(lines) + "\n")


def test_a_lattice_board_written_by_hand_keeps_its_pins(tmp_path):
    _preset(tmp_path, "icebreaker", drop=("amaranth_board",), clock_pin="36", output_pin="37")
    (tmp_path / "custom.toml").write_text("clock_mhz = 12.0\n" + (tmp_path / "custom.toml").read_text())
    board = load_board("custom", tmp_path)
    assert (board.amaranth_board, board.clock_mhz, board.pnr.clock_pin, board.pnr.output_pin) == ("", 12.0, "36", "37")


def test_the_preset_wins_over_the_platform_class(tmp_path):
    _preset(tmp_path, "icebreaker", output_pin="37")  # the green LED instead of the red one
    board = load_board("custom", tmp_path)
    assert (board.pnr.clock_pin, board.pnr.output_pin, board.clock_mhz) == ("35", "37", 12.0)


@pytest.mark.parametrize(
    "spec, device, message",
    [
        ("amaranth_boards.icebreaker:NoSuchPlatform", None, "amaranth_boards.icebreaker has no platform class"),
        ("amaranth_boards.icebreaker:LEDResources", None, "has no platform class 'LEDResources'"),
        ("amaranth_boards.no_such_board:Platform", None, "cannot import amaranth_boards.no_such_board"),
        ("amaranth_boards.icebreaker", None, "must be 'amaranth_boards.<module>:<Class>'"),
        ("os:system", None, "must be 'amaranth_boards.<module>:<Class>'"),
        ("amaranth_boards.ulx3s:ULX3S_45F_Platform", "LFE5U-85F", "is a LFE5U-45F board, but the preset's device"),
        ("amaranth_boards.sk_xc6slx9:SK_XC6SLX9Platform", "xc6slx9", "led#0 does not exist"),
        ("amaranth_boards.tinyfpga_ax2:TinyFPGAAX2Platform", "LCMXO2-1200HC", "names no default clock"),
    ],
)
def test_a_bad_platform_class_is_one_clear_error(tmp_path, spec, device, message):
    _preset(tmp_path, "icebreaker", amaranth_board=spec, **({"device": device} if device else {}))
    with pytest.raises(TwnError, match=r"board preset .*custom\.toml is malformed: ") as info:
        load_board("custom", tmp_path)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_cli_names_the_bad_class_in_one_line(tmp_path):
    _preset(tmp_path, "icebreaker", amaranth_board="amaranth_boards.icebreaker:ICEBreakerPlatfrom")
    env = {**os.environ, "TWNGEN_BOARDS": str(tmp_path)}
    cli = "import sys; from hwgen.cli import main; sys.exit(main(sys.argv[1:]))"
    result = subprocess.run([sys.executable, "-c", cli, "boards"], capture_output=True, text=True, env=env)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"twngen: error: board preset {tmp_path / 'custom.toml'} is malformed: amaranth_board "
        "'amaranth_boards.icebreaker:ICEBreakerPlatfrom': amaranth_boards.icebreaker has no platform class "
        "'ICEBreakerPlatfrom'"
    ]


class _MixedIOPlatform(LatticeECP5Platform):
    """An ECP5 board whose oscillator and LED use different I/O standards."""

    device = "LFE5U-85F"
    package = "BG381"
    speed = "6"
    default_clk = "clk"
    resources = [  # noqa: RUF012 (Amaranth's platform idiom)
        Resource("clk", 0, Pins("A1", dir="i"), Clock(50e6), Attrs(IO_TYPE="LVCMOS25")),
        Resource("led", 0, Pins("B1", dir="o"), Attrs(IO_TYPE="LVCMOS33")),
    ]
    connectors = []  # noqa: RUF012


def test_differing_io_types_need_the_preset_to_choose(tmp_path, monkeypatch):
    module = type(sys)("amaranth_boards._twngen_test")
    module.MixedIOPlatform = _MixedIOPlatform
    monkeypatch.setitem(sys.modules, module.__name__, module)
    _preset(tmp_path, "ulx3s-85f", amaranth_board="amaranth_boards._twngen_test:MixedIOPlatform")
    with pytest.raises(TwnError, match=r"clock and LED I/O types differ; set pnr\.io_type"):
        load_board("custom", tmp_path)
    _preset(tmp_path, "ulx3s-85f", amaranth_board="amaranth_boards._twngen_test:MixedIOPlatform", io_type="LVCMOS33")
    board = load_board("custom", tmp_path)
    assert (board.clock_mhz, board.pnr.clock_pin, board.pnr.output_pin, board.pnr.io_type) == (
        50.0,
        "A1",
        "B1",
        "LVCMOS33",
    )
