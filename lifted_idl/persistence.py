r"""Model files without pickles: :func:`save` and :func:`load`.

A model file is one ``.npz`` archive (:func:`numpy.savez`) of plain numeric arrays plus one
JSON string, the metadata, so that ``numpy.load(path, allow_pickle=False)`` reads all of it
and loading never runs code from the file. The metadata holds

* ``format`` / ``format_version``: ``"lifted_idl.model"`` / :data:`FORMAT_VERSION`;
* ``lifted_idl_version``: the version that wrote the file;
* ``kind``: ``"ImplicitRegressor"``, ``"ImplicitClassifier"`` or ``"ImplicitModel"``;
* for each saved model, its activation by name and parameters (``{"name": "leaky_relu",
  "params": {"slope": 0.01}}``; a :class:`~lifted_idl.activations.Blockwise` map as its list
  of blocks) and the names of its arrays;
* for an estimator: its ``get_params()`` (``group_weights`` as an array of the file, given
  back as the list, tuple or array it was), ``classes_``' kind, ``feature_names_in_``,
  ``n_features_in_``, and a training summary (``n_iter_``, ``converged_``, the final
  training objective; ``loss_curve_`` is an array of the file);
* ``user``: the caller's own JSON metadata (the ``lifted-idl`` command keeps the task, the
  target column and the data source there);
* ``sha256``: a digest of the arrays and the rest of the metadata. A file edited after it was
  written (or truncated) is refused. The digest detects corruption and careless edits, not a
  forger, who can recompute it; but whatever a file holds, loading it only builds arrays and
  estimators from numbers and names.

Estimators are rebuilt with their saved parameters and fitted attributes (``model_``,
``classes_``, ``n_features_in_``, ``feature_names_in_``, ``loss_curve_``, ``n_iter_``,
``converged_``, and the model on standardised features that ``feature_importances_`` and
``warm_start`` use); ``bcd_history_`` is not saved. Pickling (``pickle``, ``joblib``) keeps
working for users who want it, but a pickle runs code when loaded: load only pickles you
trust.
"""

from __future__ import annotations

import hashlib
import json
import math
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ._files import atomic_write
from .exceptions import ModelFileError

__all__ = ["save", "load", "read_metadata", "FORMAT_VERSION"]

FORMAT = "lifted_idl.model"
#: version of the file layout; :func:`load` refuses any other
FORMAT_VERSION = 1
_META = "metadata"
_MODEL_ARRAYS = ("A", "B", "C", "D", "b", "c")
_PICKLE_PROTOCOL_BYTE = 0x80
#: deflate's largest expansion: a deflated member never holds more bytes per stored byte
_MAX_DEFLATE_RATIO = 1032


# ----------------------------------------------------------------------------------------------
# activations by name
# ----------------------------------------------------------------------------------------------
def _activation_spec(act) -> dict:
    """The JSON description of an activation, or ModelFileError when it has none."""
    from .activations import _REGISTRY, Blockwise, get_activation

    act = get_activation(act)
    if type(act) is Blockwise:
        return {"name": "blockwise",
                "blocks": [[int(size), _activation_spec(a)] for size, a in act.blocks]}
    names = {cls: name for name, cls in _REGISTRY.items()}
    name = names.get(type(act))
    params = dict(vars(act))
    ok = name is not None and all(
        isinstance(v, (bool, int, float, str)) for v in params.values())
    spec = {"name": name, "params": {k: v for k, v in params.items()}}
    if ok:
        try:
            ok = _activation_from_spec(spec) == act
        except ModelFileError:
            ok = False
    if not ok:
        raise ModelFileError(
            f"cannot save the activation {act!r}: only lifted_idl's named activations "
            f"{sorted(_REGISTRY)} (and Blockwise maps of them) can be described in a model "
            "file; pickle the object (joblib.dump) instead"
        )
    return spec


def _activation_from_spec(spec):
    from .activations import _REGISTRY, Blockwise

    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise ModelFileError(f"bad activation description {spec!r}")
    if spec["name"] == "blockwise":
        blocks = spec.get("blocks")
        if not isinstance(blocks, list) or not all(
                isinstance(b, list) and len(b) == 2 and isinstance(b[0], int) for b in blocks):
            raise ModelFileError(f"bad Blockwise activation description {spec!r}")
        parts = [(size, _activation_from_spec(a)) for size, a in blocks]
        try:
            return Blockwise(parts)
        except ValueError as err:
            raise ModelFileError(f"bad Blockwise activation description {spec!r}: "
                                 f"{err}") from None
    cls = _REGISTRY.get(spec["name"])
    params = spec.get("params", {})
    if cls is None or not isinstance(params, dict) or not all(
            isinstance(v, (bool, int, float, str)) for v in params.values()):
        raise ModelFileError(f"unknown activation description {spec!r}")
    try:
        act = cls(**params)
    except (TypeError, ValueError) as err:
        raise ModelFileError(f"bad activation parameters {spec!r}: {err}") from None
    if vars(act) != params:
        raise ModelFileError(f"bad activation parameters {spec!r}")
    return act


# ----------------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------------
def _model_entry(model, prefix: str, arrays: dict) -> dict:
    from ._array import to_numpy

    names = []
    for k in _MODEL_ARRAYS:
        v = getattr(model, k)
        if v is not None:
            arrays[f"{prefix}.{k}"] = np.asarray(to_numpy(v))
            names.append(k)
    if model.factors is not None:
        arrays[f"{prefix}.L"] = np.asarray(to_numpy(model.factors[0]))
        arrays[f"{prefix}.R"] = np.asarray(to_numpy(model.factors[1]))
        names += ["L", "R"]
    return {"activation": _activation_spec(model.activation), "arrays": names}


def _json_param(name, value):
    from .activations import Activation

    if isinstance(value, Activation):
        return {"activation": _activation_spec(value)}
    if isinstance(value, (float, np.floating)) and np.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if name == "random_state":  # a RandomState instance: not needed to predict
        return None
    raise ModelFileError(f"cannot save the parameter {name}={value!r} in a model file")


#: the types a ``group_weights`` parameter is saved as, and given back as
_WEIGHTS_TYPES = {"list": list, "tuple": tuple, "array": np.ndarray}


def _weights_ok(w, n_features) -> bool:
    """Whether ``w`` is an array of ``group_weights`` :meth:`fit` accepts for ``n_features``
    features: floats, one per feature, positive (inf allowed)."""
    return (w.dtype.kind == "f" and w.shape == (n_features,) and not np.any(np.isnan(w))
            and bool(np.all(w > 0)))


def _group_weights_param(weights, n_features, arrays: dict):
    """The metadata of a ``group_weights`` parameter (None, or the array ``group_weights`` of
    the file and the type it is given back as), the array added to ``arrays``."""
    if weights is None:
        return None
    kind = next((k for k, t in _WEIGHTS_TYPES.items() if isinstance(weights, t)), "array")
    try:
        w = np.array(weights, dtype=np.float64)
    except (TypeError, ValueError):
        w = np.empty(0)
    if not _weights_ok(w, n_features):
        raise ModelFileError(f"cannot save the parameter group_weights={weights!r}: it is not "
                             f"{n_features} positive numbers, one per feature")
    arrays["group_weights"] = w
    return {"array": "group_weights", "type": kind}


def _digest(meta: dict, arrays: dict) -> str:
    h = hashlib.sha256()
    body = {k: v for k, v in meta.items() if k != "sha256"}
    h.update(json.dumps(body, sort_keys=True).encode())
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(f"{k}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _estimator_payload(est, arrays: dict) -> dict:
    from .estimators import ImplicitClassifier
    from .model import ImplicitModel

    if not isinstance(getattr(est, "__dict__", {}).get("model_"), ImplicitModel):
        raise ModelFileError(f"cannot save an unfitted {type(est).__name__}; fit it first")
    params = est.get_params(deep=False)
    weights = params.pop("group_weights", None)
    meta = {"params": {k: _json_param(k, v) for k, v in params.items()}}
    meta["params"]["group_weights"] = _group_weights_param(weights, est.n_features_in_, arrays)
    meta["models"] = {"model_": _model_entry(est.model_, "model_", arrays),
                      "scaled": _model_entry(est._scaled_model, "scaled", arrays)}
    arrays["mean_u"] = np.asarray(est._mean_u, dtype=np.float64)
    arrays["scale_u"] = np.asarray(est._scale_u, dtype=np.float64)
    arrays["loss_curve"] = np.asarray(est.loss_curve_, dtype=np.float64)
    names = getattr(est, "feature_names_in_", None)
    fitted = {"n_features_in_": int(est.n_features_in_),
              "feature_names_in_": None if names is None else [str(n) for n in names],
              "n_iter_": int(est.n_iter_), "converged_": bool(est.converged_)}
    if isinstance(est, ImplicitClassifier):
        classes = np.asarray(est.classes_)
        kind = "array"
        if classes.dtype == object:
            if not all(isinstance(c, str) for c in classes):
                raise ModelFileError(
                    "cannot save classes_ that mix types or hold objects other than strings "
                    f"({classes!r}); use numbers or strings as labels"
                )
            classes, kind = classes.astype(str), "str_object"
        if classes.dtype.kind not in "biufU":
            raise ModelFileError(f"cannot save classes_ of dtype {classes.dtype}")
        arrays["classes"] = classes
        fitted["classes_kind"] = kind
    else:
        fitted["y_ndim"] = int(est._y_ndim)
    meta["fitted"] = fitted
    curve = est.loss_curve_
    meta["training"] = {"solver": est.solver, "n_iter": int(est.n_iter_),
                        "converged": bool(est.converged_),
                        "final_loss": float(curve[-1]) if len(curve) else None}
    return meta


def _check_user_metadata(metadata) -> None:
    """ModelFileError unless JSON writes ``metadata`` as the checksum does (sorted keys) and
    reads it back with the same keys: every dictionary key a string."""
    stack, seen = [metadata], set()
    while stack:
        item = stack.pop()
        if not isinstance(item, (dict, list, tuple)) or id(item) in seen:
            continue
        seen.add(id(item))  # a cycle is refused by json.dumps below
        if isinstance(item, dict):
            bad = [k for k in item if not isinstance(k, str)]
            if bad:
                raise ModelFileError(f"metadata keys must be strings, as JSON writes them; got "
                                     f"the key {bad[0]!r} ({type(bad[0]).__name__})")
            stack.extend(item.values())
        else:
            stack.extend(item)
    try:
        json.dumps(metadata, sort_keys=True)
    except (TypeError, ValueError, RecursionError) as err:
        raise ModelFileError(f"metadata is not JSON-serialisable: {err}") from None


def save(obj, path, *, metadata: dict | None = None) -> Path:
    """Write a fitted estimator or an :class:`~lifted_idl.ImplicitModel` to a model file.

    Parameters
    ----------
    obj : ImplicitRegressor, ImplicitClassifier (fitted) or ImplicitModel
    path : str or Path
        Where to write (the name is used as given; ``.npz`` is the customary suffix). The
        file is written to a temporary name next to it and then renamed, so a failed save
        never leaves a half-written file at ``path``. The file gets the permissions
        ``open(path, "w")`` would give it: those of the file it replaces, else ``0o666``
        less the umask.
    metadata : dict, optional
        Extra JSON-serialisable data (dictionaries with string keys), returned by
        :func:`read_metadata` under ``"user"``.

    Returns
    -------
    Path

    Raises
    ------
    ModelFileError
        For an unfitted estimator, another type, an activation (or parameter) that
        cannot be described by name (pickle such objects instead), or ``metadata`` that
        JSON cannot hold as it is (a key that is not a string).
    """
    from . import __version__
    from .estimators import ImplicitClassifier, ImplicitRegressor
    from .model import ImplicitModel

    arrays: dict = {}
    if isinstance(obj, ImplicitModel):
        meta = {"models": {"model": _model_entry(obj, "model", arrays)}}
    elif isinstance(obj, (ImplicitRegressor, ImplicitClassifier)):
        meta = _estimator_payload(obj, arrays)
    else:
        raise ModelFileError(
            f"save() writes ImplicitRegressor, ImplicitClassifier or ImplicitModel objects; "
            f"got {type(obj).__name__}"
        )
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION,
            "lifted_idl_version": __version__, "kind": type(obj).__name__, **meta}
    if metadata is not None:
        _check_user_metadata(metadata)
        meta["user"] = metadata
    meta["sha256"] = _digest(meta, arrays)
    path = Path(path)
    with atomic_write(path, "wb") as fh:
        np.savez(fh, **{_META: np.array(json.dumps(meta))}, **arrays)
    return path


# ----------------------------------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------------------------------
def _read_arrays(path: Path) -> dict:
    """The arrays of an ``.npz`` archive by name, as ``numpy.load(path, allow_pickle=False)``
    reads them; every member must be an ``.npy`` array whose header's shape and dtype account
    for the member's size (checked before its array is allocated, so that a small file cannot
    claim a huge array)."""
    disk_size = path.stat().st_size
    arrays = {}
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            name = info.filename
            if not name.endswith(".npy") or name[:-4] in arrays:
                raise ValueError(f"member {name!r} is not an .npy array of its own")
            arrays[name[:-4]] = _read_member(zf, info, disk_size)
    return arrays


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, disk_size: int) -> np.ndarray:
    """The array of one ``.npy`` member; ValueError where the sizes do not add up."""
    name = info.filename
    if info.flag_bits & 0x1:
        raise ValueError(f"member {name!r} is encrypted")
    if info.compress_type == zipfile.ZIP_STORED:
        sizes_ok = info.compress_size == info.file_size
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        sizes_ok = info.file_size <= _MAX_DEFLATE_RATIO * info.compress_size + 1024
    else:
        raise ValueError(f"member {name!r} uses the unsupported compression method "
                         f"{info.compress_type}")
    if not sizes_ok or info.compress_size > disk_size:
        raise ValueError(f"member {name!r} claims {info.file_size} bytes from "
                         f"{info.compress_size} stored in a file of {disk_size}")
    with zf.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"member {name!r} has .npy format version {version}")
        if dtype.hasobject:
            raise ValueError(f"member {name!r} holds Python objects, which are never "
                             "unpickled")
        size = fh.tell() + math.prod(shape) * dtype.itemsize
    if size != info.file_size:
        raise ValueError(f"member {name!r} claims shape {shape} of {dtype} ({size} bytes "
                         f"with its header) but holds {info.file_size} bytes")
    with zf.open(info) as fh:
        return np.lib.format.read_array(fh, allow_pickle=False)


def _read(path):
    """(metadata, arrays) of a model file, checked; never unpickles."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file not found: {path}")
    if path.is_dir():
        raise ModelFileError(f"{path} is a directory, not a model file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as err:
        raise ModelFileError(f"cannot read {path}: {err.strerror or err}") from None
    if head[:1] == bytes([_PICKLE_PROTOCOL_BYTE]) or not head.startswith(b"PK"):
        what = "a pickle" if head[:1] == bytes([_PICKLE_PROTOCOL_BYTE]) else "not an .npz file"
        raise ModelFileError(
            f"{path} is {what}, not a lifted_idl model file; model files are read without "
            "unpickling (convert a pickle you trust with lifted_idl.save(joblib.load(path), "
            "'model.npz'))"
        )
    try:
        arrays = _read_arrays(path)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError, zlib.error) as err:
        msg = " ".join(str(err).split())
        raise ModelFileError(f"{path} is not a readable model file ({msg})") from None
    except MemoryError:
        raise ModelFileError(f"{path} holds arrays too large for the memory available; "
                             "not loaded") from None
    raw = arrays.pop(_META, None)
    if raw is None or raw.shape != () or raw.dtype.kind != "U":
        raise ModelFileError(f"{path} has no lifted_idl metadata; not a model file")
    try:
        meta = json.loads(str(raw))
    except (ValueError, RecursionError):
        raise ModelFileError(f"{path}: its metadata is not valid JSON (or is nested too "
                             "deeply to read)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a lifted_idl model file (format "
                             f"{meta.get('format') if isinstance(meta, dict) else None!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{path} has model-file format version {meta.get('format_version')!r}; this "
            f"lifted_idl ({_version()}) reads version {FORMAT_VERSION} (written by lifted_idl "
            f"{meta.get('lifted_idl_version')!r})"
        )
    try:
        digest = _digest(meta, arrays)
    except RecursionError:
        raise ModelFileError(f"{path}: its metadata is nested too deeply to read") from None
    if meta.get("sha256") != digest:
        raise ModelFileError(f"{path} was modified after it was written (its checksum does "
                             "not match); refusing to load it")
    return meta, arrays


def _version():
    from . import __version__

    return __version__


def _file_activation(spec, path):
    """The activation of a description read from the file at ``path`` (named if refused)."""
    try:
        return _activation_from_spec(spec)
    except ModelFileError as err:
        raise ModelFileError(f"{path}: {err}") from None


def _build_model(meta, arrays, key, path, used):
    """The model ``key`` of a model file; the names of its arrays are added to ``used``."""
    from .model import ImplicitModel

    models = meta.get("models")
    entry = models.get(key) if isinstance(models, dict) else None
    if not isinstance(entry, dict) or not isinstance(entry.get("arrays"), list):
        raise ModelFileError(f"{path}: model {key!r} is missing from the file")
    names = entry["arrays"]
    if not all(isinstance(n, str) and n in _MODEL_ARRAYS + ("L", "R") for n in names) or (
            len(set(names)) != len(names)):
        raise ModelFileError(f"{path}: model {key!r} lists arrays {names!r}; a model has "
                             f"{', '.join(_MODEL_ARRAYS)} and the low-rank factors L, R of A")
    if ("L" in names) != ("R" in names):
        raise ModelFileError(f"{path}: model {key!r} has the low-rank factor "
                             f"{'L' if 'L' in names else 'R'} of A without its partner")
    got = {}
    for name in names:
        a = arrays.get(f"{key}.{name}")
        if a is None or a.dtype not in (np.float32, np.float64):
            raise ModelFileError(f"{path}: array {key}.{name} is missing or not float")
        got[name] = a
        used.add(f"{key}.{name}")
    factors = (got.pop("L"), got.pop("R")) if "L" in got else None
    activation = _file_activation(entry.get("activation"), path)
    try:
        return ImplicitModel(got.get("A"), got.get("B"), got.get("C"), got.get("D"),
                             b=got.get("b"), c=got.get("c"), activation=activation,
                             factors=factors)
    except ValueError as err:
        if isinstance(err, ModelFileError):
            raise
        raise ModelFileError(f"{path}: bad model {key!r}: {err}") from None


def _build_estimator(meta, arrays, path, used):
    """The fitted estimator of a model file, its parameters and fitted attributes checked;
    the names of the arrays it reads are added to ``used``."""
    from .estimators import ImplicitClassifier

    est = _unfitted_estimator(meta, arrays, path, used)
    model = _build_model(meta, arrays, "model_", path, used)
    scaled = _build_model(meta, arrays, "scaled", path, used)
    fitted = meta.get("fitted")
    if not isinstance(fitted, dict):
        raise ModelFileError(f"{path}: the fitted attributes of the {type(est).__name__} are "
                             "missing from the file")
    curve = arrays.get("loss_curve")
    if curve is None or curve.ndim != 1 or curve.dtype.kind != "f":
        raise ModelFileError(f"{path}: array loss_curve is missing or not a 1-D float array")
    used.update(("mean_u", "scale_u", "loss_curve"))
    state = {"model_": model, "_scaled_model": scaled,
             "_mean_u": arrays.get("mean_u"), "_scale_u": arrays.get("scale_u"),
             "loss_curve_": [float(v) for v in curve],
             "n_iter_": fitted.get("n_iter_"), "converged_": fitted.get("converged_"),
             "n_features_in_": fitted.get("n_features_in_")}
    ok = _common_state_ok(state, fitted.get("feature_names_in_"))
    if isinstance(est, ImplicitClassifier):
        ok = _classifier_state(state, arrays, fitted, ok)
        used.add("classes")
    else:
        state["_y_ndim"] = fitted.get("y_ndim")
        ok = ok and state["_y_ndim"] in (1, 2) and (state["_y_ndim"] == 2
                                                     or model.n_outputs == 1)
    if not ok:
        raise ModelFileError(f"{path}: the fitted attributes of the {type(est).__name__} are "
                             "inconsistent with its model; refusing to load it")
    weights = est.group_weights
    if weights is not None and len(weights) != state["n_features_in_"]:
        raise ModelFileError(f"{path}: group_weights has {len(weights)} weights for "
                             f"{state['n_features_in_']} features; refusing to load it")
    mean, scale = state["_mean_u"], state["_scale_u"]
    if not (mean.dtype.kind == scale.dtype.kind == "f" and np.all(np.isfinite(mean))
            and np.all(np.isfinite(scale)) and np.all(scale > 0)):
        raise ModelFileError(f"{path}: the feature means (mean_u) and scales (scale_u) must "
                             "be finite floats, the scales positive; refusing to load it")
    est._commit(state)
    return est


def _unfitted_estimator(meta, arrays, path, used):
    """The estimator of ``meta["kind"]`` with the saved parameters, validated (the array
    ``group_weights`` it reads is added to ``used``)."""
    from sklearn.utils._param_validation import InvalidParameterError

    from .estimators import ImplicitClassifier, ImplicitRegressor

    cls = {"ImplicitRegressor": ImplicitRegressor,
           "ImplicitClassifier": ImplicitClassifier}[meta["kind"]]
    params = meta.get("params")
    if not isinstance(params, dict):
        raise ModelFileError(f"{path}: the parameters of the {cls.__name__} are missing "
                             "from the file")
    params = dict(params)
    if isinstance(params.get("activation"), dict):
        params["activation"] = _file_activation(params["activation"].get("activation"), path)
    weights = params.get("group_weights")
    if weights is not None:
        w = arrays.get("group_weights")
        if not (isinstance(weights, dict) and weights.get("array") == "group_weights"
                and isinstance(weights.get("type"), str) and weights["type"] in _WEIGHTS_TYPES
                and w is not None):
            raise ModelFileError(f"{path}: bad group_weights parameter {weights!r}")
        used.add("group_weights")
        if not (w.ndim == 1 and _weights_ok(w, w.shape[0])):
            raise ModelFileError(f"{path}: array group_weights is not a vector of positive "
                                 "floats (inf allowed)")
        kind = _WEIGHTS_TYPES[weights["type"]]
        params["group_weights"] = w if kind is np.ndarray else kind(w.tolist())
    try:
        est = cls(**params)
        est._validate_params()
    except (TypeError, InvalidParameterError) as err:
        msg = " ".join(str(err).split())
        raise ModelFileError(f"{path}: bad estimator parameters ({msg})") from None
    return est


def _common_state_ok(state, names) -> bool:
    """Whether the fitted attributes shared by both estimators agree with the models."""
    p = state["n_features_in_"]
    ok = (isinstance(p, int) and state["model_"].n_features == p
          == state["_scaled_model"].n_features
          and isinstance(state["n_iter_"], int) and isinstance(state["converged_"], bool)
          and all(isinstance(state[k], np.ndarray) and state[k].shape == (p,)
                  for k in ("_mean_u", "_scale_u")))
    if names is not None:
        ok = ok and isinstance(names, list) and len(names) == p and all(
            isinstance(n, str) for n in names)
        state["feature_names_in_"] = np.asarray(names, dtype=object)
    return ok


def _classifier_state(state, arrays, fitted, ok) -> bool:
    """Add ``classes_`` to ``state``; whether they agree with the model (and ``ok`` so far):
    distinct numbers (finite) or strings, one per output."""
    classes = arrays.get("classes")
    kind = fitted.get("classes_kind")
    ok = ok and classes is not None and classes.ndim == 1 and (
        classes.shape[0] == state["model_"].n_outputs) and classes.dtype.kind in "biufU" and (
        kind == "array" or (kind == "str_object" and classes.dtype.kind == "U"))
    ok = ok and (classes.dtype.kind != "f" or bool(np.all(np.isfinite(classes)))) and (
        np.unique(classes).shape[0] == classes.shape[0])
    if ok and kind == "str_object":
        classes = classes.astype(object)
    state["classes_"] = classes
    return ok


def read_metadata(path) -> dict:
    """The JSON metadata of a model file (checked as :func:`load` checks it).

    Raises
    ------
    ModelFileError
        As :func:`load`.
    """
    return _read(path)[0]


def load(path):
    """Read a model file written by :func:`save`, without unpickling anything.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    ImplicitRegressor, ImplicitClassifier or ImplicitModel
        As saved; an estimator comes back fitted (``predict``, ``predict_proba``,
        ``score`` work and give the same results as before saving).

    Raises
    ------
    ModelFileError
        With a one-line message, for anything else: a missing file, a pickle (it is never
        unpickled), another archive, a file written by another format version, a file
        modified after it was written, or inconsistent contents.
    """
    meta, arrays = _read(path)
    kind = meta.get("kind")
    used: set = set()
    if kind == "ImplicitModel":
        obj = _build_model(meta, arrays, "model", path, used)
    elif kind in ("ImplicitRegressor", "ImplicitClassifier"):
        obj = _build_estimator(meta, arrays, path, used)
    else:
        raise ModelFileError(f"{path} holds an unknown kind of object {kind!r}")
    extra = sorted(set(arrays) - used)
    if extra:
        raise ModelFileError(f"{path} holds {len(extra)} array(s) that are not part of "
                             f"an {kind} ({', '.join(map(repr, extra[:5]))}); refusing to load it")
    return obj
