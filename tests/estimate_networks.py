"""Networks whose resource estimates tests/fixtures/estimate_totals.json records.

``python tests/estimate_networks.py`` rewrites the fixture from the estimate as
it is; the committed file was written at commit c6baf3a, before the estimate
was split into parts, so that tests/test_estimate.py can check that the split
(and anything after it that must not move the numbers) leaves every layer's
total and the design's total exactly as they were. ``conv1d_argmax`` was
rewritten when MAC layers learnt to take two elements a cycle (branch kmac):
its first dense layer (72 inputs in 40 cycles) left the adder graph for a
2-lane MAC layer. ``conv2d_lanes4`` and ``conv2d_pool3_lanes2`` (2-D inputs at 4 and 2
pixels a cycle, branch lanes2d) were added with the estimate as it was when they first built.
Rewritten when the pool comparators and the window masks of digit-serial layers were refitted
to Yosys (``hwgen.estimate.POOL_NODE_LUT_EXTRA``, ``window_cost(masks_fold=...)``): only those
rows' LUTs moved, every schedule and every FF, DSP and BRAM count stayed as it was.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import onnx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "examples"))

from make_conv_net import stack, vgg1d  # noqa: E402

FIXTURE = REPO / "tests" / "fixtures" / "estimate_totals.json"

#: name -> (model, input rate, argmax); dense and frame networks, parallel, serial, lanes, MAC, 2-D
#: (also with lanes).
NETWORKS = {
    "mlp": (None, None, False),
    "mlp_serial": (None, 2.0, False),
    "vgg1d": (lambda: vgg1d(channels=6, length=64, convs=3, dense=(16,), classes=4, seed=11), 1.0, False),
    "vgg1d_serial": (lambda: vgg1d(channels=8, length=64, convs=3, dense=(16,), classes=5, seed=12), 0.25, False),
    "vgg1d_lanes": (lambda: vgg1d(channels=6, length=64, convs=3, dense=(16,), classes=4, seed=15), 2.0, False),
    "vgg1d_mac": (lambda: vgg1d(channels=8, length=128, convs=3, dense=(64, 32), classes=5, seed=9), 1.0, False),
    "conv2d": (lambda: stack("C4k5p2,m2,b,c6k3s2p1", (2, 8, 8), seed=13, negative_bn=True), 1.0, False),
    "conv1d_argmax": (lambda: stack("c5k3,c4k1,d8,o3", (3, 20), seed=14), 0.5, True),
    "conv2d_lanes4": (lambda: stack("C4k5p2,m2,b,c6k3s2p1", (2, 8, 8), seed=13, negative_bn=True), 4.0, False),
    "conv2d_pool3_lanes2": (
        lambda: stack("C4k3p1,m3s2p1,b,c5k3p1,m2,d6,o3", (2, 8, 8), seed=21, negative_bn=True),
        2.0,
        False,
    ),
}


def scheduled(name: str, folder: Path, **kwargs: object):  # type: ignore[no-untyped-def]
    """The network ``build`` would plan for ``name`` (keyword arguments go to scheduled_network)."""
    from hwgen.build import ArithmeticOptions, scheduled_network

    make, rate, argmax = NETWORKS[name]
    if make is None:
        path = REPO / "examples" / "mlp_ternary.onnx"
    else:
        path = folder / f"{name}.onnx"
        onnx.save(make(), str(path))
    network, _, _ = scheduled_network(path, ArithmeticOptions(), 250.0, input_rate=rate, argmax=argmax, **kwargs)
    return network


def estimates(name: str, folder: Path, **kwargs: object) -> dict[str, object]:
    from hwgen.estimate import estimate_network
    from hwgen.plan import plan_network

    per_layer, total = estimate_network(plan_network(scheduled(name, folder, **kwargs)))
    return {"per_layer": [r.to_json() for r in per_layer], "total": total.to_json()}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        # As tests/test_estimate.py compares them: one requantiser per channel.
        data = {name: estimates(name, Path(tmp), share_requantisers=False) for name in NETWORKS}
    FIXTURE.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
