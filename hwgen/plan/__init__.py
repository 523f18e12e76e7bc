"""The hardware plan: every register width, delay, cycle and latency of a design.

Computed from the quantised IR alone (pure Python, no Amaranth), and shared by
the backend, which builds exactly this, and by the estimator, which counts it.

* :mod:`.dense` -- dense networks, one vector per cycle (or per II); the layer
  plan (:class:`LayerPlan`) every realisation shares;
* :mod:`.frames` -- streamed frames: window, pool, collector, dense and MAC
  stages of networks with convolutions, and their cycle budgets;
* :mod:`.bit_serial` -- digit-serial adder graphs: digit widths, alignment,
  and the Yosys-calibrated area model;
* :mod:`.window_schedule` -- window geometry, emission schedules and the
  cycle model of a window buffer's control.
"""

from __future__ import annotations

from hwgen.ir import Network
from hwgen.plan.dense import LayerPlan, NetworkPlan, check_requant_slots
from hwgen.plan.frames import FramePlan, plan_frames

__all__ = ["FramePlan", "LayerPlan", "NetworkPlan", "plan_network"]


def plan_network(network: Network) -> NetworkPlan | FramePlan:
    """The plan of a quantised network with adder graphs: a NetworkPlan (dense
    layers only) or a :class:`FramePlan` (streamed frames)."""
    fmt = network.input_format
    if fmt is None:
        raise ValueError("plan_network needs a quantised network")
    if network.has_conv:
        return plan_frames(network)
    plans = []
    lo, hi, bits = fmt.lo, fmt.hi, fmt.bits
    for layer in network.linear_layers:
        plans.append(LayerPlan(layer, lo, hi, bits))
        check_requant_slots(plans[-1], network.initiation_interval)
        rq = layer.requant
        assert rq is not None
        lo, hi, bits = (0 if rq.relu else rq.out.lo), rq.out.hi, rq.out.bits
    return NetworkPlan(network, tuple(plans))
