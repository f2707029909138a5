"""pandas objects wherever a sequence is accepted: Series, DataFrames, nullable dtypes.

A Series is one univariate series, (T,) -> (T, 1); a DataFrame is a
sequence (T, k); nullable columns ("Float64", "Int64", "boolean") without
missing values are read as numbers, and a missing value is refused by name.
Every result is the one of the same values as a numpy array, bit for bit,
and is a numpy array.
"""

import numpy as np
import pytest

import crnn
from crnn import datasets

pd = pytest.importorskip("pandas")


@pytest.fixture
def series(rng):
    return rng.normal(size=40)


@pytest.fixture
def model():
    return crnn.RNN(1, 6, seed=0, bias=True)


def same(a, b):
    """Bit for bit the same arrays, and a numpy array where the reference is one."""
    assert type(a) is type(b)
    if isinstance(b, tuple):
        for u, v in zip(a, b, strict=True):
            same(u, v)
    elif isinstance(b, np.ndarray):
        assert a.dtype == b.dtype
        assert a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


# ---------------------------------------------------------------------- a Series is one series


@pytest.mark.parametrize(
    "call",
    [
        lambda m, x, t: m.forward(x),
        lambda m, x, t: m.forward(x, return_state=True),
        lambda m, x, t: m.predict(x),
        lambda m, x, t: m.loss(x, t),
        lambda m, x, t: m.gradient(x, t).U,
        lambda m, x, t: m.gradient(x, t, method="rtrl").W,
        lambda m, x, t: m.generate(5, warmup=x),
    ],
    ids=["forward", "forward-state", "predict", "loss", "gradient", "gradient-rtrl", "generate"],
)
def test_a_series_is_one_univariate_series(model, series, call):
    x, t = series[:-1], series[1:]
    expected = call(model, x[:, None], t[:, None])
    same(call(model, pd.Series(x), pd.Series(t)), expected)
    # the index is not read: rows are taken in order
    index = pd.date_range("2026-01-01", periods=len(x), freq="h")[::-1]
    same(call(model, pd.Series(x, index=index), pd.Series(t, index=index)), expected)


def test_fit_and_partial_fit_take_series(series):
    x, t = series[:-1], series[1:]
    for fit in ("fit", "partial_fit"):
        a, b = crnn.RNN(1, 4, seed=0), crnn.RNN(1, 4, seed=0)
        options = {"epochs": 3, "seed": 0} if fit == "fit" else {}
        getattr(a, fit)(x[:, None], t[:, None], **options)
        getattr(b, fit)(pd.Series(x), pd.Series(t), **options)
        same(b.W, a.W)
        same(b.loss_curve_, a.loss_curve_)


def test_online_rtrl_takes_series(series):
    x, t = series[:-1], series[1:]
    a = crnn.OnlineRTRL(crnn.RNN(1, 4, seed=0), lr=0.01)
    b = crnn.OnlineRTRL(crnn.RNN(1, 4, seed=0), lr=0.01)
    same(b.learn(pd.Series(x), pd.Series(t)), a.learn(x[:, None], t[:, None]))
    # one step's x and target are vectors: a Series of their values
    same(b.step(pd.Series(x[:1]), pd.Series(t[:1])), a.step(x[:1], t[:1]))
    same(b.model.W, a.model.W)


def test_a_series_where_a_vector_is_expected_is_that_vector(model, series):
    s0 = np.linspace(-0.5, 0.5, model.hidden_size)
    same(model.forward(pd.Series(series), pd.Series(s0)), model.forward(series[:, None], s0))
    a, b = crnn.RNN(3, 4, seed=0), crnn.RNN(3, 4, seed=0)
    same(b.step(pd.Series([0.1, 0.2, 0.3])), a.step(np.array([0.1, 0.2, 0.3])))


def test_datasets_take_series(series):
    same(datasets.windows(pd.Series(series), 10, step=5), datasets.windows(series[:, None], 10, 5))
    same(datasets.next_step(pd.Series(series)), datasets.next_step(series[:, None]))


def test_a_list_of_series_is_a_list_of_sequences(model, rng):
    # each Series a univariate sequence; the results, a list, are the batch's rows
    batch = rng.normal(size=(3, 20))
    as_list = [pd.Series(row) for row in batch]
    S, Y = model.forward(as_list)
    Sb, Yb = model.forward(batch[..., None])
    same(np.stack(S), Sb)
    same(np.stack(Y), Yb)
    same(model.loss(as_list, as_list), model.loss(list(batch[..., None]), list(batch[..., None])))
    # and of their own lengths
    ragged = [pd.Series(rng.normal(size=T)) for T in (4, 9)]
    Y = model.predict(ragged)
    same(Y[1], model.predict(ragged[1].to_numpy()[:, None]))


# ---------------------------------------------------------------------- DataFrames and dtypes


def test_dataframes_keep_working(rng):
    model = crnn.RNN(3, 5, 2, seed=0)
    X = rng.normal(size=(30, 3))
    target = rng.normal(size=(30, 2))
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    same(model.forward(frame), model.forward(X))
    same(model.loss(frame, pd.DataFrame(target)), model.loss(X, target))
    # columns of several numpy dtypes
    mixed = pd.DataFrame({"a": X[:, 0], "b": X[:, 1].astype(np.float32), "c": np.arange(30)})
    expected = np.column_stack([X[:, 0], X[:, 1].astype(np.float32), np.arange(30)])
    same(model.forward(mixed), model.forward(expected))


@pytest.mark.parametrize("dtype", ["Float64", "Float32", "Int64", "boolean"])
def test_nullable_dtypes_without_missing_values_are_numbers(rng, dtype):
    model = crnn.RNN(2, 5, seed=0)
    values = rng.normal(size=(25, 2)) * 3
    values = values > 0 if dtype == "boolean" else values
    values = np.round(values) if dtype == "Int64" else values
    numpy_dtype = {"Float64": np.float64, "Float32": np.float32, "Int64": np.int64}
    values = values.astype(numpy_dtype.get(dtype, bool))
    # one nullable column beside a numpy float one: numpy would make it an object array
    frame = pd.DataFrame({"a": pd.array(values[:, 0], dtype=dtype), "b": values[:, 1]})
    expected = np.column_stack([values[:, 0], values[:, 1]])
    same(model.forward(frame), model.forward(expected))
    one = crnn.RNN(1, 5, seed=0)
    same(one.forward(pd.Series(values[:, 0], dtype=dtype)), one.forward(values[:, :1]))


def test_missing_values_are_refused_by_name(model, series):
    values = pd.array(series, dtype="Float64")
    values[7] = pd.NA
    frame = pd.DataFrame({"level": values}, index=np.arange(100, 140))
    with pytest.raises(
        ValueError, match=r"^X must not hold missing values; .*column 'level', index 107"
    ):
        model.forward(frame)
    # whatever check_finite says: a missing value is not a number
    with pytest.raises(ValueError, match=r"^X must not hold missing values"):
        model.forward(frame, check_finite=False)
    with pytest.raises(
        ValueError, match=r"^target must not hold missing values; found one at index 7"
    ):
        model.loss(series[:, None], pd.Series(values))
    with pytest.raises(ValueError, match=r"^X\[1\] must not hold missing values"):
        model.forward([pd.Series(series), pd.Series(values)])
    ints = pd.Series(pd.array([1, None, 3], dtype="Int64"))
    with pytest.raises(ValueError, match=r"^series must not hold missing values"):
        datasets.windows(ints, 2)
    with pytest.raises(ValueError, match=r"^X must not hold missing values"):
        crnn.RNN(1, 3, seed=0).fit(pd.Series(values), pd.Series(series), epochs=1)
    with pytest.raises(ValueError, match=r"^X must not hold missing values"):
        crnn.OnlineRTRL(crnn.RNN(1, 3, seed=0)).learn(pd.Series(values), series[:, None])


def test_a_nan_in_a_numpy_column_is_a_nan(model, series):
    # as in an array: refused by the finite check, which check_finite=False skips
    series = series.copy()
    series[3] = np.nan
    with pytest.raises(ValueError, match="X must contain only finite values"):
        model.forward(pd.Series(series))
    assert np.isnan(model.forward(pd.Series(series), check_finite=False)[1][3:]).all()


def test_strings_are_still_refused(model):
    with pytest.raises(TypeError, match="X must be an array of real numbers"):
        model.forward(pd.Series(["1.0", "2.0"]))
    with pytest.raises(TypeError, match="X must be an array of real numbers"):
        model.forward(pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]}))
