"""Model files (lifted_idl.persistence): round trips give identical predictions, the file is
plain arrays + JSON (``numpy.load(allow_pickle=False)`` reads it), and anything else is refused
with a one-line ModelFileError without ever unpickling."""

from __future__ import annotations

import io
import json
import os
import pathlib
import pickle
import stat
import struct
import zipfile

import joblib
import numpy as np
import pytest

from lifted_idl import (
    ImplicitClassifier,
    ImplicitModel,
    ImplicitRegressor,
    ModelFileError,
    load,
    save,
)
from lifted_idl.activations import Blockwise, LeakyReLU, ReLU
from lifted_idl.persistence import FORMAT_VERSION, _digest, read_metadata

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    y = np.tanh(X @ np.array([1.0, -2.0, 0.5]))
    return X, y


def _round_trip(obj, tmp_path, name="m.npz"):
    path = save(obj, tmp_path / name)
    assert path == tmp_path / name and path.exists()  # the name is kept as given
    with np.load(path, allow_pickle=False) as npz:  # plain arrays and one JSON string
        meta = json.loads(str(npz["metadata"]))
        assert all(npz[k].dtype != object for k in npz.files)
    assert meta["format_version"] == FORMAT_VERSION
    return load(path), meta


@pytest.mark.parametrize("outputs", [1, 2])
def test_regressor_round_trip(data, tmp_path, outputs):
    X, y = data
    Y = y if outputs == 1 else np.column_stack([y, y ** 2])
    reg = ImplicitRegressor(n_hidden=5, max_iter=3, random_state=0).fit(X, Y)
    again, meta = _round_trip(reg, tmp_path)
    assert type(again) is ImplicitRegressor
    assert again.get_params() == reg.get_params()
    np.testing.assert_array_equal(again.predict(X), reg.predict(X))
    assert again.predict(X).shape == reg.predict(X).shape
    assert again.score(X, Y) == reg.score(X, Y)
    np.testing.assert_array_equal(again.feature_importances_, reg.feature_importances_)
    assert again.n_iter_ == reg.n_iter_ and again.converged_ == reg.converged_
    assert again.loss_curve_ == reg.loss_curve_
    assert meta["kind"] == "ImplicitRegressor" and meta["lifted_idl_version"]
    assert meta["training"]["n_iter"] == reg.n_iter_
    assert meta["models"]["model_"]["activation"] == {"name": "relu", "params": {}}


@pytest.mark.parametrize("labels", ["int", "str"])
def test_classifier_round_trip(data, tmp_path, labels):
    X, y = data
    k = np.digitize(y, [-0.3, 0.3])
    lab = k if labels == "int" else np.array(["lo", "mid", "hi"], dtype=object)[k]
    clf = ImplicitClassifier(n_hidden=5, max_iter=3, random_state=0).fit(X, lab)
    again, meta = _round_trip(clf, tmp_path)
    np.testing.assert_array_equal(again.classes_, clf.classes_)
    assert again.classes_.dtype == clf.classes_.dtype
    np.testing.assert_array_equal(again.predict(X), clf.predict(X))
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    assert again.score(X, lab) == clf.score(X, lab)


def test_feature_names_and_activation_parameters_round_trip(data, tmp_path):
    pd = pytest.importorskip("pandas")
    X, y = data
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    reg = ImplicitRegressor(n_hidden=4, solver="gradient", gradient_max_iter=5,
                            activation=LeakyReLU(0.2), random_state=0).fit(df, y)
    again, meta = _round_trip(reg, tmp_path)
    assert list(again.feature_names_in_) == ["a", "b", "c"]
    assert again.activation == LeakyReLU(0.2)
    assert meta["models"]["model_"]["activation"] == {"name": "leaky_relu",
                                                      "params": {"slope": 0.2}}
    np.testing.assert_array_equal(again.predict(df), reg.predict(df))


def test_bare_models_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    n, p, q = 6, 3, 2
    # a triangular A of large norm: only the DAG certificate holds
    A = np.triu(3 * rng.standard_normal((n, n)), k=1)
    tri = ImplicitModel(A, rng.standard_normal((n, p)), rng.standard_normal((q, n)),
                        rng.standard_normal((q, p)), b=rng.standard_normal(n))
    assert tri.well_posedness.certificate == "dag"
    L, R = rng.standard_normal((n, 2)), rng.standard_normal((n, 2))
    L *= 0.4 / np.abs(L @ R.T).sum(axis=1).max()
    low = ImplicitModel.from_low_rank(L, R, rng.standard_normal((n, p)),
                                      rng.standard_normal((q, n)), np.zeros((q, p)),
                                      c=np.ones(q), activation="tanh")
    blocks = ImplicitModel(0.1 * np.eye(n), rng.standard_normal((n, p)),
                           rng.standard_normal((q, n)), np.zeros((q, p)),
                           activation=Blockwise([(3, "relu"), (3, LeakyReLU(0.3))]))
    single = tri.astype(np.float32)
    U = rng.standard_normal((20, p))
    for k, model in enumerate([tri, low, blocks, single]):
        again, _ = _round_trip(model, tmp_path, f"m{k}.npz")
        assert type(again) is ImplicitModel and again.dtype == model.dtype
        assert again.activation == model.activation
        assert again.well_posedness.certificate == model.well_posedness.certificate
        assert (again.factors is None) == (model.factors is None)
        np.testing.assert_array_equal(again.predict(U), model.predict(U))


class _Payload:
    """A pickle that writes a file when it is unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.write_text, (pathlib.Path(self.marker), "the payload ran"))


def test_pickles_are_refused_and_never_run(tmp_path):
    bad = tmp_path / "model.npz"
    bad.write_bytes(pickle.dumps(_Payload(tmp_path / "ran.txt")))
    probe = tmp_path / "probe.pkl"  # the payload is live: unpickling it writes its file
    probe.write_bytes(pickle.dumps(_Payload(tmp_path / "probe.txt")))
    pickle.loads(probe.read_bytes())
    assert (tmp_path / "probe.txt").exists()
    with pytest.raises(ModelFileError) as info:
        load(bad)
    assert "is a pickle" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "ran.txt").exists()
    # a joblib file, and an .npz archive holding a pickled object array
    jb = tmp_path / "est.joblib"
    joblib.dump(ImplicitRegressor(), jb)
    with pytest.raises(ModelFileError, match="not a lifted_idl model file"):
        load(jb)
    arch = tmp_path / "obj.npz"
    np.savez(arch, metadata=np.array([_Payload(tmp_path / "ran2.txt")], dtype=object))
    with pytest.raises(ModelFileError) as info:
        load(arch)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "ran2.txt").exists()


def _rewrite(src, dst, edit_meta=None, edit_arrays=None, rehash=True):
    with np.load(src, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays.pop("metadata")))
    if edit_meta:
        edit_meta(meta)
    if edit_arrays:
        edit_arrays(arrays)
    if rehash:
        meta["sha256"] = _digest(meta, arrays)
    with open(dst, "wb") as fh:
        np.savez(fh, metadata=np.array(json.dumps(meta)), **arrays)
    return dst


def _assert_refused(path, message):
    """``load(path)`` raises a one-line ModelFileError naming the file and matching
    ``message``."""
    with pytest.raises(ModelFileError, match=message) as info:
        load(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value), path


def test_other_versions_modified_and_inconsistent_files_are_refused(data, tmp_path):
    X, y = data
    reg = ImplicitRegressor(n_hidden=4, max_iter=2, random_state=0).fit(X, y)
    good = save(reg, tmp_path / "good.npz")

    def bump(meta):
        meta["format_version"] = FORMAT_VERSION + 1

    def scale_c(arrays):
        arrays["model_.C"] = arrays["model_.C"] * 2

    def narrow(arrays):
        arrays["mean_u"] = arrays["mean_u"][:2]

    def weird_activation(meta):
        meta["models"]["model_"]["activation"] = {"name": "os.system", "params": {}}

    cases = [
        (_rewrite(good, tmp_path / "v2.npz", edit_meta=bump), "format version 2"),
        (_rewrite(good, tmp_path / "edited.npz", edit_arrays=scale_c, rehash=False),
         "modified after it was written"),
        (_rewrite(good, tmp_path / "narrow.npz", edit_arrays=narrow), "inconsistent"),
        (_rewrite(good, tmp_path / "act.npz", edit_meta=weird_activation),
         "unknown activation"),
    ]
    raw = tmp_path / "raw.npy"
    np.save(raw, np.ones(3))
    cases.append((raw, "not an .npz file"))
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[:200])
    cases.append((cut, "not a readable model file"))
    plain = tmp_path / "plain.npz"
    np.savez(plain, x=np.ones(2))
    cases.append((plain, "no lifted_idl metadata"))
    cases.append((tmp_path / "missing.npz", "model file not found"))
    for path, message in cases:
        with pytest.raises(ModelFileError, match=message) as info:
            load(path)
        assert "\n" not in str(info.value), path
    assert read_metadata(good)["kind"] == "ImplicitRegressor"


def test_what_cannot_be_saved_is_refused_clearly(data, tmp_path):
    X, y = data

    class Custom(ReLU):
        pass

    with pytest.raises(ModelFileError, match="unfitted"):
        save(ImplicitRegressor(), tmp_path / "u.npz")
    model = ImplicitModel(np.zeros((2, 2)), np.ones((2, 1)), np.ones((1, 2)),
                          np.zeros((1, 1)), activation=Custom())
    with pytest.raises(ModelFileError, match="cannot save the activation"):
        save(model, tmp_path / "c.npz")
    with pytest.raises(ModelFileError, match="writes ImplicitRegressor"):
        save({"model": model}, tmp_path / "d.npz")
    assert not list(tmp_path.iterdir())  # nothing half-written is left behind
    # pickling keeps working for those who want it
    reg = ImplicitRegressor(n_hidden=3, max_iter=1, random_state=0).fit(X, y)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(reg)).predict(X), reg.predict(X))


def test_npz_archive_holds_only_npy_members(data, tmp_path):
    X, y = data
    path = save(ImplicitRegressor(n_hidden=3, max_iter=1, random_state=0).fit(X, y),
                tmp_path / "m.npz", metadata={"note": "hello"})
    with zipfile.ZipFile(path) as zf:
        assert all(n.endswith(".npy") for n in zf.namelist())
    assert read_metadata(path)["user"] == {"note": "hello"}


@pytest.mark.skipif(not hasattr(os, "fchmod"), reason="POSIX permissions")
def test_saved_files_get_the_permissions_open_gives(data, tmp_path):
    X, y = data
    reg = ImplicitRegressor(n_hidden=3, max_iter=1, random_state=0).fit(X, y)
    old = os.umask(0o022)
    try:
        for mask, mode in [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)]:
            os.umask(mask)
            path = save(reg, tmp_path / f"u{mask:o}.npz")
            assert stat.S_IMODE(path.stat().st_mode) == mode, oct(mask)
            with open(tmp_path / f"o{mask:o}.txt", "w"):
                pass
            assert stat.S_IMODE((tmp_path / f"o{mask:o}.txt").stat().st_mode) == mode
        # a file saved over keeps its permissions, as open(path, "w") keeps them
        os.umask(0o022)
        kept = tmp_path / "kept.npz"
        kept.write_bytes(b"")
        kept.chmod(0o600)
        save(reg, kept)
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
        np.testing.assert_array_equal(load(kept).predict(X), reg.predict(X))
    finally:
        os.umask(old)


def _npy(array=None, header=None):
    """The bytes of an .npy member: ``array`` saved, or ``header``'s dict with no data."""
    buf = io.BytesIO()
    if header is None:
        np.save(buf, array, allow_pickle=False)
    else:
        np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue()


def test_members_must_hold_the_data_their_headers_claim(data, tmp_path):
    X, y = data
    reg = ImplicitRegressor(n_hidden=3, max_iter=2, random_state=0).fit(X, y)
    good = save(reg, tmp_path / "good.npz")
    with np.load(good, allow_pickle=False) as npz:
        members = {k: npz[k] for k in npz.files}
    # a genuine file deflated (numpy.savez_compressed) is the same model file
    packed = tmp_path / "packed.npz"
    np.savez_compressed(packed, **members)
    again = load(packed)
    np.testing.assert_array_equal(again.predict(X), reg.predict(X))
    assert again.loss_curve_ == reg.loss_curve_
    # a small archive whose member's header claims 8 TB: refused before any allocation
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w") as zf:
        zf.writestr("metadata.npy", _npy(header={"descr": "<f8", "fortran_order": False,
                                                 "shape": (10 ** 12,)}) + b"\0" * 64)
    assert bomb.stat().st_size < 1024
    # a deflated member whose sizes claim a 1e6-fold expansion (deflate expands 1032-fold at
    # most), its header in agreement with them
    n = 4 * 10 ** 8
    head = _npy(header={"descr": "<f8", "fortran_order": False, "shape": (n,)})
    deflated = tmp_path / "deflated.npz"
    with zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("metadata.npy", head + b"\0" * 4096)
    raw = bytearray(deflated.read_bytes())
    central = raw.index(b"PK\x01\x02")
    raw[central + 24:central + 28] = struct.pack("<I", len(head) + 8 * n)
    deflated.write_bytes(bytes(raw))
    with zipfile.ZipFile(deflated) as zf:
        assert zf.infolist()[0].file_size == len(head) + 8 * n
    # a genuine member whose header says one element fewer (or more) than it holds
    for extra, name in [(1, "longer.npz"), (-1, "shorter.npz")]:
        curve = members["loss_curve"]
        head = {"descr": curve.dtype.str, "fortran_order": False,
                "shape": (curve.shape[0] + extra,)}
        with zipfile.ZipFile(tmp_path / name, "w") as zf:
            for k, v in members.items():
                body = _npy(v) if k != "loss_curve" else _npy(header=head) + curve.tobytes()
                zf.writestr(f"{k}.npy", body)
    # a member that is not an .npy array
    other = tmp_path / "other.npz"
    other.write_bytes(good.read_bytes())
    with zipfile.ZipFile(other, "a") as zf:
        zf.writestr("notes.txt", "hello")
    cases = [(bomb, "claims shape"), (deflated, "claims 3200000128 bytes from"),
             (tmp_path / "longer.npz", "claims shape"), (tmp_path / "shorter.npz", "claims shape"),
             (other, "'notes.txt' is not an .npy array")]
    for path, message in cases:
        with pytest.raises(ModelFileError, match=f"not a readable model file .*{message}") as info:
            load(path)
        assert "\n" not in str(info.value) and path.name in str(info.value)



def test_malformed_metadata_is_refused_by_name(data, tmp_path):
    """Forged files (the checksum recomputed with the module's own _digest): malformed
    metadata is a one-line ModelFileError naming the file."""
    X, y = data
    reg = ImplicitRegressor(n_hidden=4, max_iter=2, random_state=0).fit(X, y)
    good = save(reg, tmp_path / "good.npz")

    def put(key, value, *inside):
        def edit(meta):
            for k in inside:
                meta = meta[k]
            meta[key] = value
        return edit

    bad_blocks = {"name": "blockwise", "blocks": [[-2, {"name": "relu"}], [6, {"name": "relu"}]]}
    edits = [
        ("models_list", put("models", []), "model 'model_' is missing"),
        ("models_str", put("models", "x"), "model 'model_' is missing"),
        ("fitted_list", put("fitted", [1]), "fitted attributes of the ImplicitRegressor"),
        ("fitted_none", put("fitted", None), "fitted attributes of the ImplicitRegressor"),
        ("params_list", put("params", [1, 2]), "parameters of the ImplicitRegressor"),
        ("params_pairs", put("params", [["n_hidden", 4]]), "parameters of the ImplicitRegressor"),
        ("param_activation", put("activation", {"activation": {"name": "os.system"}}, "params"),
         "unknown activation"),
        ("block_sizes", put("activation", bad_blocks, "models", "model_"),
         "bad Blockwise activation"),
    ]
    cases = [(_rewrite(good, tmp_path / f"{name}.npz", edit_meta=edit), message)
             for name, edit, message in edits]
    # metadata nested deeper than the JSON parser goes
    deep = tmp_path / "deep.npz"
    with np.load(good, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files if k != "metadata"}
    np.savez(deep, metadata=np.array("[" * 100000 + "]" * 100000), **arrays)
    cases.append((deep, "nested too deeply"))
    for path, message in cases:
        _assert_refused(path, message)


def test_forged_arrays_are_refused(data, tmp_path):
    """Forged files (the checksum recomputed with _digest) whose arrays a fit cannot produce:
    each is a one-line ModelFileError naming the file; the genuine files load bit for bit."""
    X, y = data
    reg = ImplicitRegressor(n_hidden=4, max_iter=2, random_state=0).fit(X, y)
    k = np.digitize(y, [-0.3, 0.3])
    clf = ImplicitClassifier(n_hidden=4, max_iter=2, random_state=0).fit(
        X, np.array(["lo", "mid", "hi"], dtype=object)[k])
    good_reg, good_clf = save(reg, tmp_path / "reg.npz"), save(clf, tmp_path / "clf.npz")
    low = ImplicitModel.from_low_rank(0.1 * np.ones((4, 1)), 0.1 * np.ones((4, 1)),
                                      np.ones((4, 3)), np.ones((1, 4)), np.zeros((1, 3)))
    good_low = save(low, tmp_path / "low.npz")
    for good, obj in [(good_reg, reg), (good_clf, clf)]:
        again = load(good)
        np.testing.assert_array_equal(again._mean_u, obj._mean_u)
        np.testing.assert_array_equal(again._scale_u, obj._scale_u)
        assert again.loss_curve_ == obj.loss_curve_
    np.testing.assert_array_equal(load(good_clf).classes_, clf.classes_)
    np.testing.assert_array_equal(load(good_low).factors[0], low.factors[0])

    def put(name, value):
        def edit(arrays):
            arrays[name] = value(arrays[name]) if callable(value) else value
        return edit

    def lone(factor):
        def edit(meta):
            meta["models"]["model"]["arrays"].remove("R" if factor == "L" else "L")
        return edit

    def drop_array(name):
        def edit(arrays):
            del arrays[name]
        return edit

    def listed(name):
        def edit(meta):
            meta["models"]["model_"]["arrays"].append(name)
        return edit

    p = X.shape[1]
    cases = [
        (good_reg, "neg_scale", None, put("scale_u", np.negative), "scales positive"),
        (good_reg, "zero_scale", None, put("scale_u", np.zeros(p)), "scales positive"),
        (good_reg, "nan_scale", None, put("scale_u", np.full(p, np.nan)), "finite floats"),
        (good_reg, "str_scale", None, put("scale_u", np.array(["1"] * p)), "finite floats"),
        (good_reg, "inf_mean", None, put("mean_u", np.full(p, np.inf)), "finite floats"),
        (good_reg, "str_mean", None, put("mean_u", np.array(["a"] * p)), "finite floats"),
        (good_reg, "int_mean", None, put("mean_u", np.zeros(p, dtype=np.int64)),
         "finite floats"),
        (good_reg, "curve_2d", None, put("loss_curve", lambda c: c.reshape(1, -1)),
         "loss_curve"),
        (good_reg, "curve_str", None, put("loss_curve", np.array(["x"])), "loss_curve"),
        (good_reg, "no_curve", None, drop_array("loss_curve"), "loss_curve"),
        (good_reg, "extra", None, put("extra", np.zeros(3)), "not part of an ImplicitRegressor"),
        (good_reg, "listed_extra", listed("Q"), put("model_.Q", np.zeros((4, 1))),
         "lists arrays"),
        (good_reg, "names_int", lambda m: m["fitted"].update(feature_names_in_=[1, 2, 3]),
         None, "inconsistent"),
        (good_clf, "dup_classes", None, put("classes", np.array(["hi", "hi", "lo"])),
         "inconsistent"),
        (good_clf, "bytes_classes", lambda m: m["fitted"].update(classes_kind="array"),
         put("classes", np.array([b"hi", b"lo", b"mid"])), "inconsistent"),
        (good_clf, "nan_classes", lambda m: m["fitted"].update(classes_kind="array"),
         put("classes", np.array([0.5, 1.5, np.nan])), "inconsistent"),
        (good_clf, "complex_classes", lambda m: m["fitted"].update(classes_kind="array"),
         put("classes", np.array([0, 1, 2j])), "inconsistent"),
        (good_clf, "int_as_str_object", lambda m: m["fitted"].update(classes_kind="str_object"),
         put("classes", np.array([0, 1, 2])), "inconsistent"),
        (good_low, "lone_L", lone("L"), drop_array("model.R"), "factor L of A without"),
        (good_low, "lone_R", lone("R"), drop_array("model.L"), "factor R of A without"),
    ]
    for src, name, edit_meta, edit_arrays, message in cases:
        _assert_refused(_rewrite(src, tmp_path / f"{name}.npz", edit_meta=edit_meta,
                                 edit_arrays=edit_arrays), message)


def test_group_weights_round_trip(data, tmp_path):
    from lifted_idl import ImplicitRegressorCV

    X, y = data
    for weights in ([1, 2, 1], (1.0, 0.5, 3.0), np.array([1.0, np.inf, 2.0])):
        reg = ImplicitRegressor(n_hidden=4, max_iter=2, penalty="group", alpha=1e-3,
                                group_weights=weights, random_state=0).fit(X, y)
        again, meta = _round_trip(reg, tmp_path)
        params, saved = again.get_params(), reg.get_params()
        assert type(params["group_weights"]) is type(weights)
        np.testing.assert_array_equal(params.pop("group_weights"), saved.pop("group_weights"))
        assert params == saved
        np.testing.assert_array_equal(again.predict(X), reg.predict(X))
        assert meta["params"]["group_weights"]["array"] == "group_weights"
    assert again.get_params()["group_weights"].dtype == np.float64
    # the adaptive group lasso's second stage gives the best estimator an array of weights
    cv = ImplicitRegressorCV(n_hidden=4, penalty="group", alphas=2, cv=2, max_iter=2,
                             random_state=0).fit(X, y)
    best = cv.best_estimator_
    assert best.group_weights is not None
    again, _ = _round_trip(best, tmp_path, "cv.npz")
    np.testing.assert_array_equal(again.group_weights, best.group_weights)
    np.testing.assert_array_equal(again.predict(X), best.predict(X))
    # weights that fit would refuse cannot be saved
    reg.set_params(group_weights=[1.0, 2.0])
    with pytest.raises(ModelFileError, match="cannot save the parameter group_weights"):
        save(reg, tmp_path / "short.npz")
    # and a file whose weights fit would refuse is not loaded
    good = save(again, tmp_path / "good.npz")

    def put(value):
        def edit(arrays):
            arrays["group_weights"] = value
        return edit

    def param(value):
        def edit(meta):
            meta["params"]["group_weights"] = value
        return edit

    cases = [
        (None, put(-np.ones(3)), "not a vector of positive floats"),
        (None, put(np.array([1.0, np.nan, 1.0])), "not a vector of positive floats"),
        (None, put(np.zeros(3)), "not a vector of positive floats"),
        (None, put(np.ones((3, 1))), "not a vector of positive floats"),
        (None, put(np.array(["1", "1", "1"])), "not a vector of positive floats"),
        (None, put(np.ones(2)), "2 weights for 3 features"),
        (param([1, 1, 1]), None, "bad group_weights parameter"),
        (param({"array": "group_weights", "type": "set"}), None, "bad group_weights parameter"),
        (param({"array": "group_weights", "type": ["list"]}), None,
         "bad group_weights parameter"),
        (param(None), None, "not part of an ImplicitRegressor"),
    ]
    for k, (edit_meta, edit_arrays, message) in enumerate(cases):
        _assert_refused(_rewrite(good, tmp_path / f"bad{k}.npz", edit_meta=edit_meta,
                                 edit_arrays=edit_arrays), message)


def test_metadata_json_cannot_hold_is_refused(data, tmp_path):
    X, y = data
    reg = ImplicitRegressor(n_hidden=3, max_iter=1, random_state=0).fit(X, y)
    for bad in ({1: "a", "b": 2}, {1: "a"}, {"a": [{"b": {2.5: 1}}]}, {"a": ({None: 1},)}):
        with pytest.raises(ModelFileError, match="metadata keys must be strings") as info:
            save(reg, tmp_path / "m.npz", metadata=bad)
        assert "\n" not in str(info.value)
    with pytest.raises(ModelFileError, match="not JSON-serialisable"):
        save(reg, tmp_path / "m.npz", metadata={"a": object()})
    assert not list(tmp_path.iterdir())  # nothing written
    # string keys at every depth, tuples and NaN are fine: read back as JSON reads them
    path = save(reg, tmp_path / "m.npz",
                metadata={"a": {"b": [1, {"c": None}]}, "t": (1, 2), "x": float("nan")})
    user = read_metadata(path)["user"]
    assert user["a"] == {"b": [1, {"c": None}]} and user["t"] == [1, 2]
    assert np.isnan(user["x"])
