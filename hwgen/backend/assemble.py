"""The streaming top level: layers chained behind a valid/ready interface."""

from __future__ import annotations

import os
from collections.abc import Callable

from amaranth.back import rtlil, verilog
from amaranth.hdl import Cat, ClockSignal, Instance, Module, Mux, ResetSignal, Signal, Value, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from hwgen.backend.argmax import ArgmaxTree
from hwgen.backend.mac import Serializer, mac_layer
from hwgen.backend.parallel_graph import AdderGraphPipeline
from hwgen.backend.requant import Requantizer, SharedRequantizer
from hwgen.backend.serial_layer import SerialDenseLayer
from hwgen.backend.window_buffer import FrameCollector, LanePoolTree, PoolTree, WindowBuffer
from hwgen.plan.dense import INPUT_REGISTER_LATENCY, LayerPlan, NetworkPlan
from hwgen.plan.frames import (
    ArgmaxStage,
    CollectStage,
    DenseStage,
    FramePlan,
    LanePoolStage,
    MacStage,
    SerializeStage,
    Stage,
    WindowStage,
)

__all__ = ["MAX_VALUE_BITS", "TOP_NAME", "StreamingFrameNetwork", "StreamingNetwork", "generate_verilog", "too_wide"]

TOP_NAME = "twn_top"

#: The widest value Amaranth's netlist holds: it numbers a value's bits with 16 bits
#: (``amaranth.hdl._nir.Net``), and a wider one fails an assertion deep inside the conversion.
MAX_VALUE_BITS = (1 << 16) - 1


class StreamingNetwork(wiring.Component):
    """A whole network: one input vector in, one output vector out, per handshake.

    The datapath is a free-running pipeline (no clock enables fan out to it);
    a shift register of valid bits tracks which stages hold data. Results
    land in an output FIFO, and the input is accepted only while the FIFO has
    a free entry for every result in flight (credit counting), so
    backpressure never drops or duplicates a vector and ``x.ready`` is a
    registered function of state, with no combinational path from
    ``y.ready``. Inputs are paced at one per ``plan.initiation_interval``
    cycles (layers scheduled digit-serial need that many); the latency is
    ``plan.latency`` cycles from the input to the output handshake.

    Members
    -------
    x : In(stream.Signature(ArrayLayout(signed(in_bits), n_in)))
        Input vector; element ``j`` is ``x__payload[j*in_bits +: in_bits]``.
    y : Out(stream.Signature(ArrayLayout(signed(out_bits), n_out)))
        Output codes; element ``i`` is ``y__payload[i*out_bits +: out_bits]``.
    """

    def __init__(self, plan: NetworkPlan) -> None:
        self._plan = plan
        n_in = plan.network.in_features
        n_out = plan.layers[-1].layer.out_features
        super().__init__(
            {
                "x": In(stream.Signature(data.ArrayLayout(signed(plan.in_bits), n_in))),
                "y": Out(stream.Signature(data.ArrayLayout(signed(plan.out_bits), n_out))),
            }
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        plan = self._plan
        depth = plan.fifo_depth

        m.submodules.out_fifo = fifo = SyncFIFOBuffered(width=len(self.y.payload.as_value()), depth=depth)
        in_flight = Signal(range(depth + 1))
        ii = plan.initiation_interval
        if ii > 1:
            # Pace the input: one vector per II cycles, what the schedule assumed.
            cooldown = Signal(range(ii), name="ii_cooldown")
            m.d.comb += self.x.ready.eq((in_flight < depth) & ~cooldown.any())
        else:
            m.d.comb += self.x.ready.eq(in_flight < depth)
        accept = self.x.valid & self.x.ready
        if ii > 1:
            with m.If(accept):
                m.d.sync += cooldown.eq(ii - 1)
            with m.Elif(cooldown != 0):
                m.d.sync += cooldown.eq(cooldown - 1)
        deliver = self.y.valid & self.y.ready
        m.d.sync += in_flight.eq(in_flight + accept - deliver)

        x_reg = Signal.like(self.x.payload, reset_less=True, name="x_reg")
        m.d.sync += x_reg.eq(self.x.payload)
        valid = Signal(plan.pipeline_latency, name="stage_valid")
        m.d.sync += valid.eq(Cat(accept, valid[:-1]))

        current = x_reg
        offset = INPUT_REGISTER_LATENCY  # cycles from the accept to this layer's input
        for k, lp in enumerate(plan.layers):
            current = _linear(m, lp, current, valid[offset - 1], f"layer{k}")
            offset += lp.latency
        if plan.argmax_levels:
            m.submodules.argmax = tree = ArgmaxTree(plan.layers[-1].layer.out_features, plan.layers[-1].out_bits)
            m.d.comb += tree.x.eq(current)
            current = tree.y

        m.d.comb += [
            fifo.w_data.eq(Value.cast(current)),
            fifo.w_en.eq(valid[-1]),
            self.y.payload.eq(fifo.r_data),
            self.y.valid.eq(fifo.r_rdy),
            fifo.r_en.eq(self.y.ready),
        ]
        return m


def _delayed(m: Module, strobe: Value, cycles: int, name: str) -> Value:
    """``strobe`` delayed by ``cycles`` (reset registers: no spurious strobe leaves reset)."""
    for k in range(cycles):
        reg = Signal(name=f"{name}_d{k + 1}")
        m.d.sync += reg.eq(strobe)
        strobe = reg
    return strobe


def _linear(m: Module, lp: LayerPlan, x: Value, start: Value, name: str) -> Value:
    """A layer's adder graph (parallel, or serial starting with ``start``) and requantiser;
    returns the output codes, ``lp.latency`` cycles after ``x``."""
    graph: AdderGraphPipeline | SerialDenseLayer
    if lp.serial:
        graph = SerialDenseLayer(lp)
        m.d.comb += graph.start.eq(start)
    else:
        graph = AdderGraphPipeline(lp)
    requant: Requantizer | SharedRequantizer
    if lp.shared_units:
        requant = SharedRequantizer(lp, graph.out_bits)
        m.d.comb += requant.strobe.eq(_delayed(m, start, lp.adder_latency, f"{name}_outputs"))
    else:
        requant = Requantizer(lp, graph.out_bits)
    m.submodules[f"{name}_adders"] = graph
    m.submodules[f"{name}_requant"] = requant
    m.d.comb += [graph.x.eq(x), requant.x.eq(graph.y)]
    return requant.y


def stage_width(stage: Stage) -> int:
    """Bits of a frame stage's output data."""
    if isinstance(stage, WindowStage):
        if stage.lp is not None:
            return stage.lp.layer.out_features * stage.lp.out_bits
        return stage.out_channels * stage.in_bits
    if isinstance(stage, LanePoolStage):
        return stage.layer.out_shape[0] * stage.bits
    if isinstance(stage, SerializeStage):
        return stage.bits * stage.lanes
    if isinstance(stage, MacStage):
        return stage.out_bits * stage.out_lanes
    if isinstance(stage, CollectStage):
        return stage.channels * stage.positions * stage.bits
    if isinstance(stage, ArgmaxStage):
        return stage.out_bits
    return stage.lp.layer.out_features * stage.lp.out_bits


def too_wide(plan: NetworkPlan | FramePlan) -> str | None:
    """Why the Verilog of ``plan`` cannot be generated (None: it can): a frame stage whose
    output would be one value wider than :data:`MAX_VALUE_BITS`, such as the collected vector
    of a large flatten before a dense adder graph (4,096 features of 16 bits are 65,536)."""
    if not isinstance(plan, FramePlan):
        return None
    for k, stage in enumerate(plan.stages):
        width = stage_width(stage)
        if width <= MAX_VALUE_BITS:
            continue
        if isinstance(stage, CollectStage):
            elements = stage.channels * stage.positions
            what = f"the frame collector ({elements:,} elements of {stage.bits} bits"
            after = plan.stages[k + 1] if k + 1 < len(plan.stages) else None
            what += f", the input of dense layer {after.lp.layer.name!r})" if isinstance(after, DenseStage) else ")"
            fix = (
                f"elements of at most {MAX_VALUE_BITS // elements} bits there (--act-bits "
                f"{MAX_VALUE_BITS // elements}, or --layer-act-bits on the layer before, where a ReLU's B value "
                "bits make (B + 1)-bit elements), or fewer features into that layer"
                if MAX_VALUE_BITS // elements >= 2
                else "fewer features into that layer"
            )
        else:
            what, fix = f"a {type(stage).__name__} ({width:,} bits)", "fewer channels or narrower activations"
        return (
            f"stage {k}, {what}, would be one {width:,}-bit value; the Verilog generator (Amaranth) "
            f"takes at most {MAX_VALUE_BITS:,} bits per value: {fix}"
        )
    return None


class FrameStage(wiring.Component):
    """One stage of a frame network behind a valid strobe: window and convolution
    (or pool), lane pool, serializer, MAC layer, collector or dense layer.

    Members
    -------
    i_valid, i_data : In(1), In(in_width)
    o_valid, o_data : Out(1), Out(stage_width(stage))
    """

    def __init__(self, stage: Stage, in_width: int) -> None:
        self._stage = stage
        super().__init__(
            {"i_valid": In(1), "i_data": In(in_width), "o_valid": Out(1), "o_data": Out(stage_width(stage))}
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        stage = self._stage
        current: Value = self.i_data
        valid: Value = self.i_valid
        if isinstance(stage, WindowStage):
            buf = WindowBuffer(stage)
            m.submodules.window = buf
            m.d.comb += [buf.i_valid.eq(valid), buf.i_data.eq(current)]
            if stage.lp is not None:
                current = _linear(m, stage.lp, buf.o_data, buf.o_valid, "conv")
                valid = _delayed(m, buf.o_valid, stage.lp.latency, "conv_valid")
            else:
                m.submodules.pool = tree = PoolTree(stage)
                m.d.comb += tree.i_data.eq(buf.o_data)
                current = tree.o_data
                valid = _delayed(m, buf.o_valid, stage.pool_levels, "pool_valid")
        elif isinstance(stage, LanePoolStage):
            m.submodules.lanepool = lane_pool = LanePoolTree(stage)
            m.d.comb += lane_pool.i_data.eq(current)
            current = lane_pool.o_data
            valid = _delayed(m, valid, stage.levels, "pool_valid")
        elif isinstance(stage, SerializeStage):
            m.submodules.serialize = ser = Serializer(stage)
            m.d.comb += [ser.i_valid.eq(valid), ser.i_data.eq(current)]
            current, valid = ser.o_data, ser.o_valid
        elif isinstance(stage, MacStage):
            m.submodules.mac = mac = mac_layer(stage)
            m.d.comb += [mac.i_valid.eq(valid), mac.i_data.eq(current)]
            current, valid = mac.o_data, mac.o_valid
        elif isinstance(stage, ArgmaxStage):
            m.submodules.argmax = tree = ArgmaxTree(stage.n, stage.bits)
            m.d.comb += tree.x.eq(current)
            current, valid = tree.y, _delayed(m, valid, stage.latency, "argmax_valid")
        elif isinstance(stage, CollectStage):
            m.submodules.collect = col = FrameCollector(stage)
            m.d.comb += [col.i_valid.eq(valid), col.i_data.eq(current)]
            current, valid = col.o_data, col.o_valid
        else:
            assert isinstance(stage, DenseStage)
            current = _linear(m, stage.lp, current, valid, "dense")
            valid = _delayed(m, valid, stage.lp.latency, "dense_valid")
        m.d.comb += [self.o_data.eq(Value.cast(current)), self.o_valid.eq(valid)]
        return m


class StreamingFrameNetwork(wiring.Component):
    """A network with convolution or pooling layers: a frame of positions in, one vector out.

    The input takes one position (every channel) per handshake, raster
    order, frame after frame; ``x.ready`` paces beats at most one per
    ``plan.beat_spacing`` cycles and admits a frame's first beat only while
    the output FIFO has a free entry for every frame in flight (credits), so
    output backpressure never loses or duplicates a result. Inside, every
    stage is a free-running pipeline behind a valid strobe (see
    :mod:`hwgen.plan.frames`); the latency is ``plan.latency`` cycles from a
    frame's first input handshake to its output handshake, and a frame
    every ``plan.initiation_interval`` cycles at full rate.

    Members
    -------
    x : In(stream.Signature(ArrayLayout(signed(in_bits), channels)))
        One input position; channel ``c`` is ``x__payload[c*in_bits +: in_bits]``.
    y : Out(stream.Signature(ArrayLayout(signed(out_bits), n_out)))
        A frame's result (flattened channels-first when the last layer is a convolution or pool).
    """

    def __init__(self, plan: FramePlan, separate: bool = False) -> None:
        self._plan = plan
        self._separate = separate
        super().__init__(
            {
                "x": In(stream.Signature(data.ArrayLayout(signed(plan.in_bits), plan.beat_elements))),
                "y": Out(stream.Signature(data.ArrayLayout(signed(plan.out_bits), plan.out_elements))),
            }
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        plan = self._plan
        depth = plan.fifo_depth
        m.submodules.out_fifo = fifo = SyncFIFOBuffered(width=len(self.y.payload.as_value()), depth=depth)

        # Input pacing and frame credits.
        beat = Signal(range(max(plan.beats, 2)), name="beat")
        in_flight = Signal(range(depth + 1), name="frames_in_flight")
        first = ~beat.any()
        ready = (beat != 0) | (in_flight < depth)
        if plan.beat_spacing > 1:
            cooldown = Signal(range(plan.beat_spacing), name="beat_cooldown")
            ready = ready & ~cooldown.any()
        m.d.comb += self.x.ready.eq(ready)
        accept = self.x.valid & self.x.ready
        if plan.beat_spacing > 1:
            with m.If(accept):
                m.d.sync += cooldown.eq(plan.beat_spacing - 1)
            with m.Elif(cooldown != 0):
                m.d.sync += cooldown.eq(cooldown - 1)
        with m.If(accept):
            m.d.sync += beat.eq(Mux(beat == plan.beats - 1, 0, beat + 1))
        deliver = self.y.valid & self.y.ready
        m.d.sync += in_flight.eq(in_flight + (accept & first) - deliver)

        x_reg = Signal.like(self.x.payload, reset_less=True, name="x_reg")
        x_valid = Signal(name="x_valid")
        m.d.sync += [x_reg.eq(self.x.payload), x_valid.eq(accept)]

        current: Value = x_reg.as_value()
        valid: Value = x_valid
        for k, stage in enumerate(plan.stages):
            name = f"stage{k}"
            if self._separate:
                # A black box: its Verilog is generated on its own (see generate_verilog).
                out_valid = Signal(name=f"{name}_valid")
                out_data = Signal(stage_width(stage), name=f"{name}_data")
                m.submodules[name] = Instance(
                    f"{TOP_NAME}_{name}",
                    i_clk=ClockSignal(),
                    i_rst=ResetSignal(),
                    i_i_valid=valid,
                    i_i_data=current,
                    o_o_valid=out_valid,
                    o_o_data=out_data,
                )
                current, valid = out_data, out_valid
            else:
                unit = FrameStage(stage, len(current))
                m.submodules[name] = unit
                m.d.comb += [unit.i_valid.eq(valid), unit.i_data.eq(current)]
                current, valid = unit.o_data, unit.o_valid

        m.d.comb += [
            fifo.w_data.eq(current),
            fifo.w_en.eq(valid),
            self.y.payload.eq(fifo.r_data),
            self.y.valid.eq(fifo.r_rdy),
            fifo.r_en.eq(self.y.ready),
        ]
        return m


#: RTLIL text per Yosys run when a frame network is written as Verilog. Each run costs about
#: 0.3 s to start, more than a small stage takes to convert, so consecutive modules share runs
#: up to this size; large designs still get several runs, side by side. The grouping depends
#: only on the design, so the text does not depend on the number of workers.
VERILOG_RUN_BYTES = 4_000_000


def _stage_rtlil(job: tuple[int, Stage, int, str]) -> tuple[int, str]:
    k, stage, in_width, name = job
    return k, rtlil.convert(FrameStage(stage, in_width), name=name, emit_src=False)


def _rtlil_to_verilog(text: str) -> str:
    # Amaranth's own RTLIL-to-Verilog step (the script verilog.convert runs), on several
    # modules at once. amaranth is pinned to 0.5.x, where it has this name.
    return str(verilog._convert_rtlil_text(text))


def _yosys_runs(texts: list[str]) -> list[str]:
    """Consecutive RTLIL texts joined into runs of up to VERILOG_RUN_BYTES (at least one text each)."""
    runs: list[list[str]] = []
    size = 0
    for text in texts:
        if not runs or size + len(text) > VERILOG_RUN_BYTES:
            runs.append([])
            size = 0
        runs[-1].append(text)
        size += len(text)
    return ["".join(run) for run in runs]


def generate_verilog(
    plan: NetworkPlan | FramePlan,
    jobs: int | None = None,
    on_module: Callable[[int, int], None] | None = None,
) -> str:
    """Verilog for the network, top module ``twn_top`` (deterministic text).

    A frame network's stages are elaborated one by one (in ``jobs`` worker
    processes, default: the machine's cores) as modules ``twn_top_stageK``
    that the top level instantiates, then written as Verilog by Yosys in
    runs of several modules (side by side); the text is the same however
    many workers there are. ``on_module(done, total)`` is called (in this
    process) as each module is elaborated, for progress displays.
    """

    def done(count: int, total: int) -> None:
        if on_module is not None:
            on_module(count, total)

    # emit_src=False: no source paths in the output, so the text does not
    # depend on where twngen is installed.
    if not isinstance(plan, FramePlan):
        return verilog.convert(StreamingNetwork(plan), name=TOP_NAME, emit_src=False)
    widths = [plan.beat_elements * plan.in_bits] + [stage_width(s) for s in plan.stages]
    work = [(k, stage, widths[k], f"{TOP_NAME}_stage{k}") for k, stage in enumerate(plan.stages)]
    total = len(work) + 1  # and the top level
    texts: dict[int, str] = {}
    workers = min(len(work), jobs or os.cpu_count() or 1)
    if workers > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for k, text in pool.imap_unordered(_stage_rtlil, work, chunksize=1):
                texts[k] = text
                done(len(texts), total)
    else:
        for job in work:
            k, text = _stage_rtlil(job)
            texts[k] = text
            done(len(texts), total)
    top = rtlil.convert(StreamingFrameNetwork(plan, separate=True), name=TOP_NAME, emit_src=False)
    done(total, total)
    runs = _yosys_runs([top] + [texts[k] for k in range(len(work))])
    if workers > 1 and len(runs) > 1:
        from concurrent.futures import ThreadPoolExecutor

        # Each run is a Yosys process: threads suffice to keep them side by side.
        with ThreadPoolExecutor(workers) as threads:
            return "".join(threads.map(_rtlil_to_verilog, runs))
    return "".join(_rtlil_to_verilog(run) for run in runs)
