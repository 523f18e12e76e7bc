"""Incremental activation precision (``--precision incremental``): activations widen as the rate falls.

The published TW-INCRA network kept every layer's adders bit-serial and gave
each layer as many activation bits as its throughput allowed (1, 2, 4, 8, 16
bits down the network): the area of binary activations with most of the
accuracy of 16-bit ones. This pass makes that choice automatically, from the
same budgets the digit-width scheduler uses (:func:`hwgen.passes.schedule.layer_budgets`).

For each convolution or dense layer ``L`` whose output feeds another one,
``C`` (through any pooling), ``L``'s output precision is the widest value of
the ladder (the powers of two between ``min_bits`` and ``max_bits``, and
both ends) whose words ``C`` can add *bit-serially* within its budget: ``W(p)
<= budget`` cycles, with ``W(p)`` ``C``'s word length for ``p``-bit inputs
(or ``min_bits`` when not even that fits). That is the seeds' rule, "bit
serial adders everywhere, precision adjusted to match the throughput"; the
digit-width scheduler then realises ``C`` at the least area for the chosen
precision (parallel, when the words are so narrow that carry-chain adders
cost less than serial ones). A ``C`` with its weights in memory (one element
a cycle at any width) takes ``max_bits``.

A ReLU output of ``p`` bits takes the codes ``0 .. 2**p - 1``; any other
output ``p`` signed bits (at least 2). The last layer keeps the output format
(``--out-bits``), and layers whose activations the model quantises itself
(QONNX, FINN, QDQ) keep the model's. The result is a map from layer name to
bits that :class:`hwgen.passes.quantize.QuantizeActivations` applies
(``layer_act_bits``); the build then quantises again and schedules.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from hwgen.errors import TwnError
from hwgen.estimate import Resources, estimate_parts, total_of
from hwgen.ir import LinearLayer, Network, PoolLayer
from hwgen.passes.schedule import LUT_PER_DSP, choose_layer, layer_budgets
from hwgen.plan import plan_network
from hwgen.plan.bit_serial import serial_word_bits
from hwgen.plan.dense import NetworkPlan
from hwgen.plan.frames import DenseStage, FramePlan, LanePoolStage, MacStage, WindowStage

__all__ = [
    "FF_WEIGHT",
    "LUT_PER_BRAM",
    "PRECISION_MODES",
    "AreaTable",
    "AutoChoice",
    "AutoStep",
    "area_score",
    "auto_ladders",
    "choose_activation_bits",
    "ladder",
    "search_activation_bits",
    "variable_layers",
]

PRECISION_MODES = ("fixed", "incremental", "auto")

#: The search's area figure weighs a flip-flop as half a LUT (a slice has twice as many),
#: a DSP as :data:`hwgen.passes.schedule.LUT_PER_DSP` LUTs and a BRAM36 as the LUTs a
#: device has per BRAM36 (ZCU111: 425,280 / 1,080, about 400).
FF_WEIGHT = 0.5
LUT_PER_BRAM = 400


def ladder(min_bits: int, max_bits: int) -> list[int]:
    """The precisions tried, narrowest first: powers of two in [min_bits, max_bits], and both ends."""
    if not (isinstance(min_bits, int) and isinstance(max_bits, int) and 1 <= min_bits <= max_bits <= 31):
        raise TwnError(
            f"incremental precision needs 1 <= --min-act-bits <= --act-bits <= 31, not {min_bits} and {max_bits}"
        )
    steps = {min_bits, max_bits} | {1 << k for k in range(6) if min_bits <= 1 << k <= max_bits}
    return sorted(steps)


def _codes(relu: bool, bits: int) -> tuple[int, int, int]:
    """(lo, hi, signed width) of ``bits``-bit activations."""
    if relu:
        return 0, (1 << bits) - 1, bits + 1
    bits = max(2, bits)
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1, bits


def _precision_for(
    network: Network, producer: LinearLayer, consumer: LinearLayer, budget: int, steps: list[int]
) -> int:
    """The widest step whose words ``consumer`` can add bit-serially within its budget."""
    assert producer.requant is not None and consumer.adder_graph is not None
    relu = producer.requant.relu
    _, realisation = choose_layer(network, consumer, budget, *_codes(relu, steps[0]))
    if realisation == "mac":
        return steps[-1]  # weights in memory: elements taken a few a cycle, at any width
    chosen = steps[0]
    for bits in steps[1:]:
        lo, hi, _ = _codes(relu, bits)
        if consumer.is_conv:
            lo, hi = min(lo, 0), max(hi, 0)  # zero padding
        if serial_word_bits(consumer.adder_graph, lo, hi) <= budget:
            chosen = bits
    return chosen


def auto_ladders(network: Network, min_bits: int, max_bits: int) -> dict[str, list[int]]:
    """Each variable layer's activation widths for ``--precision auto``, narrowest first.

    The widest is what ``--precision fixed`` gives (``max_bits`` signed bits: ``max_bits
    - 1`` value bits after a ReLU), so auto never starts wider than fixed; below it every
    width down to 8 bits, then every other one (fine steps where accuracy turns), and
    ``min_bits`` (at least 2 signed bits without a ReLU).
    """
    ladder(min_bits, max_bits)  # the same checks
    relu = {layer.name: layer.relu for layer in network.linear_layers}
    out = {}
    for name in variable_layers(network):
        top = max_bits - 1 if relu[name] else max_bits
        low = min(top, min_bits if relu[name] else max(2, min_bits))
        widths = {low, top} | {b for b in range(low, top) if b <= 8 or b % 2 == 0}
        out[name] = sorted(widths)
    return out


def variable_layers(network: Network) -> list[str]:
    """The layers whose activation width a precision mode chooses: every convolution or dense
    layer whose output another one consumes and whose activations the model does not quantise."""
    names: list[str] = []
    producer: LinearLayer | None = None
    for layer in network.layers:
        if isinstance(layer, LinearLayer):
            if producer is not None and producer.quantizer is None:
                names.append(producer.name)
            producer = layer
    return names


def choose_activation_bits(network: Network, initiation_interval: int, min_bits: int, max_bits: int) -> dict[str, int]:
    """{layer name: activation value bits} for every layer whose output another layer consumes.

    ``network`` is quantised (at any fixed width) and has its adder graphs;
    only its weights, graphs and geometry matter here.
    """
    steps = ladder(min_bits, max_bits)
    budgets = layer_budgets(network, initiation_interval)
    chosen: dict[str, int] = {}
    producer: LinearLayer | None = None
    for layer in network.layers:
        if isinstance(layer, PoolLayer):
            continue
        assert isinstance(layer, LinearLayer)
        if producer is not None and producer.quantizer is None:
            budget = budgets.get(layer.name, initiation_interval)
            chosen[producer.name] = _precision_for(network, producer, layer, budget, steps)
        producer = layer
    return chosen


def area_score(res: Resources) -> float:
    """One figure for an estimate, in LUT equivalents (see :data:`FF_WEIGHT`, :data:`LUT_PER_BRAM`)."""
    return res.lut + FF_WEIGHT * res.ff + LUT_PER_DSP * res.dsp + LUT_PER_BRAM * res.bram


def _unit_layers(plan: NetworkPlan | FramePlan) -> list[str]:
    """The layer behind each row of the estimate (``Estimate.layers``), in order."""
    if isinstance(plan, NetworkPlan):
        return [lp.layer.name for lp in plan.layers]
    names = []
    for stage in plan.stages:
        if isinstance(stage, WindowStage):
            names.append(stage.lp.layer.name if stage.lp is not None else stage.layer.name)
        elif isinstance(stage, DenseStage):
            names.append(stage.lp.layer.name)
        elif isinstance(stage, (LanePoolStage, MacStage)):
            names.append(stage.layer.name)
    return names


class AreaTable:
    """The estimated area of any choice of activation widths, from ``2 * len(steps) - 1`` estimates.

    A layer's estimate depends on its input width (its producer's choice: window
    buffer, converters, adder widths) and its output width (requantiser); a pool's on
    its input's. The table prices each layer with its input at every step and its
    output at the widest, and with its output at every step and its input at the
    widest, and adds the two effects (``cost(i, o) = cost(i, widest) + cost(widest, o)
    - cost(widest, widest)``): giving every other variable layer the same step and the
    rest their widest makes one estimate price half of the layers at a step. The area
    of a choice is then a sum of table entries instead of a schedule and an estimate
    of the whole network (seconds on the classifier) per candidate; the build's
    report has the full estimate of the final choice. The parts outside the layers
    (collector, serializer, I/O) are priced by the last variable layer's width.

    ``steps[name]`` is each variable layer's ladder (narrowest first); a choice maps
    layer names to indices into it (a step past a short ladder's end is its widest).
    ``scheduled(bits)`` is the network quantised with ``{name: value bits}``, with its
    graphs and digit widths, ready to plan; ``on_estimate(done, total)`` is told each
    estimate (for progress displays).
    """

    def __init__(
        self,
        scheduled: Callable[[Mapping[str, int]], Network],
        steps: Mapping[str, list[int]],
        on_estimate: Callable[[int, int], None] | None = None,
    ) -> None:
        self.steps = {name: list(ladder) for name, ladder in steps.items()}
        self.variable = list(self.steps)
        self.estimates = 0
        count = max((len(ladder) for ladder in self.steps.values()), default=1)
        self._widest = {name: len(ladder) - 1 for name, ladder in self.steps.items()}
        self._base: list[float] = []
        self._base_outside = 0.0
        # (parity, step index) -> (per-row area, outside area): every variable layer of that
        # parity (its position in the variable list, mod 2) at the step, the others widest.
        self._rows: dict[tuple[int, int], tuple[list[float], float]] = {}
        self._units: list[tuple[str | None, str | None]] = []
        configurations = [(0, count - 1)] + [(p, i) for p in (0, 1) for i in range(count - 1)]
        for parity, index in configurations:
            choice = {
                name: (min(index, self._widest[name]) if k % 2 == parity else self._widest[name])
                for k, name in enumerate(self.variable)
            }
            network = scheduled(self.bits(choice))
            plan = plan_network(network)
            estimate = estimate_parts(plan)
            self.estimates += 1
            if on_estimate is not None:
                on_estimate(self.estimates, len(configurations))
            self._units = self._dependencies(network, _unit_layers(plan))
            rows = [area_score(total_of(parts)) for parts in estimate.layers]
            self._rows[(parity, index)] = (rows, area_score(total_of(estimate.outside)))
        self._base, self._base_outside = self._rows[(0, count - 1)]

    def bits(self, choice: Mapping[str, int]) -> dict[str, int]:
        """Value bits of a choice of step indices."""
        return {name: self.steps[name][min(index, self._widest[name])] for name, index in choice.items()}

    def _dependencies(self, network: Network, units: list[str]) -> list[tuple[str | None, str | None]]:
        """For each estimate row: (the variable layer that feeds it, its own name if variable)."""
        deps = []
        for name in units:
            feeder: str | None = None
            for layer in network.layers:
                if layer.name == name:
                    break
                if isinstance(layer, LinearLayer):
                    feeder = layer.name
            own = name if name in self.steps else None
            deps.append((feeder if feeder in self.steps else None, own))
        return deps

    def _effect(self, unit: int | None, name: str | None, choice: Mapping[str, int]) -> float:
        """What ``name`` at its chosen step adds to a row (``unit``; None: outside) over its widest."""
        if name is None:
            return 0.0
        index = min(choice[name], self._widest[name])
        if index == self._widest[name]:
            return 0.0
        rows, outside = self._rows[(self.variable.index(name) % 2, index)]
        if unit is None:
            return outside - self._base_outside
        return rows[unit] - self._base[unit]

    def area(self, choice: Mapping[str, int]) -> float:
        """The estimated area (:func:`area_score`) of the network with these step indices."""
        last = self.variable[-1] if self.variable else None
        total = self._base_outside + self._effect(None, last, choice)
        for u, (feeder, own) in enumerate(self._units):
            total += self._base[u] + self._effect(u, feeder, choice) + self._effect(u, own, choice)
        return total


@dataclass(frozen=True)
class AutoStep:
    """One narrowing the search kept: the layer, its new width, and the whole choice's figures."""

    layer: str
    bits: int
    area: float
    agreement: float

    def to_json(self) -> dict[str, object]:
        return {"layer": self.layer, "bits": self.bits, "area": round(self.area, 1), "agreement": self.agreement}


@dataclass(frozen=True)
class AutoChoice:
    bits: tuple[tuple[str, int], ...]
    area: float
    agreement: float
    widest_area: float
    widest_agreement: float
    steps: tuple[AutoStep, ...]
    #: Golden-model runs of the search, and whole-network estimates of the area table.
    evaluations: int
    area_estimates: int


def search_activation_bits(
    table: AreaTable,
    agreement: Callable[[Mapping[str, int]], float],
    required: float,
    loss_floor: float = 1e-3,
    on_run: Callable[[int], None] | None = None,
) -> AutoChoice:
    """The least area whose agreement stays >= ``required`` (``--precision auto``), in two phases.

    1. A common width: every variable layer one step below its widest, then the
       narrowest common step index that keeps the budget, by bisection (a few golden
       runs instead of one narrowing at a time from the widest, where most layers go
       down together).
    2. Greedy narrowing from there: each round tries every layer one step narrower
       and keeps the one that saves the most area per agreement lost, among those
       that keep the budget and save area at all (a loss below ``loss_floor``, e.g.
       half a sample of the batch, counts as ``loss_floor``, so of the free narrowings
       the largest saving wins). A layer whose narrowing breaks the budget is not
       tried again: narrowing other layers only adds quantisation noise, so it would
       break it later too. Candidates are judged largest saving first, and a round
       stops judging once no remaining saving could beat the best ratio even at no
       loss. Stops when no narrowing is left.

    When even the widest choice misses ``required``, raises :class:`TwnError` with the
    best agreement reached. ``on_run(runs)`` is told each golden-model run.
    """
    variable = table.variable
    runs = 0

    def judged(choice: Mapping[str, int]) -> float:
        nonlocal runs
        runs += 1
        if on_run is not None:
            on_run(runs)
        return agreement(table.bits(choice))

    widest = {name: len(table.steps[name]) - 1 for name in variable}
    widest_agreement = judged(widest)
    widest_area = table.area(widest)
    if widest_agreement < required - 1e-12:
        top = max((table.steps[n][-1] for n in variable), default=0)
        raise TwnError(
            f"the accuracy budget cannot be met: it asks for an agreement of at least {100 * required:.1f}%, and the "
            f"best this rate allows, every activation at its widest (up to {top} bits), is "
            f"{100 * widest_agreement:.1f}%; loosen --accuracy-budget, widen --act-bits, or calibrate on "
            "inputs like the real ones (--calibrate)"
        )
    current, current_agreement = dict(widest), widest_agreement
    # Phase 1: bisection on a common step index (clipped to each layer's ladder).
    count = max(widest.values(), default=0) + 1
    lo, hi = 0, count - 1  # hi keeps the budget
    while lo < hi:
        mid = (lo + hi) // 2
        trial = {name: min(mid, widest[name]) for name in variable}
        reached = judged(trial)
        if reached >= required - 1e-12:
            hi, current, current_agreement = mid, trial, reached
        else:
            lo = mid + 1
    current_area = table.area(current)
    kept: list[AutoStep] = []
    if hi < count - 1:
        kept.extend(AutoStep(name, table.bits(current)[name], current_area, current_agreement) for name in variable)
    # Phase 2: greedy narrowing.
    frozen: set[str] = set()
    while True:
        best: tuple[float, float, str, float] | None = None  # (saving per loss, saving, layer, agreement)
        candidates = []
        for name in variable:
            if name in frozen or current[name] == 0:
                continue
            trial = {**current, name: current[name] - 1}
            saving = current_area - table.area(trial)
            if saving > 0:
                candidates.append((saving, name, trial))
        # Largest saving first: a candidate's ratio is at most saving / loss_floor, so once
        # that bound is below the best ratio found, no later candidate can win the round.
        candidates.sort(key=lambda c: -c[0])
        for saving, name, trial in candidates:
            if best is not None and saving / loss_floor < best[0]:
                break
            reached = judged(trial)
            if reached < required - 1e-12:
                frozen.add(name)
                continue
            ratio = saving / max(current_agreement - reached, loss_floor)
            if best is None or (ratio, saving) > (best[0], best[1]):
                best = (ratio, saving, name, reached)
        if best is None:
            break
        _, saving, name, reached = best
        current[name] -= 1
        current_area -= saving
        current_agreement = reached
        kept.append(AutoStep(name, table.bits(current)[name], current_area, reached))
    return AutoChoice(
        bits=tuple(table.bits(current).items()),
        area=current_area,
        agreement=current_agreement,
        widest_area=widest_area,
        widest_agreement=widest_agreement,
        steps=tuple(kept),
        evaluations=runs,
        area_estimates=table.estimates,
    )
