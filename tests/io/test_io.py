"""Tests for fastbp.io: model file round trips, atomic saves, refused files."""

import json
import os
import zipfile

import numpy as np
import pytest

import fastbp.io.model as fio
from fastbp import Linear, ReLU, Sequential, Tanh, __version__, mlp
from fastbp.io import ModelFileError, load_model, save_model

DTYPES = [np.float32, np.float64]


def make_model(dtype=np.float32):
    return Sequential(
        Linear(3, 5, rng=0, dtype=dtype),
        Tanh(),
        Linear(5, 4, rng=1, dtype=dtype),
        ReLU(),
        Linear(4, 2, rng=2, dtype=dtype),
    )


def make_meta(**changes):
    meta = {
        "feature_names": ["a", "b", "c"],
        "target_name": "label",
        "task": "classification",
        "classes": ["no", "yes"],
        "standardizer": {"mean": [0.5, 1.0, -2.0], "std": [1.0, 2.0, 0.25]},
        "epochs": 10,
    }
    meta.update(changes)
    return meta


def load_error(path):
    """The ModelFileError message for path: one line naming the file."""
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    return message


def entries(path):
    """The arrays of a model file, as plain arrays (nothing unpickled)."""
    with np.load(path, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def rewrite(path, **changes):
    """Write the model file at path again with some entries replaced
    (None removes an entry)."""
    arrays = entries(path)
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    with open(path, "wb") as f:
        np.savez(f, **arrays)


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "model.npz"
    save_model(path, make_model(), meta=make_meta())
    return path


# --- round trips -------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_save_load_round_trip(tmp_path, dtype):
    model = make_model(dtype)
    meta = make_meta(
        standardizer={"mean": np.array([0.5, 1.0, -2.0]), "std": (1.0, 2.0, 0.25)},
        seed=np.int64(3),
    )
    path = tmp_path / "m.npz"
    save_model(path, model, meta=meta)
    loaded, meta2 = load_model(path)
    assert loaded.architecture() == model.architecture()
    assert loaded.flat_data.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(loaded.flat_data, model.flat_data)
    for (n1, p1), (n2, p2) in zip(
        model.named_parameters(), loaded.named_parameters(), strict=True
    ):
        assert n1 == n2
        np.testing.assert_array_equal(p1.data, p2.data)
        assert np.shares_memory(p2.data, loaded.flat_data)
    assert meta2 == json.loads(json.dumps(make_meta(seed=3)))
    x = np.ones((2, 3), dtype)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_save_file_layout(saved):
    arrays = entries(saved)
    assert str(arrays["format"]) == "fastbp-model"
    assert int(arrays["format_version"]) == 1
    assert str(arrays["fastbp_version"]) == __version__
    assert str(arrays["dtype"]) == "float32"
    assert json.loads(str(arrays["architecture"]))[1] == {"type": "tanh"}
    assert arrays["param/0.weight"].shape == (3, 5)
    assert arrays["param/4.bias"].shape == (2,)
    assert json.loads(str(arrays["meta"]))["epochs"] == 10
    assert not any(a.dtype.hasobject for a in arrays.values())


def test_save_regression_meta_without_standardizer(tmp_path):
    model = Sequential(Linear(2, 1, rng=0))
    meta = {
        "feature_names": ["x1", "x2"],
        "target_name": "y",
        "task": "regression",
        "classes": None,
        "standardizer": None,
    }
    save_model(tmp_path / "r.npz", model, meta=meta)
    assert load_model(tmp_path / "r.npz")[1] == meta


def test_save_keeps_path_without_npz_suffix(tmp_path):
    path = tmp_path / "model.bin"
    save_model(str(path), make_model(), meta=make_meta())
    assert sorted(os.listdir(tmp_path)) == ["model.bin"]
    load_model(str(path))


def test_save_replaces_existing_file_and_keeps_mode(tmp_path):
    path = tmp_path / "m.npz"
    path.write_bytes(b"old")
    os.chmod(path, 0o640)
    save_model(path, make_model(), meta=make_meta())
    assert os.stat(path).st_mode & 0o777 == 0o640
    load_model(path)
    assert os.listdir(tmp_path) == ["m.npz"]


def test_save_new_file_is_not_private(tmp_path):
    path = tmp_path / "m.npz"
    save_model(path, make_model(), meta=make_meta())
    assert os.stat(path).st_mode & 0o044  # readable as umask allows, not 0o600


# --- atomic save -------------------------------------------------------------


@pytest.mark.parametrize("where", ["savez", "replace", "fsync"])
def test_save_failure_leaves_existing_file_untouched(tmp_path, monkeypatch, where):
    path = tmp_path / "m.npz"
    save_model(path, make_model(), meta=make_meta())
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    target = {"savez": (np, "savez"), "replace": (os, "replace")}.get(
        where, (os, "fsync")
    )
    monkeypatch.setattr(*target, boom)
    other = make_model(np.float64)
    with pytest.raises(OSError, match="disk full"):
        save_model(path, other, meta=make_meta())
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]


def test_save_interrupted_leaves_no_temp_file(tmp_path, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_model(tmp_path / "m.npz", make_model(), meta=make_meta())
    assert os.listdir(tmp_path) == []


def test_save_into_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        save_model(tmp_path / "no" / "m.npz", make_model(), meta=make_meta())


# --- save_model argument checks ----------------------------------------------


@pytest.mark.parametrize("extra", [object(), float("nan")])
def test_save_rejects_meta_that_is_not_json(tmp_path, extra):
    # The schema of meta is fastbp.problem's (tests/test_problem.py); the
    # file format only needs JSON.
    with pytest.raises(ValueError, match="JSON"):
        save_model(tmp_path / "m.npz", make_model(), meta=make_meta(extra=extra))
    assert os.listdir(tmp_path) == []


def test_save_rejects_non_finite_weights(tmp_path):
    model = make_model()
    model.flat_data[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        save_model(tmp_path / "m.npz", model, meta=make_meta())
    assert os.listdir(tmp_path) == []


def test_save_rejects_wrong_types(tmp_path):
    with pytest.raises(TypeError, match="Sequential"):
        save_model(tmp_path / "m.npz", Linear(2, 2), meta=make_meta())
    with pytest.raises(TypeError, match="meta"):
        save_model(tmp_path / "m.npz", make_model(), meta=[1])


# --- load_model: refused files -----------------------------------------------


def test_load_missing_file(tmp_path):
    assert "no such file" in load_error(tmp_path / "nope.npz")


def test_load_directory(tmp_path):
    assert "directory" in load_error(tmp_path)


def test_load_text_file(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("this is not a model\n")
    assert "not a fastbp model file" in load_error(path)


def test_load_empty_file(tmp_path):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    assert "not a fastbp model file" in load_error(path)


def test_load_npy_file(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.ones(3))
    assert "not a fastbp model file" in load_error(path)


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.99])
def test_load_truncated_file(saved, keep):
    data = saved.read_bytes()
    saved.write_bytes(data[: int(len(data) * keep)])
    assert "corrupt or truncated" in load_error(saved)


def test_load_corrupted_member(saved):
    data = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as z:
        info = z.getinfo("param/0.weight.npy")
    # Flip a byte inside the member's data: its CRC no longer matches.
    pos = info.header_offset + 30 + len(info.filename) + info.file_size - 3
    data[pos] ^= 0xFF
    saved.write_bytes(bytes(data))
    message = load_error(saved)
    assert "'param/0.weight'" in message and "unreadable" in message


def test_load_foreign_npz(tmp_path):
    path = tmp_path / "foreign.npz"
    rng = np.random.default_rng(0)
    np.savez(path, rng.normal(size=(3, 3)), rng.normal(size=4))
    message = load_error(path)
    assert "not a fastbp model file" in message and "'format'" in message


def test_load_wrong_format_name(saved):
    rewrite(saved, format=np.array("other-model"))
    assert "format 'other-model'" in load_error(saved)


def test_load_object_array_is_not_unpickled(saved, monkeypatch):
    import pickle

    arrays = entries(saved)
    arrays["param/0.weight"] = np.array([{"evil": 1}, None], dtype=object)
    with open(saved, "wb") as f:
        np.savez(f, **arrays)

    def no_unpickling(*args, **kwargs):
        raise AssertionError("load_model unpickled something")

    monkeypatch.setattr(pickle, "load", no_unpickling)
    monkeypatch.setattr(pickle, "loads", no_unpickling)
    message = load_error(saved)
    assert "'param/0.weight'" in message and "pickled" in message


def test_load_pickled_meta_is_refused(saved):
    rewrite(saved, meta=np.array([make_meta()], dtype=object))
    assert "'meta'" in load_error(saved)


def test_load_newer_format_version(saved):
    rewrite(saved, format_version=np.array(2))
    message = load_error(saved)
    assert "format version 2 is not supported" in message


@pytest.mark.parametrize(
    "key",
    ["format_version", "fastbp_version", "architecture", "dtype", "meta"],
)
def test_load_missing_entry(saved, key):
    rewrite(saved, **{key: None})
    assert f"missing entry {key!r}" in load_error(saved)


def test_load_missing_parameter(saved):
    arrays = entries(saved)
    del arrays["param/2.bias"]
    with open(saved, "wb") as f:
        np.savez(f, **arrays)
    assert "missing parameter 'param/2.bias'" in load_error(saved)


def test_load_extra_parameter(saved):
    arrays = entries(saved)
    arrays["param/9.weight"] = np.ones((2, 2), np.float32)
    with open(saved, "wb") as f:
        np.savez(f, **arrays)
    assert "unexpected parameter 'param/9.weight'" in load_error(saved)


def test_load_unexpected_entry(saved):
    rewrite(saved, notes=np.array("hello"))
    assert "unexpected entry 'notes'" in load_error(saved)


def test_load_shape_mismatch(saved):
    arrays = entries(saved)
    arrays["param/0.weight"] = np.ones((5, 3), np.float32)
    with open(saved, "wb") as f:
        np.savez(f, **arrays)
    message = load_error(saved)
    assert "'param/0.weight' has shape (5, 3)" in message and "(3, 5)" in message


def test_load_dtype_mismatch(saved):
    arrays = entries(saved)
    arrays["param/0.bias"] = arrays["param/0.bias"].astype(np.float64)
    with open(saved, "wb") as f:
        np.savez(f, **arrays)
    assert "'param/0.bias' has dtype float64" in load_error(saved)


def test_load_bad_dtype_entry(saved):
    rewrite(saved, dtype=np.array("float16"))
    assert "dtype must be" in load_error(saved)
    rewrite(saved, dtype=np.array([1.0, 2.0]))
    assert "'dtype' must be a text scalar" in load_error(saved)


def test_load_non_finite_parameter(saved):
    arrays = entries(saved)
    arrays["param/2.weight"][0, 0] = np.inf
    with open(saved, "wb") as f:
        np.savez(f, **arrays)
    assert "'param/2.weight' contains NaN or infinity" in load_error(saved)


@pytest.mark.parametrize(
    ("arch", "match"),
    [
        ("[{", "'architecture' is not valid JSON"),
        ("[]", "invalid architecture"),
        ('[{"type": "conv"}]', "invalid architecture"),
        ('{"type": "linear"}', "invalid architecture"),
        (
            '[{"type": "linear", "in_features": 100000, "out_features": 100000}]',
            "needs 10000100000 parameters",
        ),
    ],
)
def test_load_bad_architecture(saved, arch, match):
    rewrite(saved, architecture=np.array(arch))
    assert match in load_error(saved)


def test_load_architecture_not_matching_parameters(saved):
    arch = json.loads(str(entries(saved)["architecture"]))
    arch[0]["out_features"] = 6
    arch[2]["in_features"] = 6
    rewrite(saved, architecture=np.array(json.dumps(arch)))
    assert "'param/0.weight' has shape (3, 5)" in load_error(saved)


@pytest.mark.parametrize(
    ("meta", "match"),
    [
        ("not json", "'meta' is not valid JSON"),
        ("[1, 2]", "meta must be a JSON object"),
    ],
)
def test_load_bad_meta(saved, meta, match):
    rewrite(saved, meta=np.array(meta))
    assert match in load_error(saved)


def test_load_format_version_not_integer(saved):
    rewrite(saved, format_version=np.array(1.0))
    assert "'format_version' must be an integer" in load_error(saved)


def test_load_non_npy_zip_member(saved):
    with zipfile.ZipFile(saved, "a") as z:
        z.writestr("extra.txt", "hello")
    assert "unexpected entry 'extra.txt'" in load_error(saved)


def test_module_constants():
    assert fio.FORMAT == "fastbp-model" and fio.FORMAT_VERSION == 1


def test_save_model_without_meta_saves_a_bare_model(tmp_path):
    # A library user's model, trained without fastbp.problem: nothing but the
    # model is needed; meta is stored as given (fastbp.problem fills in the
    # defaults when it reads the file: tests/test_problem.py).
    model = mlp([3, 4, 1], "tanh", rng=0)
    save_model(tmp_path / "bare.npz", model)
    loaded, meta = load_model(tmp_path / "bare.npz")
    assert meta == {}
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    save_model(tmp_path / "named.npz", model, meta={"target_name": "price"})
    assert load_model(tmp_path / "named.npz")[1] == {"target_name": "price"}
