#!/usr/bin/env python3
"""Modulated I/Q frames: a realistic calibration and test batch for the modulation classifier.

Standard-normal vectors (what a build uses without ``--calibrate``) are a poor
stand-in for the classifier of the published work (``make_conv_net.py``'s
``vgg1d``): its inputs are radio frames [2, L] (I and Q rows) of a modulated
signal, a few symbols of structure and a carrier the receiver has not locked
to. This module makes such frames, deterministically from a seed:

- classes (:data:`CLASSES`): BPSK, QPSK, 8PSK, 16QAM, 64QAM (unit-power
  constellations, root-raised-cosine pulses, roll-off 0.35, 4 or 8 samples per
  symbol), AM (double sideband with carrier, modulation index 0.3-0.9) and FM
  (deviation 0.02-0.1 cycles/sample), the analogue ones carrying a message of
  a few random low-frequency tones;
- impairments: a random carrier phase (uniform over the circle), a frequency
  offset (uniform within +-``max_offset`` cycles per sample), complex white
  noise at an SNR uniform in [``snr_min``, ``snr_max``] dB;
- normalisation: each frame scaled to unit mean power (RMS about 0.7 per I or
  Q sample, as in RadioML 2018.01A), optionally rounded to ``step`` (RadioML
  holds multiples of 1/64).

Frames are float32 [N, 2, L]; labels int64 [N], indices into :data:`CLASSES`.

    python examples/iq_frames.py frames.npy --count 512 --length 1024 --seed 0 [--labels labels.npy]
    twngen classifier.onnx --board zcu111 --input-rate 2 --precision auto --calibrate frames.npy
"""

from __future__ import annotations

import argparse

import numpy as np

__all__ = ["CLASSES", "iq_frames", "main"]

CLASSES = ("BPSK", "QPSK", "8PSK", "16QAM", "64QAM", "AM", "FM")

#: Root-raised-cosine roll-off and span (symbols) of the digital classes' pulses.
ROLL_OFF = 0.35
SPAN_SYMBOLS = 8


def _rrc(sps: int) -> np.ndarray:
    """Root-raised-cosine taps at ``sps`` samples per symbol, unit energy."""
    beta = ROLL_OFF
    t = np.arange(-SPAN_SYMBOLS * sps // 2, SPAN_SYMBOLS * sps // 2 + 1) / sps
    taps = np.empty_like(t)
    for i, ti in enumerate(t):
        if abs(ti) < 1e-12:
            taps[i] = 1 + beta * (4 / np.pi - 1)
        elif abs(abs(ti) - 1 / (4 * beta)) < 1e-9:
            taps[i] = (beta / np.sqrt(2)) * (
                (1 + 2 / np.pi) * np.sin(np.pi / (4 * beta)) + (1 - 2 / np.pi) * np.cos(np.pi / (4 * beta))
            )
        else:
            num = np.sin(np.pi * ti * (1 - beta)) + 4 * beta * ti * np.cos(np.pi * ti * (1 + beta))
            taps[i] = num / (np.pi * ti * (1 - (4 * beta * ti) ** 2))
    return taps / np.sqrt(np.sum(taps**2))


def _constellation(name: str) -> np.ndarray:
    """Unit mean power symbol alphabet."""
    if name.endswith("PSK"):
        m = {"BPSK": 2, "QPSK": 4, "8PSK": 8}[name]
        points = np.exp(2j * np.pi * np.arange(m) / m + (1j * np.pi / 4 if m == 4 else 0))
    else:
        side = {"16QAM": 4, "64QAM": 8}[name]
        levels = np.arange(side) * 2 - (side - 1)
        points = (levels[:, None] + 1j * levels[None, :]).ravel()
    return points / np.sqrt(np.mean(np.abs(points) ** 2))


def _message(rng: np.random.Generator, length: int) -> np.ndarray:
    """An analogue message in [-1, 1]: two to four tones below 0.02 cycles per sample."""
    n = np.arange(length)
    tones = rng.integers(2, 5)
    m = sum(
        rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * rng.uniform(0.001, 0.02) * n + rng.uniform(0, 2 * np.pi))
        for _ in range(tones)
    )
    return m / max(np.max(np.abs(m)), 1e-12)


def _baseband(rng: np.random.Generator, name: str, length: int) -> np.ndarray:
    """One frame of clean complex baseband, unit mean power."""
    if name == "AM":
        s = (1 + rng.uniform(0.3, 0.9) * _message(rng, length)).astype(np.complex128)
    elif name == "FM":
        deviation = rng.uniform(0.02, 0.1)
        s = np.exp(2j * np.pi * deviation * np.cumsum(_message(rng, length)))
    else:
        sps = int(rng.choice([4, 8]))
        taps = _rrc(sps)
        symbols = rng.choice(_constellation(name), size=length // sps + SPAN_SYMBOLS + 2)
        up = np.zeros(len(symbols) * sps, dtype=np.complex128)
        up[::sps] = symbols
        shaped = np.convolve(up, taps)
        start = len(taps) + int(rng.integers(0, sps))  # past the filter's start-up, random symbol timing
        s = shaped[start : start + length]
    return s / np.sqrt(np.mean(np.abs(s) ** 2))


def iq_frames(
    count: int,
    length: int = 1024,
    seed: int = 0,
    snr_min: float = 0.0,
    snr_max: float = 20.0,
    max_offset: float = 0.01,
    classes: tuple[str, ...] = CLASSES,
    step: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` frames [count, 2, length] float32 and their labels [count] int64 (see the module docstring).

    The same arguments give the same arrays (one ``numpy.random.default_rng(seed)``
    drives every draw). Classes take turns (frame i is class i mod len(classes)).
    """
    unknown = [c for c in classes if c not in CLASSES]
    if unknown or not classes:
        raise ValueError(f"classes must be a non-empty selection of {', '.join(CLASSES)}, not {classes!r}")
    if count < 0 or length < 16:
        raise ValueError(f"count must be >= 0 and length >= 16, not {count} and {length}")
    rng = np.random.default_rng(seed)
    frames = np.empty((count, 2, length), dtype=np.float32)
    labels = np.empty(count, dtype=np.int64)
    n = np.arange(length)
    for i in range(count):
        name = classes[i % len(classes)]
        s = _baseband(rng, name, length)
        offset = rng.uniform(-max_offset, max_offset)
        s = s * np.exp(1j * (2 * np.pi * offset * n + rng.uniform(0, 2 * np.pi)))
        snr_db = rng.uniform(snr_min, snr_max)
        sigma = np.sqrt(10 ** (-snr_db / 10) / 2)
        s = s + sigma * (rng.standard_normal(length) + 1j * rng.standard_normal(length))
        s = s / np.sqrt(np.mean(np.abs(s) ** 2))
        if step is not None:
            s = np.round(s.real / step) * step + 1j * np.round(s.imag / step) * step
        frames[i, 0], frames[i, 1] = s.real, s.imag
        labels[i] = CLASSES.index(name)
    return frames, labels


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("output", help="frames .npy, float32 [count, 2, length]")
    ap.add_argument("--count", type=int, default=512)
    ap.add_argument("--length", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--snr-min", type=float, default=0.0, help="dB (default %(default)s)")
    ap.add_argument("--snr-max", type=float, default=20.0, help="dB (default %(default)s)")
    ap.add_argument(
        "--max-offset", type=float, default=0.01, help="carrier offset bound, cycles/sample (default %(default)s)"
    )
    ap.add_argument("--step", type=float, default=None, help="round every value to this step (RadioML: 0.015625)")
    ap.add_argument("--labels", default=None, help="also write the class indices (.npy, int64 [count])")
    args = ap.parse_args(argv)
    frames, labels = iq_frames(
        args.count, args.length, args.seed, args.snr_min, args.snr_max, args.max_offset, step=args.step
    )
    np.save(args.output, frames)
    if args.labels:
        np.save(args.labels, labels)
    rms = float(np.sqrt(np.mean(frames.astype(np.float64) ** 2))) if frames.size else 0.0
    print(f"wrote {args.output}: {list(frames.shape)} float32, RMS {rms:.3f}, classes {', '.join(CLASSES)}")


if __name__ == "__main__":
    main()
