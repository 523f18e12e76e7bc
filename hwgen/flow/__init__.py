"""After the Verilog: board presets, vendor project files, Yosys synthesis counts and
open-toolchain place and route. Imports the plan and IR only through what the build
hands it; nothing in the pipeline before the backend imports this package."""
