# SPDX-License-Identifier: BSD-3-Clause
"""The compiled kernels, as built for this CPU (runtime dispatch).

``crnn/_core.pyx`` is compiled once per instruction set: ``_core_baseline``
(the target's baseline, e.g. x86-64 with SSE2), and on x86-64 also
``_core_avx2`` (AVX2 and FMA) and ``_core_avx512`` (AVX-512 F, DQ, BW and VL).
This module imports the widest one the CPU runs, as the baseline build's
``_cpu_features`` reports it (the compiler's runtime detection, which also
checks that the operating system saves the wide registers), and exposes its
functions under ``crnn._core``. ``crnn._kernels`` is their only caller.

The environment variable ``CRNN_KERNELS`` (``baseline``, ``avx2`` or
``avx512``) forces a variant, for tests and comparisons; asking for one the
CPU cannot run raises ``ImportError``. ``variant`` names the one in use.
Results are bit for bit the same for every thread count within a variant;
across variants they agree to rounding (FMA contracts a multiply and an add).
"""

import importlib
import os

#: Widest first, with the CPU features each needs (names of ``_cpu_features``).
VARIANTS = {
    "avx512": ("avx512",),
    "avx2": ("avx2",),
    "baseline": (),
}


def _cpu_features():
    try:
        baseline = importlib.import_module("crnn._core_baseline")
    except ImportError:
        return {}
    return baseline._cpu_features()


def supported(variant):
    """Return True when this CPU can run the given kernel variant."""
    features = _cpu_features()
    return all(features.get(f, False) for f in VARIANTS[variant])


def _import(variant):
    return importlib.import_module(f"crnn._core_{variant}")


def _load():
    forced = os.environ.get("CRNN_KERNELS", "").strip().lower()
    if forced:
        if forced not in VARIANTS:
            raise ImportError(f"CRNN_KERNELS must be one of {', '.join(VARIANTS)}, got {forced!r}")
        if not supported(forced):
            raise ImportError(f"CRNN_KERNELS={forced}: this CPU cannot run those kernels")
        return forced, _import(forced)
    for variant in VARIANTS:
        if supported(variant):
            try:
                return variant, _import(variant)
            except ImportError:  # not built (another architecture, or an old compiler)
                continue
    raise ImportError("no compiled crnn kernels found (crnn._core_baseline is missing)")


def available():
    """Return the variants that are built and that this CPU runs, widest first."""
    out = []
    for variant in VARIANTS:
        if supported(variant):
            try:
                _import(variant)
            except ImportError:
                continue
            out.append(variant)
    return out


variant, _module = _load()
globals().update({k: v for k, v in vars(_module).items() if not k.startswith("__")})
