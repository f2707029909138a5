"""crnn.sklearn.RNNRegressor: scikit-learn's estimator API over sequences.

A sample is a sequence: X is (N, T, n) or a list of sequences (T, n), y
(N, T, m) or a list of (T, m). The parts of scikit-learn's
``check_estimator`` that apply run here (``APPLICABLE``); those that feed
scikit-learn's tabular data are listed with the reason they do not apply
(``NOT_APPLICABLE``), and the same properties are checked on sequences
below them.
"""

import inspect
import pickle
from functools import partial

import numpy as np
import pytest

import crnn

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone
from sklearn.exceptions import NotFittedError, SkipTestWarning
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils import estimator_checks

from crnn.sklearn import FIT_OPTIONS, MODEL_OPTIONS, PARTIAL_FIT_OPTIONS, RNNRegressor


def small(**params):
    """A regressor that fits in a few milliseconds."""
    return RNNRegressor(**{"hidden_size": 4, "epochs": 5, "random_state": 0, **params})


@pytest.fixture
def data(rng):
    """X (12, 15, 2) and y (12, 15, 1), a running sum of the first input."""
    X = rng.normal(size=(12, 15, 2))
    return X, np.cumsum(X[..., :1], axis=1) / 4


# ---------------------------------------------------------------------- scikit-learn's own checks

#: The checks of check_estimator that apply to sequences: they pass.
APPLICABLE = {
    "check_estimator_cloneable",
    "check_estimator_tags_renamed",
    "check_valid_tag_types",
    "check_estimator_repr",
    "check_no_attributes_set_in_init",
    "check_estimators_unfitted",
    "check_do_not_raise_errors_in_init_or_set_params",
    "check_mixin_order",
    "check_parameters_default_constructible",
    "check_get_params_invariance",
    "check_set_params",
    "check_fit1d",
    "check_requires_y_none",
}

_TABLE = (
    "fits on a table X (n_samples, n_features) with y (n_samples,); a sample here is a sequence"
)

#: The checks that do not apply, and why; the tests named after ``->`` check
#: the same property on sequences.
NOT_APPLICABLE = {
    "check_fit_score_takes_y": f"{_TABLE} -> test_fit_and_score_take_y",
    "check_estimators_overwrite_params": f"{_TABLE} -> test_fit_changes_no_parameter",
    "check_dont_overwrite_parameters": f"{_TABLE} -> test_fit_changes_no_parameter",
    "check_estimators_fit_returns_self": f"{_TABLE} -> test_fit_returns_self",
    "check_readonly_memmap_input": f"{_TABLE} -> test_read_only_and_fortran_inputs",
    "check_f_contiguous_array_estimator": f"{_TABLE} -> test_read_only_and_fortran_inputs",
    "check_positive_only_tag_during_fit": _TABLE,
    "check_n_features_in_after_fitting": (
        "returns at once for an estimator without the two_d_array tag -> "
        "test_n_features_in_is_checked"
    ),
    "check_estimators_dtypes": f"{_TABLE} -> test_integer_and_float32_inputs",
    "check_complex_data": (
        "looks for its own message in a ValueError; crnn raises TypeError naming X "
        "-> test_bad_data_is_refused_by_name"
    ),
    "check_dtype_object": (
        "expects an object array of numbers to be accepted; crnn refuses object arrays "
        "-> test_bad_data_is_refused_by_name"
    ),
    "check_estimators_empty_data_messages": f"{_TABLE} -> test_bad_data_is_refused_by_name",
    "check_pipeline_consistency": f"{_TABLE} -> test_pipeline_grid_search_cross_validation",
    "check_estimators_nan_inf": f"{_TABLE} -> test_bad_data_is_refused_by_name",
    "check_estimator_sparse_tag": f"{_TABLE} (sparse) -> test_bad_data_is_refused_by_name",
    "check_estimator_sparse_array": f"{_TABLE} (sparse) -> test_bad_data_is_refused_by_name",
    "check_estimator_sparse_matrix": f"{_TABLE} (sparse) -> test_bad_data_is_refused_by_name",
    "check_estimators_pickle": f"{_TABLE} -> test_pickle_and_clone",
    "check_array_api_input": "crnn takes numpy arrays only (no array API support)",
    "check_regressors_train": f"{_TABLE} -> test_it_learns",
    "check_regressor_data_not_an_array": f"{_TABLE} -> test_lists_and_arrays_agree",
    "check_estimators_partial_fit_n_features": f"{_TABLE} -> test_partial_fit",
    "check_regressor_multioutput": f"{_TABLE} -> test_several_outputs",
    "check_regressors_no_decision_function": _TABLE,
    "check_supervised_y_2d": f"{_TABLE} -> test_bad_data_is_refused_by_name",
    "check_supervised_y_no_nan": (
        f"{_TABLE}: it passes, on the refusal of X -> test_bad_data_is_refused_by_name"
    ),
    "check_regressors_int": f"{_TABLE} -> test_integer_and_float32_inputs",
    "check_non_transformer_estimators_n_iter": (
        "returns at once for an estimator without max_iter (epochs here) -> test_fit_returns_self"
    ),
    "check_methods_sample_order_invariance": f"{_TABLE} -> test_sequences_are_independent",
    "check_methods_subset_invariance": f"{_TABLE} -> test_sequences_are_independent",
    "check_fit2d_1sample": f"{_TABLE} -> test_bad_data_is_refused_by_name",
    "check_fit2d_1feature": f"{_TABLE} -> test_several_outputs",
    "check_dict_unchanged": f"{_TABLE} -> test_fit_changes_no_parameter",
    "check_fit_idempotent": f"{_TABLE} -> test_fit_is_idempotent",
    "check_fit_check_is_fitted": f"{_TABLE} -> test_fit_returns_self",
    "check_n_features_in": f"{_TABLE} -> test_fit_returns_self",
    "check_fit2d_predict1d": f"{_TABLE} -> test_bad_data_is_refused_by_name",
    "check_sample_weights_shape": f"{_TABLE} -> test_sample_weight_per_sequence",
    "check_sample_weight_equivalence_on_dense_data": (
        f"{_TABLE} -> test_sample_weight_per_sequence"
    ),
    "check_sample_weights_pandas_series": f"{_TABLE} -> test_sample_weight_per_sequence",
    "check_sample_weights_not_an_array": f"{_TABLE} -> test_sample_weight_per_sequence",
    "check_sample_weights_not_overwritten": f"{_TABLE} -> test_sample_weight_per_sequence",
    "check_all_zero_sample_weights_error": f"{_TABLE} -> test_sample_weight_per_sequence",
    "check_sample_weights_list": f"{_TABLE} -> test_sample_weight_per_sequence",
}


def _name(check):
    """The name of a check, under the partials that bind its arguments."""
    while isinstance(check, partial):
        check = check.func
    return check.__name__


def _every_check():
    """Every check that check_estimator runs on a regressor of tables: {name: function}.

    RNNRegressor's tags say that X is 3-D, for which check_estimator runs no
    check but the first; a copy whose tags say "tables" lists them all.
    """

    class Tabular(RNNRegressor):
        def __sklearn_tags__(self):
            tags = super().__sklearn_tags__()
            tags.input_tags.two_d_array = True
            return tags

    checks = {}
    for _, check in estimator_checks.estimator_checks_generator(Tabular(random_state=0)):
        checks.setdefault(_name(check), check.func if isinstance(check, partial) else check)
    return checks


def test_every_check_is_run_or_said_not_to_apply():
    names = set(_every_check())
    assert not APPLICABLE & set(NOT_APPLICABLE)
    # a check that a new scikit-learn adds is put in one list or the other
    assert names <= APPLICABLE | set(NOT_APPLICABLE)
    # and this one runs on a regressor every check of APPLICABLE it has
    assert {name for name in APPLICABLE if hasattr(estimator_checks, name)} <= names


def test_check_estimator_runs_only_the_first_check_on_sequences():
    # why the checks are chosen by hand: the tags say X is 3-D
    tags = RNNRegressor().__sklearn_tags__()
    assert (tags.input_tags.two_d_array, tags.input_tags.three_d_array) == (False, True)
    checks = estimator_checks.estimator_checks_generator(RNNRegressor())
    with pytest.warns(SkipTestWarning, match="Can't test estimator RNNRegressor"):
        names = [_name(c) for _, c in checks]
    assert names == ["check_estimator_cloneable"]


@pytest.mark.parametrize("name", sorted(APPLICABLE))
def test_applicable_sklearn_check(name):
    check = getattr(estimator_checks, name, None)
    if check is None:  # pragma: no cover - an older scikit-learn
        pytest.skip(f"scikit-learn {sklearn.__version__} has no {name}")
    check("RNNRegressor", small())


# ---------------------------------------------------------------------- its parameters


def test_every_option_of_the_model_and_of_fit_is_a_parameter():
    params = RNNRegressor().get_params()
    assert set(params) == {"hidden_size", "random_state", *MODEL_OPTIONS, *FIT_OPTIONS}
    assert set(PARTIAL_FIT_OPTIONS) <= set(params)
    # with the defaults of RNN and RNN.fit
    for function, names in ((crnn.RNN.__init__, MODEL_OPTIONS), (crnn.RNN.fit, FIT_OPTIONS)):
        defaults = inspect.signature(function).parameters
        for name in names:
            assert params[name] is defaults[name].default or params[name] == defaults[name].default


def test_random_state_gives_the_model_of_crnn_rnn_bit_for_bit(data):
    X, y = data
    reg = small(bias=True, batch_size=4, validation_fraction=0.25).fit(X, y)
    rnn = crnn.RNN(2, 4, 1, seed=0, bias=True)
    rnn.fit(X, y, epochs=5, seed=0, batch_size=4, validation_fraction=0.25)
    for name, value in rnn.parameters().items():
        np.testing.assert_array_equal(reg.model_.parameters()[name], value)
    assert reg.loss_curve_ == rnn.loss_curve_
    assert reg.validation_scores_ == rnn.validation_scores_
    np.testing.assert_array_equal(reg.predict(X), rnn.predict(X))


def test_a_bad_parameter_is_refused_by_name_at_fit(data):
    X, y = data
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        small(epochs=0).fit(X, y)
    with pytest.raises(ValueError, match="hidden_size must be an integer >= 1"):
        small(hidden_size=0).fit(X, y)
    with pytest.raises(TypeError, match="random_state must be None, an int >= 0"):
        small(random_state="a").fit(X, y)


# ---------------------------------------------------------------------- fit, predict, score


def test_fit_returns_self(data):
    X, y = data
    reg = small()
    with pytest.raises(NotFittedError):
        reg.predict(X)
    assert reg.fit(X, y) is reg
    assert isinstance(reg.model_, crnn.RNN)
    assert (reg.n_features_in_, reg.n_iter_, len(reg.loss_curve_)) == (2, 5, 5)
    assert reg.predict(X).shape == (12, 15, 1)


def test_fit_and_score_take_y(data):
    X, y = data
    reg = small().fit(X, y)
    pred = reg.predict(X)
    # R² over every predicted value
    assert reg.score(X, y) == pytest.approx(r2_score(y.ravel(), pred.ravel()), rel=1e-12)
    w = np.arange(12.0)
    expected = r2_score(y.ravel(), pred.ravel(), sample_weight=np.repeat(w, 15))
    assert reg.score(X, y, sample_weight=w) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match=r"sample_weight must hold one weight per sequence"):
        reg.score(X, y, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match=r"y must have the shape of the predictions of X"):
        reg.score(X, y[:, :-1])


def test_fit_changes_no_parameter(data):
    X, y = data
    reg = small(init="orthogonal", spectral_radius=0.9, random_state=np.random.default_rng(3))
    before = reg.get_params()
    reg.fit(X, y)
    after = reg.get_params()
    assert after.keys() == before.keys()
    for key, value in before.items():
        assert after[key] is value
    public = {k for k in vars(reg) if not k.startswith("_")}
    assert public == set(before) | {"model_", "n_features_in_"}


def test_fit_is_idempotent(data):
    X, y = data
    reg = small(batch_size=3)
    first = reg.fit(X, y).predict(X)
    np.testing.assert_array_equal(reg.fit(X, y).predict(X), first)
    np.testing.assert_array_equal(clone(reg).fit(X, y).predict(X), first)


def test_warm_start_continues_the_model(data):
    X, y = data
    reg = small(warm_start=True).fit(X, y)
    model = reg.model_
    reg.fit(X, y)
    assert reg.model_ is model
    assert reg.n_iter_ == 10
    reg.set_params(n_threads=1)
    assert reg.fit(X, y).model_ is model
    assert (reg.n_iter_, model.n_threads) == (15, 1)
    # a model of other parameters, or data of other sizes: a new model
    for change in ({"hidden_size": 3}, {"bias": True}, {"dtype": np.float32}):
        again = small(warm_start=True).fit(X, y)
        first = again.model_
        again.set_params(**change).fit(X, y)
        assert again.model_ is not first
        assert again.n_iter_ == 5
    assert reg.fit(X[..., :1], y).model_ is not model
    cold = small().fit(X, y)
    first = cold.model_
    assert cold.fit(X, y).model_ is not first
    assert cold.n_iter_ == 5


def test_partial_fit(data):
    X, y = data
    reg = small()
    assert reg.partial_fit(X, y) is reg
    assert reg.partial_fit(X, y).n_iter_ == 2
    rnn = crnn.RNN(2, 4, 1, seed=0)
    rnn.partial_fit(X, y)
    rnn.partial_fit(X, y)
    np.testing.assert_array_equal(reg.model_.W, rnn.W)
    with pytest.raises(ValueError, match="X must have 2 features in its last axis"):
        reg.partial_fit(X[..., :1], y)


def test_n_features_in_is_checked(data):
    X, y = data
    reg = small().fit(X, y)
    with pytest.raises(ValueError, match="X must have 2 features in its last axis"):
        reg.predict(np.zeros((3, 15, 4)))


def test_several_outputs(rng):
    X = rng.normal(size=(6, 10, 1))
    y = np.concatenate([X, -X, 2 * X], axis=-1)
    reg = small().fit(X, y)
    assert reg.model_.output_size == 3
    assert reg.predict(X).shape == (6, 10, 3)


def test_it_learns(rng):
    X = rng.normal(size=(80, 15, 2))
    y = np.cumsum(X[..., :1], axis=1) / 4
    reg = RNNRegressor(hidden_size=8, epochs=150, lr=0.02, random_state=0).fit(X[:60], y[:60])
    assert reg.score(X[60:], y[60:]) > 0.95  # on sequences it has not seen


def test_sequences_are_independent(data):
    X, y = data
    reg = small().fit(X, y)
    pred = reg.predict(X)
    order = np.random.default_rng(1).permutation(len(X))
    np.testing.assert_array_equal(reg.predict(X[order]), pred[order])
    for i in (0, 5):
        np.testing.assert_array_equal(reg.predict(X[i : i + 1]), pred[i : i + 1])


# ---------------------------------------------------------------------- the data it takes


def test_lists_and_arrays_agree(data):
    # a list's gradient is its sequences' added one by one (the batch's adds
    # them in another order): the same training to rounding
    X, y = data
    reg = small().fit(X, y)
    listed = small().fit(list(X), list(y))
    np.testing.assert_allclose(listed.model_.W, reg.model_.W, rtol=1e-8, atol=1e-10)
    np.testing.assert_array_equal(listed.predict(list(X)), listed.predict(X))
    assert listed.score(list(X), list(y)) == listed.score(X, y)
    assert listed.score(list(X), list(y)) == pytest.approx(reg.score(X, y), rel=1e-8)
    nested = small().fit(X.tolist(), y.tolist())
    np.testing.assert_array_equal(nested.model_.W, reg.model_.W)


def test_integer_and_float32_inputs(data):
    X, y = data
    Xi, yi = np.round(X * 3).astype(np.int64), np.round(y * 3).astype(np.int32)
    reg = small().fit(Xi, yi)
    np.testing.assert_array_equal(
        reg.model_.W, small().fit(Xi.astype(float), yi.astype(float)).model_.W
    )
    reg32 = small(dtype=np.float32).fit(X, y)
    assert reg32.model_.dtype == np.float32
    assert reg32.predict(X).dtype == np.float32


def test_read_only_and_fortran_inputs(data):
    X, y = data
    expected = small().fit(X, y).predict(X)
    Xr, yr = X.copy(), y.copy()
    Xr.flags.writeable = yr.flags.writeable = False
    np.testing.assert_array_equal(small().fit(Xr, yr).predict(Xr), expected)
    Xf, yf = np.asfortranarray(X), np.asfortranarray(y)
    np.testing.assert_array_equal(small().fit(Xf, yf).predict(Xf), expected)


def test_bad_data_is_refused_by_name(data):
    X, y = data
    reg = small()
    cases = [
        (X[0], y[0], ValueError, r"^X must be 3-D, got 2-D .*X\[np.newaxis\] for one sequence"),
        (
            X,
            y[..., 0],
            ValueError,
            r"^y must be 3-D, got 2-D .*y\[..., np.newaxis\] for one output",
        ),
        (X[:, :, 0].ravel(), y, ValueError, r"^X must be 3-D, got 1-D"),
        (X, y[:-1], ValueError, r"^X and y must hold as many sequences, got 12 and 11"),
        (X, y[:, :-1], ValueError, r"^y must have the sequences and steps of X"),
        (X[:0], y[:0], ValueError, r"^X must hold at least one sequence"),
        (X[:, :0], y[:, :0], ValueError, r"^X must have at least one time step"),
        (X, None, ValueError, r"requires y to be passed"),
        (X.astype(complex), y, TypeError, r"^X must be real; got complex"),
        (X.astype(object), y, TypeError, r"^X must be an array of real numbers, got dtype object"),
        ([X[0], X[1], X[2, :, :1]], list(y[:3]), ValueError, r"^X\[2\] must have the 2 features"),
        (list(X[:2]), [y[0], y[1, :-1]], ValueError, r"^y\[1\] must have the 15 steps of X\[1\]"),
    ]
    nan, inf = X.copy(), y.copy()
    nan[3, 4, 1], inf[2, 1, 0] = np.nan, np.inf
    cases += [
        (nan, y, ValueError, r"^X must contain only finite values; found nan at index \(3, 4, 1\)"),
        (X, inf, ValueError, r"^target must contain only finite values; found inf"),
    ]
    scipy_sparse = pytest.importorskip("scipy.sparse")
    cases.append(
        (scipy_sparse.csr_matrix(X[0]), y, TypeError, "X must be an array of real numbers")
    )
    for Xb, yb, error, message in cases:
        with pytest.raises(error, match=message):
            reg.fit(Xb, yb)
    assert not hasattr(reg, "model_")
    reg.fit(X, y)
    with pytest.raises(ValueError, match=r"^X must be 3-D, got 2-D"):
        reg.predict(X[0])


def test_pandas_sequences(data):
    pd = pytest.importorskip("pandas")
    X, y = data
    reg = small().fit(X[..., :1], y)
    listed = small().fit([pd.Series(x[:, 0]) for x in X], [pd.DataFrame(t) for t in y])
    # a list of sequences: the same training to rounding (see test_lists_and_arrays_agree)
    np.testing.assert_allclose(listed.model_.W, reg.model_.W, rtol=1e-8, atol=1e-10)
    pred = listed.predict([pd.Series(x[:, 0]) for x in X])
    assert type(pred) is list
    np.testing.assert_array_equal(np.stack(pred), listed.predict(X[..., :1]))


# ---------------------------------------------------------------------- with scikit-learn's tools


def test_pickle_and_clone(data):
    X, y = data
    reg = small(bias=True).fit(X, y)
    again = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(again.predict(X), reg.predict(X))
    fresh = clone(reg)
    assert not hasattr(fresh, "model_")
    assert fresh.get_params() == reg.get_params()


def test_pipeline_grid_search_cross_validation(data):
    X, y = data
    pipe = make_pipeline(FunctionTransformer(lambda a: a / 2), small())
    pred = pipe.fit(X, y).predict(X)
    np.testing.assert_array_equal(pred, small().fit(X / 2, y).predict(X / 2))
    cv = KFold(3)
    scores = cross_val_score(small(), X, y, cv=cv)
    expected = [
        small().fit(X[train], y[train]).score(X[test], y[test]) for train, test in cv.split(X)
    ]
    np.testing.assert_array_equal(scores, expected)
    np.testing.assert_allclose(cross_val_score(small(), list(X), list(y), cv=cv), scores, rtol=1e-8)
    search = GridSearchCV(small(), {"hidden_size": [2, 4], "bias": [False, True]}, cv=cv)
    search.fit(X, y)
    assert set(search.best_params_) == {"hidden_size", "bias"}
    assert search.best_estimator_.predict(X).shape == y.shape


def test_sample_weight_per_sequence(data):
    X, y = data
    N = len(X)
    # unit weights change nothing; the weights are not changed
    w = np.ones(N)
    np.testing.assert_array_equal(
        small().fit(X, y, sample_weight=w).model_.W, small().fit(X, y).model_.W
    )
    np.testing.assert_array_equal(w, 1)
    # a weight of 2 is the sequence counted twice; 0 leaves it out (to rounding)
    w = np.ones(N)
    w[0], w[1] = 2, 0
    kw = {"shuffle": False, "epochs": 5}
    weighted = small(**kw).fit(X, y, sample_weight=w)
    rows = [0, 0, *range(2, N)]
    repeated = small(**kw).fit(X[rows], y[rows])
    np.testing.assert_allclose(weighted.model_.W, repeated.model_.W, rtol=1e-9, atol=1e-12)
    # a list of weights, and a list of sequences
    listed = small(**kw).fit(list(X), list(y), sample_weight=list(w))
    np.testing.assert_allclose(listed.model_.W, weighted.model_.W, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match=r"sample_weight must hold one weight per sequence"):
        small().fit(X, y, sample_weight=np.ones(N + 1))
    with pytest.raises(ValueError, match="sample_weight must have a weight > 0"):
        small().fit(X, y, sample_weight=np.zeros(N))
