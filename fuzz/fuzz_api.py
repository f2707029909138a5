"""atheris fuzz target: the validation and the kernels behind crnn.RNN and crnn.OnlineRTRL.

Each input decodes into sizes (tiny, or zero, negative, huge), a dtype, values
(regular, or any float: NaN, inf, subnormal, 1e308), a layout or container
for every array (Fortran, strided, reversed, read-only, lists, other dtypes,
complex, object, None, scalars, wrong shapes), options and one call among
forward, predict, loss, both gradients, fit, partial_fit, OnlineRTRL, step,
generate, weight assignment, from_weights and save/load.

The call must either raise TypeError, ValueError, MemoryError or
FloatingPointError, or return results of the documented shapes and dtype
that, when every input is regular, agree with the pure-Python oracle
(crnn.reference). Any other exception, any warning, a crash or a hang is a
finding. Run it with fuzz/run.sh.
"""

import contextlib
import math
import os
import sys
import tempfile
import warnings

import atheris

with atheris.instrument_imports(include=["crnn"]):
    import crnn
    from crnn import reference

import numpy as np

ALLOWED = (TypeError, ValueError, MemoryError, FloatingPointError)
CALLS = (
    "forward",
    "predict",
    "loss",
    "bptt",
    "rtrl",
    "fit",
    "partial_fit",
    "online",
    "step",
    "generate",
    "assign",
    "from_weights",
    "save_load",
)
TMP = tempfile.mkdtemp(prefix="crnn-fuzz-")


class Values:
    """Numbers from the input: regular ones, or any double at all."""

    def __init__(self, fdp):
        self.fdp = fdp
        self.regular = True

    def array(self, shape, wild):
        """Return an array of the given shape: regular values, or wild ones."""
        count = math.prod(shape)
        if wild:
            vals = self.fdp.ConsumeFloatList(count)  # NaN, inf, subnormals, 1e308 ...
            vals += [0.0] * (count - len(vals))
            if not all(math.isfinite(v) and abs(v) <= 3 for v in vals):
                self.regular = False
        else:
            vals = self.fdp.ConsumeFloatListInRange(count, -3.0, 3.0)
            vals += [0.5] * (count - len(vals))
        return np.array(vals, dtype=np.float64).reshape(shape)


def dress(fdp, arr, optional=False, any_width=False):
    """Return (arr in one of many forms, "ok" / "rounded" / "bad").

    optional: None is a valid value; any_width: so is another last axis.
    """
    with np.errstate(all="ignore"):  # the harness's own casts of NaN and 1e308
        return _dress(fdp, arr, optional, any_width)


def _dress(fdp, arr, optional, any_width):
    kind = fdp.ConsumeIntInRange(0, 17)
    if kind <= 4:
        return arr, "ok"  # C order, float64: the common case
    if kind == 5:
        return np.asfortranarray(arr), "ok"
    if kind == 6 and arr.ndim:
        big = np.zeros((2 * arr.shape[0], *arr.shape[1:]))
        big[::2] = arr
        return big[::2], "ok"
    if kind == 7 and arr.ndim:
        return np.array(arr[::-1])[::-1], "ok"
    if kind == 8:
        arr = arr.copy()
        arr.flags.writeable = False
        return arr, "ok"
    if kind == 9:
        return arr.tolist(), "ok"
    if kind == 10:
        return arr.astype(np.float32), "rounded"
    if kind == 11:
        return np.rint(arr).astype(np.int64), "rounded"
    if kind == 12:
        return arr.astype(np.complex128), "bad"
    if kind == 13:
        return arr.astype(object), "bad"
    if kind == 14:
        return None, "ok" if optional else "bad"
    if kind == 15:
        return np.zeros((*arr.shape[:-1], arr.shape[-1] + 1)), "ok" if any_width else "bad"
    if kind == 16:
        return float(fdp.ConsumeFloat()), "bad"
    return arr.astype(str), "bad"


def size(fdp):
    """Return a size: 1 to 4 mostly, sometimes 0, -1 or far beyond memory."""
    k = fdp.ConsumeIntInRange(0, 39)
    if k < 36:
        return 1 + k % 4
    return (0, -1, 2**62, 10**12)[k - 36]


def option(fdp, choices):
    """Return one of choices."""
    return choices[fdp.ConsumeIntInRange(0, len(choices) - 1)]


def close(a, b, dtype, atol):
    """Return whether a and b agree to within rounding: rtol for dtype, plus atol."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    rtol = 2e-3 if dtype == np.float32 else 1e-8
    return np.allclose(a, b, rtol=rtol, atol=atol)


def _norm(A):
    return float(np.abs(np.asarray(A, dtype=np.float64)).sum(axis=1).max(initial=0))


def bounds(rnn, X, target, g):
    """Return rounding error bounds (forward, loss, gradient) of a call on these inputs.

    A residual target - Y can cancel to a few ulp of |target| + |Y|, and an
    error in a state grows by at most 1 + ||W|| per step: the bounds are eps
    times those amplifications (a condition number), so that ill-conditioned
    inputs (g = 1e39, saturated states, residuals that cancel) are not findings.
    """
    eps = float(np.finfo(rnn.dtype).eps)
    xmax = float(np.abs(X).max(initial=0))
    T = max(1, X.shape[-2])
    count = max(1, X.size // max(1, X.shape[-1]))  # N T
    grow = (1 + _norm(rnn.W)) ** T * (1 + _norm(rnn.U) * xmax + _norm(rnn.W))
    out = (1 + _norm(rnn.V)) * grow
    forward = 64 * eps * out
    if target is None:
        return forward, None, None
    res = float(np.abs(target).max(initial=0)) + _norm(rnn.V) + 1
    loss = 64 * eps * abs(g) * count * res * (res + out)
    gradient = 64 * eps * 2 * abs(g) * count * res * out * (1 + xmax)
    return forward, loss, gradient


def check_against_oracle(call, rnn, X, target, s0, g, out):
    """Compare a result computed from regular inputs with crnn.reference."""
    dt = rnn.dtype
    U, W, V = (np.asarray(w, dtype=np.float64) for w in (rnn.U, rnn.W, rnn.V))
    batched = X.ndim == 3
    X3 = X if batched else X[np.newaxis]
    t3 = target if batched else target[np.newaxis]
    tol_forward, tol_loss, tol_gradient = bounds(rnn, X, target, g)

    def s0_of(b):
        return None if s0 is None else (s0 if s0.ndim == 1 else s0[b])

    if call in ("forward", "predict"):
        Y = out[1] if call == "forward" else out
        Y3 = Y if batched else Y[np.newaxis]
        for b in range(X3.shape[0]):
            _, ref = reference.forward(U, W, V, X3[b], s0_of(b))
            assert close(Y3[b], np.reshape(ref, Y3[b].shape), dt, tol_forward), "Y != oracle"
        return
    if call == "loss":
        ref = sum(reference.loss(U, W, V, X3[b], t3[b], s0_of(b), g) for b in range(len(X3)))
        assert close(out, ref, dt, tol_loss), f"loss {out} != oracle {ref}"
        return
    refs = [reference.gradient_bptt(U, W, V, X3[b], t3[b], s0_of(b), g) for b in range(len(X3))]
    for k in ("U", "W", "V"):
        ref = sum((np.array(r[k]) for r in refs), np.zeros(getattr(out, k).shape))
        assert close(getattr(out, k), ref, dt, tol_gradient), f"d{k} != oracle"
    ds0 = np.array([r["s0"] for r in refs]).reshape(len(refs), -1)
    if not batched:
        ds0 = ds0[0]
    elif s0 is not None and s0.ndim == 1:  # a shared s0: summed over the batch
        ds0 = ds0.sum(axis=0)
    assert close(out.s0, ds0, dt, tol_gradient), "ds0 != oracle"


def run(fdp):
    """Decode one call from the input and make it; raise AssertionError on a finding."""
    vals = Values(fdp)
    dtype = np.dtype(option(fdp, (np.float64, np.float32)))
    n, d, m = size(fdp), size(fdp), size(fdp)
    call = option(fdp, CALLS)
    if call in ("generate", "step"):
        m = n
    N = fdp.ConsumeIntInRange(0, 3)
    T = fdp.ConsumeIntInRange(0, 6)
    batched = fdp.ConsumeBool()
    wild = fdp.ConsumeIntInRange(0, 7) == 0
    check_finite = fdp.ConsumeIntInRange(0, 5) != 0
    g = option(fdp, (1.0, 0.5, 2, 3e-3, -1.0, 0.0, float("nan"), 1e39, "1", None))
    n_threads = option(fdp, (None, 1, 2, 3, -1, 0, 1.5, 10**6))
    method = option(fdp, ("bptt", "rtrl", "RTRL", "adjoint", None))
    if not all(isinstance(k, int) and 1 <= k <= 4 for k in (n, d, m)):
        crnn.RNN(n, d, m, dtype=dtype)  # sizes of 0, < 0 or beyond memory: refused
        raise AssertionError(f"a bad size was accepted: {(n, d, m)}")
    rnn = crnn.RNN(n, d, m, dtype=dtype, seed=fdp.ConsumeIntInRange(0, 3))
    with np.errstate(over="ignore"):  # in place, unchecked: the kernels may see anything
        for w in (rnn.U, rnn.W, rnn.V):
            w[...] = vals.array(w.shape, wild)
    try:
        rnn.n_threads = n_threads
    except ALLOWED:
        rnn.n_threads = 1
    lead = (N,) if batched else ()
    X = vals.array((*lead, T, n), wild)
    target = vals.array((*lead, T, m), wild)
    s0 = option(fdp, (None, "shared", "batch")) if batched else option(fdp, (None, "shared"))
    s0 = None if s0 is None else vals.array((d,) if s0 == "shared" else (N, d), wild)
    Xd, x_form = dress(fdp, X)
    td, t_form = dress(fdp, target)
    s0d, s_form = (None, "ok") if s0 is None else dress(fdp, s0, optional=True)

    def seen(value, form, original):
        """Return the values the model computes with."""
        if form == "rounded":
            with np.errstate(all="ignore"):
                return np.asarray(value, dtype=dtype).astype(np.float64)
        return original

    X, target = seen(Xd, x_form, X), seen(td, t_form, target)
    s0 = None if s0d is None else seen(s0d, s_form, s0)  # None: zeros
    uses = {
        "forward": (x_form, s_form),
        "predict": (x_form, s_form),
        "loss": (x_form, t_form, s_form),
        "bptt": (x_form, t_form, s_form),
        "rtrl": (x_form, t_form, s_form),
        "fit": (x_form, t_form),
        "partial_fit": (x_form, t_form),
        "online": (x_form, t_form),
        "assign": (x_form,),
    }.get(call, ())
    bad = "bad" in uses
    out = None
    if call == "forward":
        out = rnn.forward(Xd, s0d, check_finite=check_finite)
        assert out[0].shape == (*X.shape[:-1], d)
        assert out[1].shape == (*X.shape[:-1], m)
        assert out[0].dtype == out[1].dtype == dtype
        assert not np.isfinite(out[0]).all() or np.abs(out[0]).max(initial=0) <= 1
    elif call == "predict":
        out = rnn.predict(Xd, s0d, check_finite=check_finite)
    elif call == "loss":
        out = rnn.loss(Xd, td, s0d, g=g, check_finite=check_finite)
        assert isinstance(out, float)
    elif call in ("bptt", "rtrl"):
        out = rnn.gradient(Xd, td, s0d, g=g, method=call, check_finite=check_finite)
        for k, shape in (("U", (d, n)), ("W", (d, d)), ("V", (m, d))):
            assert getattr(out, k).shape == shape
            assert getattr(out, k).dtype == dtype
        if vals.regular and check_finite:
            other = rnn.gradient(Xd, td, s0d, g=g, method="rtrl" if call == "bptt" else "bptt")
            tol = bounds(rnn, X, target, float(g))[2]
            for k in ("U", "W", "V", "s0"):
                assert close(getattr(out, k), getattr(other, k), dtype, tol), "bptt != rtrl"
    elif call == "fit":
        rnn.fit(Xd, td, epochs=fdp.ConsumeIntInRange(1, 2), method=method, g=g,
                optimizer=option(fdp, ("adam", "sgd", "adagrad", "x")),
                clip=option(fdp, (None, 1.0, 0.0, -1.0)),
                batch_size=option(fdp, (None, 1, 2, 0)),
                truncate=option(fdp, (None, 1, 3)), seed=0)  # fmt: skip
        assert all(np.isfinite(w).all() for w in (rnn.U, rnn.W, rnn.V))
    elif call == "partial_fit":
        rnn.partial_fit(Xd, td, method=method, g=g, clip=option(fdp, (None, 0.5)))
        assert all(np.isfinite(w).all() for w in (rnn.U, rnn.W, rnn.V))
    elif call == "online":
        trainer = crnn.OnlineRTRL(rnn, lr=option(fdp, (0.0, 0.01, 1e3, -1.0)), g=g,
                                  clip=option(fdp, (None, 1.0, 1e-50, 0.0)))  # fmt: skip
        Y = trainer.learn(Xd, td)
        assert Y.shape == (X.shape[0], m)
        assert all(np.isfinite(w).all() for w in (rnn.U, rnn.W, rnn.V))
    elif call == "step":
        for t in range(X.shape[-2]):
            rnn.step(X[..., t, :])
    elif call == "generate":
        warm = Xd if fdp.ConsumeBool() else None
        x0 = None if fdp.ConsumeBool() else np.zeros((*X.shape[:-2], n))
        rnn.generate(fdp.ConsumeIntInRange(-1, 5), warm, s0=s0d, x0=x0)
    elif call == "assign":
        rnn.V = Xd
    elif call == "from_weights":
        # U gives n and d: a U one column wider is a model with one more input
        weights = [dress(fdp, w, any_width=w is rnn.U) for w in (rnn.U, rnn.W, rnn.V)]
        bad = any(form == "bad" for _, form in weights)
        crnn.RNN.from_weights(*(w for w, _ in weights), dtype=option(fdp, (None, dtype)))
    elif call == "save_load":
        path = os.path.join(TMP, "model.npz")
        crnn.save(rnn, path)
        back = crnn.load(path)
        for k in "UWV":
            assert np.array_equal(getattr(back, k), getattr(rnn, k))
    if bad:
        raise AssertionError(f"{call} accepted an argument it must refuse")
    if vals.regular and check_finite and call in ("forward", "predict", "loss", "bptt", "rtrl"):
        check_against_oracle(call, rnn, X, target, s0, float(g), out)


def TestOneInput(data):
    """Run one input (the entry point atheris calls)."""
    fdp = atheris.FuzzedDataProvider(data)
    with warnings.catch_warnings(), contextlib.suppress(*ALLOWED):
        warnings.simplefilter("error")  # any warning is a finding
        run(fdp)


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
