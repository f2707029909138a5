"""Save and load: round trips bit for bit, atomic writes, and every kind of bad file."""

import copy
import hashlib
import json
import os
import pickle
import stat
import zipfile

import numpy as np
import pytest

import crnn
from crnn import _io

N, T, n, d, m = 3, 7, 3, 5, 2
META = _io.METADATA_KEY


def make_rnn(dtype=np.float64, **kw):
    return crnn.RNN(n, d, m, dtype=dtype, seed=0, **kw)


def data(rng):
    return rng.normal(size=(N, T, n)), rng.normal(size=(N, T, m)), rng.uniform(-0.5, 0.5, d)


def read_entries(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def metadata(entries):
    return json.loads(str(entries[META][()]))


def write_entries(path, entries, meta=None, rehash=True):
    """Write an archive of the given entries (numpy.savez), fixing the checksums."""
    entries = dict(entries)
    meta = metadata(entries) if meta is None else meta
    if rehash and isinstance(meta, dict) and isinstance(meta.get("arrays"), dict):
        for name, info in meta["arrays"].items():
            if name in entries and isinstance(info, dict):
                arr = np.ascontiguousarray(entries[name])
                info["sha256"] = hashlib.sha256(arr.tobytes()).hexdigest()
                info["shape"] = list(arr.shape)
    entries[META] = np.array(json.dumps(meta))
    np.savez(path, **entries)


@pytest.fixture
def saved(tmp_path):
    """A float64 model saved to tmp_path / "model.npz", and its entries."""
    rnn = make_rnn(n_threads=1)
    path = tmp_path / "model.npz"
    crnn.save(rnn, path)
    return rnn, path, read_entries(path)


# ---------------------------------------------------------------------- round trips


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_threads", [None, 1, -1, 3])
def test_loaded_model_predicts_bit_for_bit(tmp_path, rng, dtype, n_threads, bias):
    rnn = make_rnn(dtype, n_threads=n_threads, bias=bias)
    X, target, s0 = data(rng)
    rnn.W[...] += rng.normal(scale=0.1, size=(d, d))  # not just the seed's weights
    rnn.V[0, 0] = -0.0  # a signed zero survives too
    keys = ("U", "W", "V", "b", "c") if bias else ("U", "W", "V")
    if bias:
        rnn.c[...] += rng.normal(size=m)
        rnn.b[0] = -0.0
    path = tmp_path / "model.npz"
    assert crnn.save(rnn, path) == str(path)
    back = crnn.load(path)
    assert type(back) is crnn.RNN
    assert repr(back) == repr(rnn)
    assert back.dtype == np.dtype(dtype)
    assert back.n_threads == n_threads
    assert back.bias is bias
    if not bias:
        assert back.b is None
        assert back.c is None
    for k in keys:
        a, b = getattr(rnn, k), getattr(back, k)
        assert b.dtype == a.dtype
        np.testing.assert_array_equal(b, a)
        assert b.tobytes() == a.tobytes()  # bit for bit, signed zeros included
    for args in ((X,), (X, s0), (X[0],)):
        for out_a, out_b in zip(rnn.forward(*args), back.forward(*args), strict=True):
            assert out_a.tobytes() == out_b.tobytes()
    assert back.loss(X, target, s0) == rnn.loss(X, target, s0)
    G, H = rnn.gradient(X, target, s0), back.gradient(X, target, s0)
    for k in (*keys, "s0"):
        assert getattr(G, k).tobytes() == getattr(H, k).tobytes()


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_copy_keeps_the_parameters_bit_for_bit(rng, tmp_path, dtype, bias):
    rnn = make_rnn(dtype, bias=bias)
    keys = ("U", "W", "V", "b", "c") if bias else ("U", "W", "V")
    if bias:
        rnn.b[...] = rng.normal(scale=0.7, size=d)
        rnn.c[...] = rng.normal(scale=1.5, size=m)
    X, _, s0 = data(rng)
    path = tmp_path / "model.npz"
    rnn.save(path)
    Y = rnn.predict(X, s0)
    clones = {
        "load": crnn.load(path),
        "RNN.load": crnn.RNN.load(path),
        "pickle": pickle.loads(pickle.dumps(rnn)),
        "deepcopy": copy.deepcopy(rnn),
    }
    for how, clone in clones.items():
        assert clone.bias is bias, how
        assert clone.dtype == dtype, how
        if not bias:
            assert clone.b is None, how
            assert clone.c is None, how
        for key in keys:
            got, want = getattr(clone, key), getattr(rnn, key)
            assert got.dtype == want.dtype, (how, key)
            np.testing.assert_array_equal(got, want, err_msg=f"{how} {key}")
        np.testing.assert_array_equal(clone.predict(X, s0), Y, err_msg=how)
    # the copies own their parameters
    for clone in clones.values():
        for key in keys:
            getattr(clone, key)[0] += 1.0
    np.testing.assert_array_equal(rnn.predict(X, s0), Y)


def test_method_forms_and_subclasses(tmp_path, rng):
    class MyRNN(crnn.RNN):
        pass

    rnn = make_rnn(np.float32)
    path = tmp_path / "m.npz"
    assert rnn.save(path) == str(path)
    back = crnn.RNN.load(path)
    assert type(back) is crnn.RNN
    sub = MyRNN.load(str(path))
    assert type(sub) is MyRNN
    X = rng.normal(size=(T, n))
    np.testing.assert_array_equal(sub.predict(X), rnn.predict(X))


def test_loaded_weights_are_independent_writable_arrays(saved, rng):
    rnn, path, _ = saved
    a, b = crnn.load(path), crnn.load(path)
    assert a.W.flags.writeable
    assert a.W.flags.c_contiguous
    a.W[0, 0] += 1.0
    assert b.W[0, 0] == rnn.W[0, 0]
    assert crnn.load(path).W[0, 0] == rnn.W[0, 0]


def test_loaded_models_pickle_and_deepcopy(saved, rng):
    rnn, path, _ = saved
    back = crnn.load(path)
    X = rng.normal(size=(N, T, n))
    for clone in (pickle.loads(pickle.dumps(back)), copy.deepcopy(back)):
        assert clone.n_threads == 1
        np.testing.assert_array_equal(clone.predict(X), rnn.predict(X))


def test_the_file_is_plain_npz_with_documented_metadata(saved):
    rnn, path, entries = saved
    assert zipfile.is_zipfile(path)
    assert list(entries) == [META, "U", "W", "V"]
    meta = metadata(entries)
    assert meta["format"] == "crnn.RNN"
    assert meta["format_version"] == _io.FORMAT_VERSION == 1
    assert isinstance(meta["format_version"], int)
    assert meta["crnn_version"] == crnn.__version__
    assert (meta["input_size"], meta["hidden_size"], meta["output_size"]) == (n, d, m)
    assert meta["dtype"] == "float64"
    assert meta["options"] == {"n_threads": 1}
    assert meta["arrays"]["W"]["shape"] == [d, d]
    for k in "UWV":
        np.testing.assert_array_equal(entries[k], getattr(rnn, k))
        assert meta["arrays"][k]["sha256"] == hashlib.sha256(entries[k].tobytes()).hexdigest()
    with zipfile.ZipFile(path) as zf:  # uncompressed, no pickle anywhere
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())


def test_saving_the_same_model_twice_gives_identical_files(tmp_path):
    rnn = make_rnn()
    crnn.save(rnn, tmp_path / "a.npz")
    crnn.save(copy.deepcopy(rnn), tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


# ---------------------------------------------------------------------- paths


def test_the_exact_path_is_written_with_or_without_suffix(tmp_path, rng):
    rnn = make_rnn()
    for name in ("model", "model.npz", "model.bin"):
        crnn.save(rnn, tmp_path / name)
    assert sorted(os.listdir(tmp_path)) == ["model", "model.bin", "model.npz"]
    X = rng.normal(size=(T, n))
    for name in ("model", "model.npz", "model.bin"):
        np.testing.assert_array_equal(crnn.load(tmp_path / name).predict(X), rnn.predict(X))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        crnn.load(tmp_path / "nothing.npz")
    assert info.value.filename == str(tmp_path / "nothing.npz")
    crnn.save(make_rnn(), tmp_path / "model.npz")
    with pytest.raises(FileNotFoundError, match=r"but '.*model\.npz' exists"):
        crnn.load(tmp_path / "model")


def test_save_replaces_and_keeps_permissions(tmp_path, rng):
    path = tmp_path / "model.npz"
    crnn.save(make_rnn(), path)
    os.chmod(path, 0o600)
    other = crnn.RNN(n, d, m, seed=1)
    crnn.save(other, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    np.testing.assert_array_equal(crnn.load(path).W, other.W)
    assert os.listdir(tmp_path) == ["model.npz"]


def test_new_file_gets_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        crnn.save(make_rnn(), tmp_path / "model.npz")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "model.npz").st_mode) == 0o644


def test_save_through_a_symlink_replaces_its_target(tmp_path):
    real = tmp_path / "real.npz"
    crnn.save(make_rnn(), real)
    link = tmp_path / "link.npz"
    link.symlink_to(real)
    other = crnn.RNN(n, d, m, seed=2)
    crnn.save(other, link)
    assert link.is_symlink()
    np.testing.assert_array_equal(crnn.load(real).W, other.W)


# ---------------------------------------------------------------------- atomicity


class Boom(Exception):
    pass


def _fail_mid_archive(monkeypatch, exc):
    """Make the second array's write fail halfway through its bytes."""
    original = np.lib.format.write_array
    calls = []

    def write_array(fp, array, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # metadata, U, then W
            fp.write(b"\x00" * (array.nbytes // 2))
            raise exc
        return original(fp, array, *args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", write_array)


def _fail_fsync(monkeypatch, exc):
    def fsync(fd):
        raise exc

    monkeypatch.setattr(os, "fsync", fsync)


def _fail_replace(monkeypatch, exc):
    def replace(src, dst):
        assert os.path.getsize(src) > 0  # the complete temporary file exists
        raise exc

    monkeypatch.setattr(os, "replace", replace)


@pytest.mark.parametrize("where", [_fail_mid_archive, _fail_fsync, _fail_replace])
@pytest.mark.parametrize(
    "exc", [OSError(28, "No space left on device"), KeyboardInterrupt(), Boom()]
)
def test_a_failed_save_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch, where, exc):
    path = tmp_path / "model.npz"
    first = make_rnn()
    crnn.save(first, path)
    before = path.read_bytes()
    where(monkeypatch, exc)
    with pytest.raises(type(exc)):
        crnn.save(crnn.RNN(n, d, m, seed=9), path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["model.npz"]
    assert path.read_bytes() == before
    np.testing.assert_array_equal(crnn.load(path).W, first.W)


@pytest.mark.parametrize("where", [_fail_mid_archive, _fail_fsync, _fail_replace])
def test_a_failed_first_save_leaves_nothing(tmp_path, monkeypatch, where):
    where(monkeypatch, Boom())
    with pytest.raises(Boom):
        crnn.save(make_rnn(), tmp_path / "model.npz")
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


def test_save_into_a_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        crnn.save(make_rnn(), tmp_path / "no" / "model.npz")
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------- bad arguments to save


def test_save_refuses_bad_arguments(tmp_path):
    rnn = make_rnn()
    with pytest.raises(TypeError, match=r"model must be a crnn\.RNN"):
        crnn.save("not a model", tmp_path / "m.npz")
    with pytest.raises(TypeError, match="path"):
        crnn.save(rnn, 123)
    with pytest.raises(TypeError, match="path"):
        crnn.save(rnn, None)
    with pytest.raises(TypeError, match="path"):
        crnn.save(rnn, b"m.npz")
    with pytest.raises(ValueError, match="path must not be empty"):
        crnn.save(rnn, "")
    with pytest.raises(TypeError, match="path"):
        crnn.load(3.5)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_save_refuses_non_finite_weights(tmp_path, value):
    rnn = make_rnn()
    rnn.W[1, 2] = value
    with pytest.raises(ValueError, match="array W holds NaN or infinity"):
        crnn.save(rnn, tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []


def test_save_refuses_a_weight_reshaped_in_place(tmp_path):
    rnn = crnn.RNN(2, 4, 2, seed=0)
    rnn.W.shape = (2, 8)
    with pytest.raises(ValueError, match="W has shape"):
        crnn.save(rnn, tmp_path / "m.npz")


# ---------------------------------------------------------------------- bad files


def expect_bad(path, *fragments):
    with pytest.raises(ValueError, match="cannot load a crnn model from") as info:
        crnn.load(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "empty or too short"),
        (b"PK", "empty or too short"),
        (b"hello, this is text\n", "not an .npz"),
        (bytes(range(256)) * 4, "not an .npz"),
        (b"PK\x03\x04" + b"\x00" * 100, "truncated or damaged"),
    ],
)
def test_files_that_are_not_archives(tmp_path, content, fragment):
    path = tmp_path / "model.npz"
    path.write_bytes(content)
    expect_bad(path, fragment)


def test_a_npy_file(tmp_path):
    path = tmp_path / "model.npy"
    np.save(path, np.zeros(3))
    expect_bad(path, "a .npy array")


def test_foreign_npz_files(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, x=np.arange(3), y=np.zeros((2, 2)))
    expect_bad(path, "not a crnn model file", "crnn_metadata", "x, y")
    np.savez(path)  # an empty archive
    expect_bad(path, "not a crnn model file")
    np.savez(path, crnn_metadata=np.arange(3))
    expect_bad(path, "not a JSON string")
    np.savez(path, crnn_metadata=np.array('{"format": "someone.else"}'))
    expect_bad(path, "not a crnn model file")


@pytest.mark.parametrize("keep", [0.05, 0.3, 0.5, 0.8, 0.99, -1])
def test_truncated_files(saved, keep):
    _, path, _ = saved
    raw = path.read_bytes()
    cut = len(raw) - 1 if keep == -1 else int(len(raw) * keep)
    path.write_bytes(raw[:cut])
    expect_bad(path)


@pytest.mark.parametrize("array", ["U", "W", "V", "metadata"])
def test_a_flipped_byte_is_detected(saved, array):
    rnn, path, entries = saved
    raw = bytearray(path.read_bytes())
    if array == "metadata":
        needle = str(entries[META][()]).encode("utf-32-le")
    else:
        needle = getattr(rnn, array).tobytes()
    at = raw.find(needle)
    assert at > 0
    raw[at + len(needle) // 2] ^= 0x10
    path.write_bytes(bytes(raw))
    expect_bad(path)


def test_a_changed_value_with_a_valid_zip_is_caught_by_the_checksum(saved):
    _, path, entries = saved
    entries["W"] = entries["W"].copy()
    entries["W"][0, 0] += 1e-12
    write_entries(path, entries, rehash=False)
    expect_bad(path, "array 'W' is damaged: its checksum does not match")


def test_the_helper_writes_loadable_files(saved):
    # the tampering helper itself, unchanged, gives a good file
    rnn, path, entries = saved
    write_entries(path, entries)
    np.testing.assert_array_equal(crnn.load(path).V, rnn.V)


def _tamper(saved, change):
    _, path, entries = saved
    meta = metadata(entries)
    change(entries, meta)
    write_entries(path, entries, meta)
    return path


def _set_meta(key, value):
    def change(entries, meta):
        meta[key] = value

    return change


def _del_meta(key):
    def change(entries, meta):
        del meta[key]

    return change


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        (
            _set_meta("format_version", 2),
            (
                "format version 2, newer than this crnn reads",
                "reads format versions 1 to 1",
                "upgrade crnn",
            ),
        ),
        (_set_meta("format_version", 99), ("format version 99", "upgrade")),
        (_set_meta("format_version", 0), ("unknown format version 0", "1 to 1")),
        (_set_meta("format_version", -3), ("unknown format version -3",)),
        (_set_meta("format_version", "1"), ("unknown format version '1'",)),
        (_set_meta("format_version", 1.5), ("unknown format version 1.5",)),
        (_set_meta("format_version", True), ("unknown format version True",)),
        (_del_meta("format_version"), ("unknown format version None",)),
        (_del_meta("format"), ("not a crnn model file",)),
        (_set_meta("hidden_size", 0), ("'hidden_size' must be a positive integer",)),
        (_set_meta("input_size", "3"), ("'input_size' must be a positive integer",)),
        (_del_meta("output_size"), ("no 'output_size' field",)),
        (_set_meta("dtype", "float16"), ("'dtype' must be one of",)),
        (_set_meta("dtype", "float32"), ("dtype float64, not the model's float32",)),
        (_set_meta("options", []), ("'options' must be a JSON object",)),
        (_set_meta("options", {"n_threads": 0}), ("n_threads",)),
        (
            _set_meta("options", {"n_threads": 1, "bias": True}),
            ("options ['bias']", "cannot restore"),
        ),
        (_set_meta("arrays", None), ("'arrays' must be a JSON object",)),
        (_set_meta("hidden_size", d + 1), ("array 'U' has shape (5, 3), expected (6, 3)",)),
    ],
)
def test_bad_metadata(saved, change, fragments):
    expect_bad(_tamper(saved, change), *fragments)


def test_metadata_that_is_not_json(saved):
    _, path, entries = saved
    entries = dict(entries)
    entries[META] = np.array("{not json")
    np.savez(path, **entries)
    expect_bad(path, "not valid JSON")
    entries[META] = np.array("[1, 2]")
    np.savez(path, **entries)
    expect_bad(path, "not a crnn model file")


def test_missing_array(saved):
    def drop(entries, meta):
        del entries["W"]

    expect_bad(_tamper(saved, drop), "missing array 'W'")


def test_array_not_listed(saved):
    def unlist(entries, meta):
        del meta["arrays"]["V"]

    expect_bad(_tamper(saved, unlist), "lists no array 'V'")


def test_unlisted_entry(saved):
    def add(entries, meta):
        entries["extra"] = np.zeros(2)

    expect_bad(_tamper(saved, add), "entries the metadata does not list: ['extra']")


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("W", np.zeros((d, d + 1)), "array 'W' has shape (5, 6), expected (5, 5)"),
        ("V", np.zeros((m + 1, d)), "array 'V' has shape (3, 5), expected (2, 5)"),
        ("U", np.zeros(d * n), "array 'U' has shape (15,)"),
        ("U", np.zeros((d, n), np.float32), "array 'U' has dtype float32"),
        ("U", np.zeros((d, n), np.int64), "array 'U' has dtype int64"),
        ("W", np.full((d, d), np.nan), "array 'W' holds NaN or infinity"),
        ("V", np.full((m, d), -np.inf), "array 'V' holds NaN or infinity"),
    ],
)
def test_bad_arrays(saved, name, value, fragment):
    def change(entries, meta):
        entries[name] = value

    expect_bad(_tamper(saved, change), fragment)


def test_pickled_entry_is_refused_without_unpickling(saved):
    _, path, entries = saved
    entries = dict(entries)
    entries["W"] = np.array([{"a": 1}], dtype=object)
    np.savez(path, **entries)
    expect_bad(path, "pickled")


def test_an_array_this_crnn_cannot_restore(saved):
    def add_array(entries, meta):
        entries["gate"] = np.zeros(d)
        meta["arrays"]["gate"] = {"shape": [d]}

    expect_bad(_tamper(saved, add_array), "arrays ['gate']", "cannot restore")


def test_one_bias_without_the_other_is_refused(saved):
    def add_bias(entries, meta):
        entries["b"] = np.zeros(d)
        meta["arrays"]["b"] = {"shape": [d]}

    expect_bad(_tamper(saved, add_bias), "only one of the biases")


def test_bad_array_names(saved):
    def bad_name(entries, meta):
        meta["arrays"]["not a name"] = {"shape": [1]}

    expect_bad(_tamper(saved, bad_name), "invalid array name")


# ---------------------------------------------------------------------- the model's side


class GainRNN(crnn.RNN):
    """A model with one more array and one more option, through _to_file and _from_file."""

    def _to_file(self):
        arrays = {"U": self.U, "W": self.W, "V": self.V, "gain": self.gain}
        return arrays, {"n_threads": self.n_threads, "note": self.note}

    @classmethod
    def _from_file(cls, arrays, options, dtype):
        if arrays["gain"].shape != (arrays["W"].shape[0],):
            raise ValueError(f"gain must have shape (d,), got {arrays['gain'].shape}")
        self = cls.from_weights(
            arrays["U"], arrays["W"], arrays["V"], dtype=dtype, n_threads=options["n_threads"]
        )
        self.gain = arrays["gain"].copy()
        self.note = options["note"]
        return self


def make_gain_rnn(dtype=np.float64):
    rnn = GainRNN.from_weights(*(getattr(make_rnn(dtype), k) for k in "UWV"))
    rnn.gain = np.linspace(-1, 1, d).astype(dtype)
    rnn.note = "hello"
    return rnn


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_hooks_save_and_restore_more_arrays_and_options(tmp_path, dtype):
    rnn = make_gain_rnn(dtype)
    path = tmp_path / "gain.npz"
    rnn.save(path)
    meta = metadata(read_entries(path))
    assert meta["options"] == {"n_threads": None, "note": "hello"}
    assert set(meta["arrays"]) == {"U", "W", "V", "gain"}
    back = GainRNN.load(path)
    assert type(back) is GainRNN
    assert back.note == "hello"
    assert back.gain.tobytes() == rnn.gain.tobytes()
    # the plain RNN refuses what it cannot restore
    expect_bad(path, "arrays ['gain']", "cannot restore")


def test_hook_refusals_and_faulty_hooks_name_the_file(tmp_path):
    rnn = make_gain_rnn()
    rnn.gain = np.zeros(d + 1)
    path = tmp_path / "gain.npz"
    rnn.save(path)
    with pytest.raises(ValueError, match="cannot be rebuilt: gain must have shape") as info:
        GainRNN.load(path)
    assert str(path) in str(info.value)

    class Forgetful(GainRNN):
        @classmethod
        def _from_file(cls, arrays, options, dtype):
            self = super()._from_file(arrays, options, dtype)
            self.gain = self.gain + 1  # not what was saved
            return self

    make_gain_rnn().save(path)
    with pytest.raises(ValueError, match="does not hold the saved arrays"):
        Forgetful.load(path)


def test_optional_biases_are_saved(tmp_path):
    # a model given only c has both biases (b at zeros): both are saved and restored
    plain = make_rnn()
    rnn = crnn.RNN.from_weights(plain.U, plain.W, plain.V, c=np.ones(m))
    path = tmp_path / "c.npz"
    crnn.save(rnn, path)
    assert set(metadata(read_entries(path))["arrays"]) == {"U", "W", "V", "b", "c"}
    back = crnn.load(path)
    assert back.bias
    assert back.c.tolist() == [1.0] * m
    assert not back.b.any()


def test_save_checks_the_hook_output(tmp_path):
    rnn = make_gain_rnn()
    rnn.gain = rnn.gain.astype(np.float32)
    with pytest.raises(ValueError, match="array gain has dtype float32"):
        rnn.save(tmp_path / "x.npz")
    rnn = make_gain_rnn()
    rnn.note = object()
    with pytest.raises(ValueError, match="options cannot be stored as JSON"):
        rnn.save(tmp_path / "x.npz")
    rnn = make_gain_rnn()
    rnn.note = float("nan")
    with pytest.raises(ValueError, match="options cannot be stored as JSON"):
        rnn.save(tmp_path / "x.npz")
    assert os.listdir(tmp_path) == []


def test_the_commands_data_scaling_is_saved(tmp_path):
    rnn = make_rnn()
    rnn.data_mean_, rnn.data_scale_ = np.arange(n, dtype=float), np.full(n, 2.0)
    path = tmp_path / "scaled.npz"
    rnn.save(path)
    back = crnn.load(path)
    np.testing.assert_array_equal(back.data_mean_, rnn.data_mean_)
    np.testing.assert_array_equal(back.data_scale_, rnn.data_scale_)
    rnn.data_mean_ = np.zeros(n + 1)
    rnn.save(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="data_mean_ must have shape"):
        crnn.load(tmp_path / "bad.npz")


# ---------------------------------------------------------------------- hostile and odd files


def _npy_bytes(array):
    import io

    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=False)
    return buf.getvalue()


def _zip(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _refused_with_a_small_peak(path, *fragments):
    """expect_bad(path, ...); return the peak bytes traced while load ran."""
    from helpers import fresh_thread_peak

    return fresh_thread_peak(lambda: expect_bad(path, *fragments))


def test_a_compressed_archive_is_refused(saved):
    _, path, entries = saved
    np.savez_compressed(path, **entries)
    expect_bad(path, "is compressed", "uncompressed")


def test_a_deflate_bomb_is_refused_without_inflating_it(saved):
    # 64 MiB of metadata (the JSON, then NULs, which numpy strips) in 64 KiB
    _, path, entries = saved
    text = str(entries[META][()])
    meta = np.zeros((), dtype=f"<U{16 * 2**20}")
    meta[()] = text
    members = {f"{k}.npy": _npy_bytes(v) for k, v in entries.items() if k != META}
    members = {f"{META}.npy": _npy_bytes(meta), **members}
    _zip(path, members, zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 2**20
    peak = _refused_with_a_small_peak(path, "is compressed")
    assert peak < 8 * 2**20, f"{peak / 2**20:.1f} MiB traced"


def _many_entries(path, count):
    """An archive of one empty entry, "0", that its central directory lists count times."""
    import struct

    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0x21, 0, 0, 0, 1, 0) + b"0"
    directory = bytearray()
    for i in range(count):
        name = b"%x" % i
        header = struct.pack(
            "<4s6H3L5H2L",
            b"PK\x01\x02",
            20,
            20,
            0,
            0,
            0,
            0x21,
            0,
            0,
            0,
            len(name),
            0,
            0,
            0,
            0,
            0,
            0,
        )
        directory += header + name
    listed = min(count, 0xFFFF)
    end = struct.pack(
        "<4s4H2LH", b"PK\x05\x06", 0, 0, listed, listed, len(directory), len(local), 0
    )
    path.write_bytes(local + bytes(directory) + end)


def test_an_archive_of_many_entries_is_refused_before_they_are_parsed(tmp_path):
    # zipfile would build an object for each: 200 000 in 10 MiB took 2.5 s and 108 MiB
    path = tmp_path / "model.npz"
    _many_entries(path, 50_000)
    peak = _refused_with_a_small_peak(path, "50000 entries", "at most 256")
    assert peak < 8 * 2**20, f"{peak / 2**20:.1f} MiB traced"


def test_an_entry_declaring_more_data_than_it_holds_is_refused(saved):
    # W's header says 2**40 values (8 TiB), the entry holds its 25: nothing is allocated
    import io

    _, path, entries = saved
    members = {f"{k}.npy": _npy_bytes(v) for k, v in entries.items()}
    header = np.lib.format.header_data_from_array_1_0(entries["W"])
    header["shape"] = (2**40,)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    members["W.npy"] = buf.getvalue() + entries["W"].tobytes()
    _zip(path, members)
    expect_bad(path, "entry 'W' is damaged", "declares 8796093022208 bytes")


def test_an_npy_of_a_version_crnn_never_writes_is_refused(saved):
    _, path, entries = saved
    members = {f"{k}.npy": _npy_bytes(v) for k, v in entries.items()}
    members["U.npy"] = members["U.npy"][:6] + b"\x03\x00" + members["U.npy"][8:]
    _zip(path, members)
    expect_bad(path, "entry 'U' is an .npy of version (3, 0)")


def test_deeply_nested_metadata_is_a_value_error(saved):
    _, path, entries = saved
    depth = 100_000  # far beyond the recursion limit
    entries[META] = np.array("[" * depth + "]" * depth)
    np.savez(path, **entries)
    expect_bad(path, "the metadata is not valid JSON")


def _name_max(directory):
    try:
        return os.pathconf(directory, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):  # pragma: no cover - not POSIX
        return 255


@pytest.mark.parametrize("kind", ["ascii", "utf-8"])
def test_save_to_a_name_as_long_as_the_system_allows(tmp_path, kind):
    limit = _name_max(tmp_path)  # in bytes
    stem = "m" * (limit - 4) if kind == "ascii" else "é" * ((limit - 4) // 2)  # 2 bytes each
    name = stem + ".npz"
    assert len(os.fsencode(name)) > limit - 18  # what the temporary name's suffix used to add
    rnn = make_rnn()
    crnn.save(rnn, tmp_path / name)
    assert os.listdir(tmp_path) == [name]
    np.testing.assert_array_equal(crnn.load(tmp_path / name).W, rnn.W)


def _fifo(tmp_path):
    os.mkfifo(tmp_path / "target")
    return tmp_path / "target", stat.S_ISFIFO


def _null_device(tmp_path):
    # a copy of /dev/null's node (char 1, 3), so that nothing outside tmp_path is at stake
    try:
        os.mknod(tmp_path / "target", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (PermissionError, AttributeError, OSError) as exc:
        pytest.skip(f"cannot make a device node here: {exc}")
    return tmp_path / "target", stat.S_ISCHR


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
@pytest.mark.parametrize("make", [_fifo, _null_device], ids=["fifo", "device"])
@pytest.mark.parametrize("through_a_symlink", [False, True])
def test_save_refuses_to_replace_a_device_or_fifo(tmp_path, make, through_a_symlink):
    target, is_kind = make(tmp_path)
    path = target
    if through_a_symlink:
        path = tmp_path / "link.npz"
        os.symlink(target, path)
    with pytest.raises(OSError, match=r"a FIFO|a character device") as info:
        crnn.save(make_rnn(), path)
    assert "only a regular file" in str(info.value)
    assert is_kind(os.stat(target).st_mode)  # still the node it was
    assert sorted(os.listdir(tmp_path)) == sorted({"target", os.path.basename(path)})


def test_save_refuses_a_directory(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a directory"):
        crnn.save(make_rnn(), tmp_path)
    assert os.listdir(tmp_path) == []


def test_the_checksums_are_of_the_bytes_written_while_another_thread_trains(tmp_path, monkeypatch):
    # a training step landing between the checksum and the write (made certain
    # here) used to give a file that load refused
    rnn = make_rnn()
    before = {k: v.copy() for k, v in rnn.parameters().items()}
    write_archive = _io._write_archive

    def a_step_lands(fileobj, entries):
        rnn.W[...] += 0.5  # what an optimizer step does, in place
        return write_archive(fileobj, entries)

    monkeypatch.setattr(_io, "_write_archive", a_step_lands)
    crnn.save(rnn, tmp_path / "model.npz")
    back = crnn.load(tmp_path / "model.npz")  # used to raise: W's checksum did not match
    for k, v in before.items():
        np.testing.assert_array_equal(getattr(back, k), v)  # the weights when save began


def test_the_saved_copy_is_what_was_checked_for_nan(tmp_path, monkeypatch):
    rnn = make_rnn()
    write_archive = _io._write_archive

    def poisoned(fileobj, entries):
        rnn.W[0, 0] = np.nan  # after the check: not in the file
        return write_archive(fileobj, entries)

    monkeypatch.setattr(_io, "_write_archive", poisoned)
    crnn.save(rnn, tmp_path / "model.npz")
    assert np.isfinite(crnn.load(tmp_path / "model.npz").W).all()


# ---------------------------------------------------------------------- overwrite=False


@pytest.mark.parametrize("save", [crnn.save, lambda rnn, p, **kw: rnn.save(p, **kw)])
def test_overwrite_false_never_replaces(tmp_path, save):
    path = tmp_path / "model.npz"
    path.write_bytes(b"someone else's")
    with pytest.raises(FileExistsError, match="not replaced"):
        save(make_rnn(), path, overwrite=False)
    assert path.read_bytes() == b"someone else's"
    assert os.listdir(tmp_path) == ["model.npz"]  # no temporary file left
    path.unlink()
    save(make_rnn(), path, overwrite=False)
    np.testing.assert_array_equal(crnn.load(path).W, make_rnn().W)


def test_overwrite_false_does_not_follow_a_symlink(tmp_path):
    victim = tmp_path / "victim"
    os.symlink(victim, tmp_path / "model.npz")  # dangling
    with pytest.raises(FileExistsError):
        crnn.save(make_rnn(), tmp_path / "model.npz", overwrite=False)
    assert not victim.exists()


def test_of_two_saves_racing_for_a_new_name_one_wins(tmp_path, monkeypatch):
    # the second save starts and ends while the first writes: the first is then refused
    path = tmp_path / "model.npz"
    first, second = make_rnn(), crnn.RNN(n, d, m, seed=1)
    write_archive = _io._write_archive
    calls = []

    def meanwhile(fileobj, entries):
        calls.append(1)
        if len(calls) == 1:
            crnn.save(second, path, overwrite=False)
        return write_archive(fileobj, entries)

    monkeypatch.setattr(_io, "_write_archive", meanwhile)
    with pytest.raises(FileExistsError):
        crnn.save(first, path, overwrite=False)
    np.testing.assert_array_equal(crnn.load(path).W, second.W)
    assert os.listdir(tmp_path) == ["model.npz"]


def test_overwrite_false_without_hard_links(tmp_path, monkeypatch):
    # some file systems have none: the name is then claimed by an exclusive create
    def no_links(src, dst):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    path = tmp_path / "model.npz"
    crnn.save(make_rnn(), path, overwrite=False)
    np.testing.assert_array_equal(crnn.load(path).W, make_rnn().W)
    with pytest.raises(FileExistsError):
        crnn.save(make_rnn(), path, overwrite=False)
    assert os.listdir(tmp_path) == ["model.npz"]


def test_overwrite_must_be_a_bool(tmp_path):
    with pytest.raises(TypeError, match="overwrite must be True or False"):
        crnn.save(make_rnn(), tmp_path / "m.npz", overwrite="no")
    assert os.listdir(tmp_path) == []


def test_the_temporary_file_is_never_written_through_a_planted_link(tmp_path, monkeypatch):
    # a link planted at the temporary name (were it guessed) is left alone: another name is taken
    import secrets

    from crnn import _files

    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    tokens = iter(["guessed", "another"])
    monkeypatch.setattr(secrets, "token_hex", lambda nbytes: next(tokens))
    os.symlink(victim, tmp_path / ".out.csv.guessed.tmp")
    _files.write_atomically(str(tmp_path / "out.csv"), lambda f: f.write("a\n"), mode="w")
    assert victim.read_bytes() == b"precious"
    assert (tmp_path / "out.csv").read_text() == "a\n"
