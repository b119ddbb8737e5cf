r"""Composition of implicit models and conversion of networks (theory §5, [IDL §2.4, §3], [CPL]).

Every function here returns a new :class:`~lifted_idl.ImplicitModel`

.. math:: \hat y = Cx + Du + c, \qquad x = \phi(Ax + Bu + b)   \qquad \text{[IDL (1.1)]},

whose matrices are assembled from the parts by block algebra, so that its predictions equal those
of the connected parts exactly (up to the fixed-point tolerance of the solver):

* :func:`cascade` — series connection, :math:`u_2 = \hat y_1` [IDL §2.4, Figure 2];
* :func:`parallel` — (weighted) sum of the outputs of models fed the same input [IDL §2.4];
* :func:`concatenate` — outputs stacked, :math:`\hat y = (\hat y_1, \hat y_2)` [IDL §2.4];
* :func:`feedback` — :math:`u_1 = u + y_2`, :math:`u_2 = y_1` [IDL §2.4]; not well-posed in
  general;
* :func:`from_mlp` — the exact implicit form (3.2) of a fitted scikit-learn MLP [IDL §3.2];
* :func:`cpl_block`, :func:`cpl_network` — the 1-Lipschitz convex potential layer of [CPL] and
  cascades of it.

When the parts have different activations the result carries a
:class:`~lifted_idl.activations.Blockwise` map :math:`\phi(z_1, z_2) = (\phi_1(z_1),
\phi_2(z_2))` in state order. Biases are carried along (they are the same as a constant input
1, theory "Notation"); a result has ``b`` (``c``) set to ``None`` only when no part contributes
one. Low-rank factors (theory §6) are kept by :func:`parallel` and :func:`concatenate` when every
part has them and dropped otherwise.

Well-posedness. For :func:`cascade`, :func:`parallel` and :func:`concatenate` the matrix
:math:`A` of the result is block (upper) triangular with the parts' matrices on the diagonal, so
it is well-posed iff every part is [IDL Thm 2.7, 2.8], and the DAG, inf-norm and PF certificates
of theory §2 carry over: :math:`\lambda_{PF}` of a block-triangular :math:`|A|` is the largest
of the blocks' (see the notes of :func:`cascade` for the one exception, :math:`\mu_\infty`).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

from ._array import check_finite, get_namespace, to_numpy
from .activations import Activation, Blockwise
from .model import ImplicitModel

__all__ = [
    "cascade",
    "parallel",
    "concatenate",
    "feedback",
    "from_mlp",
    "cpl_block",
    "cpl_network",
]

_FLOATS = (np.float32, np.float64)


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def _check_models(models, func: str) -> list[ImplicitModel]:
    """Check that ``models`` is a non-empty sequence of ImplicitModels in one array namespace."""
    if len(models) == 0:
        raise ValueError(f"{func}() needs at least one ImplicitModel; got none")
    for i, m in enumerate(models):
        if not isinstance(m, ImplicitModel):
            hint = " (convert it with lifted_idl.compose.from_mlp)" if hasattr(
                m, "coefs_") else ""
            raise TypeError(
                f"{func}(): models[{i}] must be an ImplicitModel; got "
                f"{type(m).__name__}{hint}"
            )
    spaces = {get_namespace(m.A).__name__ for m in models}
    if len(spaces) > 1:
        raise ValueError(
            f"{func}(): the models hold arrays of different libraries {sorted(spaces)}; move "
            "them to one (ImplicitModel.to_numpy) before composing"
        )
    return list(models)


def _dtype(models) -> np.dtype:
    dtype = np.result_type(*[m.dtype for m in models])
    return dtype if dtype in _FLOATS else np.dtype(np.float64)


def _vec(v, size, xp, dtype):
    """A bias vector, zeros when ``None``."""
    if v is None:
        return xp.zeros(size, dtype=dtype)
    return xp.asarray(v, dtype=dtype)


def _activation(blocks) -> Activation:
    """One activation for consecutive state blocks ``[(size, act), ...]``.

    The shared activation when all non-empty blocks agree, else a :class:`Blockwise` map.
    """
    used = [(s, a) for s, a in blocks if s > 0]
    if not used:
        return blocks[0][1] if blocks else "relu"
    first = used[0][1]
    if all(a == first for _, a in used):
        return first
    return Blockwise(used)


def _blockdiag(mats, xp, dtype):
    rows = sum(M.shape[0] for M in mats)
    cols = sum(M.shape[1] for M in mats)
    out = xp.zeros((rows, cols), dtype=dtype)
    r = c = 0
    for M in mats:
        out[r:r + M.shape[0], c:c + M.shape[1]] = M
        r += M.shape[0]
        c += M.shape[1]
    return out


def _any_bias(*vectors) -> bool:
    return any(v is not None for v in vectors)


# ----------------------------------------------------------------------------------------------
# cascade
# ----------------------------------------------------------------------------------------------
def _cascade2(first: ImplicitModel, second: ImplicitModel, name_first: str,
              name_second: str) -> ImplicitModel:
    if second.n_features != first.n_outputs:
        raise ValueError(
            f"cascade(): {name_second} takes p={second.n_features} inputs but {name_first} "
            f"gives q={first.n_outputs} outputs; they must agree (u2 = y1)"
        )
    xp = get_namespace(first.A)
    dtype = _dtype([first, second])
    A1, B1, C1, D1 = (xp.asarray(M, dtype=dtype) for M in (first.A, first.B, first.C, first.D))
    A2, B2, C2, D2 = (xp.asarray(M, dtype=dtype) for M in (second.A, second.B, second.C,
                                                            second.D))
    n1, n2 = first.n_states, second.n_states
    p = first.n_features
    q = second.n_outputs

    A = xp.zeros((n2 + n1, n2 + n1), dtype=dtype)
    A[:n2, :n2] = A2
    A[:n2, n2:] = B2 @ C1
    A[n2:, n2:] = A1
    B = xp.zeros((n2 + n1, p), dtype=dtype)
    B[:n2] = B2 @ D1
    B[n2:] = B1
    C = xp.zeros((q, n2 + n1), dtype=dtype)
    C[:, :n2] = C2
    C[:, n2:] = D2 @ C1
    D = D2 @ D1

    b = c = None
    if _any_bias(first.b, first.c, second.b):
        c1 = _vec(first.c, first.n_outputs, xp, dtype)
        b = xp.concatenate([_vec(second.b, n2, xp, dtype) + B2 @ c1,
                            _vec(first.b, n1, xp, dtype)])
    if _any_bias(first.c, second.c):
        c = _vec(second.c, q, xp, dtype) + D2 @ _vec(first.c, first.n_outputs, xp, dtype)
    act = _activation([(n2, second.activation), (n1, first.activation)])
    return ImplicitModel(A, B, C, D, b=b, c=c, activation=act)


def cascade(*models: ImplicitModel) -> ImplicitModel:
    r"""Series connection: each model is fed the output of the previous one.

    For two models (``first`` then ``second``, :math:`u_2 = \hat y_1`) the result has state
    :math:`x = (x_2, x_1)`, activation :math:`\phi(z_2, z_1) = (\phi_2(z_2), \phi_1(z_1))` and
    [IDL §2.4, Figure 2; theory §5]

    .. math::

        \left(\begin{array}{c|c} A & B \\ \hline C & D \end{array}\right) =
        \left(\begin{array}{cc|c} A_2 & B_2 C_1 & B_2 D_1 \\ 0 & A_1 & B_1 \\ \hline
        C_2 & D_2 C_1 & D_2 D_1 \end{array}\right), \qquad
        b = \begin{pmatrix} b_2 + B_2 c_1 \\ b_1 \end{pmatrix}, \quad c = c_2 + D_2 c_1.

    More models are folded from the left, ``cascade(m1, m2, m3) = cascade(cascade(m1, m2),
    m3)``, with state :math:`(x_3, x_2, x_1)` (the order of [IDL (3.2)]).

    Parameters
    ----------
    *models : ImplicitModel
        The models in the order the data flows through them; model ``k + 1`` must take as many
        inputs as model ``k`` has outputs.

    Returns
    -------
    ImplicitModel
        :math:`u \mapsto \hat y_K(\cdots \hat y_1(u))`. A single model is returned as a new
        model with the same parameters.

    Raises
    ------
    TypeError
        If an argument is not an :class:`~lifted_idl.ImplicitModel`.
    ValueError
        If no model is given or the dimensions do not chain.

    Notes
    -----
    :math:`A` is block upper triangular with diagonal blocks :math:`A_2, A_1`, so the result is
    well-posed iff both parts are [IDL Thm 2.8], and the DAG, inf-norm and PF certificates
    (theory §2) of the parts carry over to the result. A part certified only by
    :math:`\mu_\infty(A_i) < 1` [NEMON] may lose its certificate through the coupling block
    :math:`B_2 C_1` (its rows enter :math:`\mu_\infty`); the result is still well-posed
    mathematically, but :attr:`ImplicitModel.well_posedness` will not certify it.

    Examples
    --------
    >>> import numpy as np
    >>> from lifted_idl import ImplicitModel
    >>> from lifted_idl.compose import cascade
    >>> f = ImplicitModel(np.zeros((1, 1)), [[1.0]], [[2.0]], [[0.0]])  # u -> 2 relu(u)
    >>> g = ImplicitModel(np.zeros((1, 1)), [[-1.0]], [[1.0]], [[1.0]])  # v -> relu(-v) + v
    >>> float(cascade(f, g).predict(np.array([[1.5]]))[0, 0])
    3.0
    """
    models = _check_models(models, "cascade")
    out = models[0]
    if len(models) == 1:
        return ImplicitModel(out.A, out.B, out.C, out.D, b=out.b, c=out.c,
                             activation=out.activation, factors=out.factors)
    for k in range(1, len(models)):
        name_first = "models[0]" if k == 1 else f"cascade(models[0..{k - 1}])"
        out = _cascade2(out, models[k], name_first, f"models[{k}]")
    return out


# ----------------------------------------------------------------------------------------------
# parallel and concatenation
# ----------------------------------------------------------------------------------------------
def _stack_states(models, xp, dtype):
    """Block-diagonal A, stacked B and b, the blockwise activation and low-rank factors."""
    A = _blockdiag([xp.asarray(m.A, dtype=dtype) for m in models], xp, dtype)
    B = xp.concatenate([xp.asarray(m.B, dtype=dtype) for m in models], axis=0)
    b = None
    if _any_bias(*(m.b for m in models)):
        b = xp.concatenate([_vec(m.b, m.n_states, xp, dtype) for m in models])
    act = _activation([(m.n_states, m.activation) for m in models])
    factors = None
    if all(m.factors is not None for m in models):
        # blockdiag(L_k R_k^T) = blockdiag(L_k) blockdiag(R_k)^T  (theory §6)
        factors = (_blockdiag([xp.asarray(m.factors[0], dtype=dtype) for m in models], xp,
                              dtype),
                   _blockdiag([xp.asarray(m.factors[1], dtype=dtype) for m in models], xp,
                              dtype))
    return A, B, b, act, factors


def _check_same(models, attr: str, what: str, func: str):
    want = getattr(models[0], attr)
    for i, m in enumerate(models[1:], start=1):
        got = getattr(m, attr)
        if got != want:
            raise ValueError(
                f"{func}(): models[{i}] has {what}={got} but models[0] has {what}={want}; "
                "they must agree"
            )


def parallel(*models: ImplicitModel, weights: Sequence[float] | None = None) -> ImplicitModel:
    r"""Parallel connection: the (weighted) sum of the outputs of models fed the same input.

    :math:`\hat y(u) = \sum_k w_k \hat y_k(u)` [IDL §2.4; theory §5], with state
    :math:`x = (x_1, \dots, x_K)` and

    .. math::

        A = \mathrm{diag}(A_1, \dots, A_K), \quad
        B = \begin{pmatrix} B_1 \\ \vdots \\ B_K \end{pmatrix}, \quad
        C = (w_1 C_1, \dots, w_K C_K), \quad D = \sum_k w_k D_k, \quad
        b = \begin{pmatrix} b_1 \\ \vdots \\ b_K \end{pmatrix}, \quad c = \sum_k w_k c_k.

    Parameters
    ----------
    *models : ImplicitModel
        Models with the same numbers of inputs ``p`` and outputs ``q``.
    weights : sequence of float, optional
        One finite weight per model (default: all 1, the plain sum).

    Returns
    -------
    ImplicitModel

    Raises
    ------
    TypeError
        If an argument is not an :class:`~lifted_idl.ImplicitModel`.
    ValueError
        If no model is given, the models disagree on ``p`` or ``q``, or ``weights`` has the
        wrong length or a non-finite entry.

    Notes
    -----
    :math:`A` is block diagonal: the result is well-posed iff every part is, and
    :math:`\lambda_{PF}(|A|) = \max_k \lambda_{PF}(|A_k|)`, :math:`\|A\|_\infty = \max_k
    \|A_k\|_\infty`, :math:`\mu_\infty(A) = \max_k \mu_\infty(A_k)` (theory §2). A part with a
    DAG certificate next to a part certified only by :math:`\mu_\infty` is the one mix the
    sufficient conditions of theory §2 may fail to certify.
    """
    models = _check_models(models, "parallel")
    _check_same(models, "n_features", "p (inputs)", "parallel")
    _check_same(models, "n_outputs", "q (outputs)", "parallel")
    if weights is None:
        w = [1.0] * len(models)
    else:
        w = list(weights) if not isinstance(weights, str) else [weights]
        if len(w) != len(models) or not all(
            isinstance(v, numbers.Real) and np.isfinite(v) for v in w
        ):
            raise ValueError(
                f"parallel(): weights must be {len(models)} finite real numbers, one per model; "
                f"got weights={weights!r}"
            )
        w = [float(v) for v in w]
    xp = get_namespace(models[0].A)
    dtype = _dtype(models)
    A, B, b, act, factors = _stack_states(models, xp, dtype)
    pairs = list(zip(w, models, strict=True))
    C = xp.concatenate([wk * xp.asarray(m.C, dtype=dtype) for wk, m in pairs], axis=1)
    D = sum(wk * xp.asarray(m.D, dtype=dtype) for wk, m in pairs)
    c = None
    if _any_bias(*(m.c for m in models)):
        c = sum(wk * _vec(m.c, m.n_outputs, xp, dtype) for wk, m in pairs)
    return ImplicitModel(A, B, C, D, b=b, c=c, activation=act, factors=factors)


def concatenate(*models: ImplicitModel) -> ImplicitModel:
    r"""Concatenation: models fed the same input, outputs stacked.

    :math:`\hat y(u) = (\hat y_1(u), \dots, \hat y_K(u))` [IDL §2.4; theory §5], with state
    :math:`x = (x_1, \dots, x_K)`, :math:`A = \mathrm{diag}(A_k)`, :math:`B, b` stacked,
    :math:`C = \mathrm{diag}(C_k)`, :math:`D` and :math:`c` stacked.

    Parameters
    ----------
    *models : ImplicitModel
        Models with the same number of inputs ``p``.

    Returns
    -------
    ImplicitModel
        With ``q = sum of the parts' q``; outputs in the order of ``models``.

    Raises
    ------
    TypeError
        If an argument is not an :class:`~lifted_idl.ImplicitModel`.
    ValueError
        If no model is given or the models disagree on ``p``.

    Notes
    -----
    Block-diagonal :math:`A`: well-posed iff every part is, with the certificates of
    :func:`parallel`.
    """
    models = _check_models(models, "concatenate")
    _check_same(models, "n_features", "p (inputs)", "concatenate")
    xp = get_namespace(models[0].A)
    dtype = _dtype(models)
    A, B, b, act, factors = _stack_states(models, xp, dtype)
    C = _blockdiag([xp.asarray(m.C, dtype=dtype) for m in models], xp, dtype)
    D = xp.concatenate([xp.asarray(m.D, dtype=dtype) for m in models], axis=0)
    c = None
    if _any_bias(*(m.c for m in models)):
        c = xp.concatenate([_vec(m.c, m.n_outputs, xp, dtype) for m in models])
    return ImplicitModel(A, B, C, D, b=b, c=c, activation=act, factors=factors)


# ----------------------------------------------------------------------------------------------
# feedback
# ----------------------------------------------------------------------------------------------
def feedback(m1: ImplicitModel, m2: ImplicitModel) -> ImplicitModel:
    r"""Feedback connection: :math:`u_1 = u + y_2`, :math:`u_2 = y_1`, output :math:`y = y_1`.

    With :math:`D_1 = D_2 = 0` the loop is an implicit model with state :math:`x = (x_1, x_2)`,
    activation :math:`\phi(z_1, z_2) = (\phi_1(z_1), \phi_2(z_2))` and [IDL §2.4; theory §5]

    .. math::

        \left(\begin{array}{c|c} A & B \\ \hline C & D \end{array}\right) =
        \left(\begin{array}{cc|c} A_1 & B_1 C_2 & B_1 \\ B_2 C_1 & A_2 & 0 \\ \hline
        C_1 & 0 & 0 \end{array}\right), \qquad
        b = \begin{pmatrix} b_1 + B_1 c_2 \\ b_2 + B_2 c_1 \end{pmatrix}, \quad c = c_1.

    Parameters
    ----------
    m1 : ImplicitModel
        Forward model, ``p1`` inputs and ``q1`` outputs; must have ``D = 0``.
    m2 : ImplicitModel
        Feedback model with ``p2 = q1`` inputs and ``q2 = p1`` outputs; must have ``D = 0``.

    Returns
    -------
    ImplicitModel
        ``p = p1`` inputs, ``q = q1`` outputs.

    Raises
    ------
    TypeError
        If an argument is not an :class:`~lifted_idl.ImplicitModel`.
    ValueError
        If a ``D`` is not exactly zero (the loop would be an algebraic equation in the
        outputs, which this form does not cover) or the dimensions do not close the loop.

    Notes
    -----
    The loop is not well-posed in general, even when both parts are [IDL §2.4]: the coupling
    blocks :math:`B_1 C_2`, :math:`B_2 C_1` are off the block diagonal. The returned model's
    :attr:`~lifted_idl.ImplicitModel.well_posedness` reports which certificate of theory §2
    holds, if any, and solving a model without one raises
    :class:`~lifted_idl.exceptions.IllPosedModelError`.
    """
    _check_models([m1, m2], "feedback")
    for name, m in (("m1", m1), ("m2", m2)):
        Dmax = float(np.abs(to_numpy(m.D)).max(initial=0.0))
        if Dmax != 0.0:
            raise ValueError(
                f"feedback(): {name}.D must be zero (D1 = D2 = 0, [IDL §2.4]); got "
                f"max |{name}.D| = {Dmax:.3g}"
            )
    if m2.n_features != m1.n_outputs:
        raise ValueError(
            f"feedback(): m2 takes p2={m2.n_features} inputs but m1 gives q1={m1.n_outputs} "
            "outputs; they must agree (u2 = y1)"
        )
    if m2.n_outputs != m1.n_features:
        raise ValueError(
            f"feedback(): m2 gives q2={m2.n_outputs} outputs but m1 takes p1={m1.n_features} "
            "inputs; they must agree (u1 = u + y2)"
        )
    xp = get_namespace(m1.A)
    dtype = _dtype([m1, m2])
    A1, B1, C1 = (xp.asarray(M, dtype=dtype) for M in (m1.A, m1.B, m1.C))
    A2, B2, C2 = (xp.asarray(M, dtype=dtype) for M in (m2.A, m2.B, m2.C))
    n1, n2 = m1.n_states, m2.n_states
    p, q = m1.n_features, m1.n_outputs
    A = xp.zeros((n1 + n2, n1 + n2), dtype=dtype)
    A[:n1, :n1] = A1
    A[:n1, n1:] = B1 @ C2
    A[n1:, :n1] = B2 @ C1
    A[n1:, n1:] = A2
    B = xp.zeros((n1 + n2, p), dtype=dtype)
    B[:n1] = B1
    C = xp.zeros((q, n1 + n2), dtype=dtype)
    C[:, :n1] = C1
    D = xp.zeros((q, p), dtype=dtype)
    b = None
    if _any_bias(m1.b, m1.c, m2.b, m2.c):
        b = xp.concatenate([
            _vec(m1.b, n1, xp, dtype) + B1 @ _vec(m2.c, m2.n_outputs, xp, dtype),
            _vec(m2.b, n2, xp, dtype) + B2 @ _vec(m1.c, q, xp, dtype),
        ])
    c = None if m1.c is None else xp.asarray(m1.c, dtype=dtype)
    act = _activation([(n1, m1.activation), (n2, m2.activation)])
    return ImplicitModel(A, B, C, D, b=b, c=c, activation=act)


# ----------------------------------------------------------------------------------------------
# networks as implicit models
# ----------------------------------------------------------------------------------------------
_MLP_ACTIVATIONS = {"relu": "relu", "tanh": "tanh", "logistic": "sigmoid",
                    "identity": "identity"}


def _mlp_layers(mlp):
    """The checked ``(activation name, weights, intercepts)`` of a fitted scikit-learn MLP for
    :func:`from_mlp` (its Raises section)."""
    from sklearn.exceptions import NotFittedError
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.utils.validation import check_is_fitted

    if not isinstance(mlp, (MLPRegressor, MLPClassifier)):
        raise TypeError(
            "from_mlp(): mlp must be a fitted sklearn MLPRegressor or MLPClassifier; got "
            f"{type(mlp).__name__}"
        )
    try:
        check_is_fitted(mlp, ["coefs_", "intercepts_"])
    except NotFittedError as err:
        raise NotFittedError(
            f"from_mlp(): mlp ({type(mlp).__name__}) is not fitted; call mlp.fit first"
        ) from err
    name = getattr(mlp, "activation", None)
    if name not in _MLP_ACTIVATIONS:
        raise ValueError(
            f"from_mlp(): mlp.activation={name!r} is not supported; expected one of "
            f"{sorted(_MLP_ACTIVATIONS)}"
        )
    out = getattr(mlp, "out_activation_", "identity")
    if isinstance(mlp, MLPRegressor) and out != "identity":
        raise ValueError(
            f"from_mlp(): the regressor's output activation is {out!r} (loss="
            f"{getattr(mlp, 'loss', None)!r}); an implicit model's output is affine in its "
            "state, so only the identity output (the squared loss) has an exact implicit form"
        )
    Ws = [np.asarray(W) for W in mlp.coefs_]
    bs = [np.asarray(v) for v in mlp.intercepts_]
    if len(Ws) == 0 or len(Ws) != len(bs):
        raise ValueError(
            f"from_mlp(): mlp has {len(Ws)} weight matrices and {len(bs)} intercept vectors; "
            "expected the same positive number"
        )
    for k, (W, v) in enumerate(zip(Ws, bs, strict=True)):
        if W.ndim != 2 or v.shape != (W.shape[1],):
            raise ValueError(
                f"from_mlp(): mlp.coefs_[{k}] has shape {W.shape} and mlp.intercepts_[{k}] "
                f"shape {v.shape}; expected (n_in, n_out) and (n_out,)"
            )
        if k and W.shape[0] != Ws[k - 1].shape[1]:
            raise ValueError(
                f"from_mlp(): mlp.coefs_[{k}] takes {W.shape[0]} inputs but layer {k - 1} has "
                f"{Ws[k - 1].shape[1]} units"
            )
    return name, Ws, bs


def from_mlp(mlp) -> ImplicitModel:
    r"""The exact implicit form of a fitted scikit-learn ``MLPRegressor`` or ``MLPClassifier``.

    For the network :math:`x_0 = u`, :math:`x_{l+1} = \phi(W_l x_l + b_l)`
    (:math:`l = 0, \dots, L-1`), :math:`\hat y = W_L x_L + b_L`, with
    :math:`W_l` = ``coefs_[l].T`` and :math:`b_l` = ``intercepts_[l]``, the state is
    :math:`x = (x_L, \dots, x_1)` and [IDL (3.2), §3.2; theory §5]

    .. math::

        \left(\begin{array}{c|c} A & B \\ \hline C & D \end{array}\right) =
        \left(\begin{array}{cccc|c}
        0 & W_{L-1} & & & 0 \\ & 0 & \ddots & & \vdots \\ & & \ddots & W_1 & 0 \\
        & & & 0 & W_0 \\ \hline W_L & 0 & \cdots & 0 & 0 \end{array}\right), \qquad
        b = \begin{pmatrix} b_{L-1} \\ \vdots \\ b_0 \end{pmatrix}, \quad c = b_L.

    :math:`A` is strictly upper block triangular, so the model is well-posed whatever the
    weights, and :meth:`ImplicitModel.solve` computes the equilibrium exactly by
    back-substitution (``method == "triangular"``), which is the network's forward pass.

    Parameters
    ----------
    mlp : sklearn.neural_network.MLPRegressor or MLPClassifier
        Fitted, with ``activation`` in ``{"relu", "tanh", "logistic", "identity"}``
        (``"logistic"`` becomes the ``"sigmoid"`` activation).

    Returns
    -------
    ImplicitModel
        ``n = sum(hidden_layer_sizes)`` states, in the dtype of ``mlp.coefs_``. Its output is
        the network's last *pre-activation* layer: for a regressor (identity output) it equals
        ``mlp.predict`` (as a 2-D array); for a classifier, ``mlp.predict_proba`` is the
        softmax of it (multiclass) or the logistic function of it (binary: the probability of
        ``classes_[1]``; multilabel: column-wise).

    Raises
    ------
    TypeError
        If ``mlp`` is not an ``MLPRegressor`` or ``MLPClassifier``.
    sklearn.exceptions.NotFittedError
        If ``mlp`` is not fitted.
    ValueError
        If its activation is not supported, a regressor's output activation is not the
        identity (``loss="poisson"``: an exponential output), or its fitted weights are
        inconsistent.
    """
    name, Ws, bs = _mlp_layers(mlp)
    dtype = np.result_type(*Ws, *bs)
    if dtype not in _FLOATS:
        dtype = np.dtype(np.float64)
    L = len(Ws) - 1  # hidden layers
    sizes = [W.shape[1] for W in Ws[:-1]]  # n_1, ..., n_L
    n = sum(sizes)
    p, q = Ws[0].shape[0], Ws[-1].shape[1]
    # offset of hidden layer j+1 (0-based j) in the state x = (x_L, ..., x_1)
    off = [sum(sizes[j + 1:]) for j in range(L)]
    A = np.zeros((n, n), dtype=dtype)
    B = np.zeros((n, p), dtype=dtype)
    C = np.zeros((q, n), dtype=dtype)
    D = np.zeros((q, p), dtype=dtype)
    b = np.zeros(n, dtype=dtype)
    if L == 0:
        D[:] = Ws[0].T
    else:
        B[off[0]:off[0] + sizes[0]] = Ws[0].T
        for j in range(L):
            b[off[j]:off[j] + sizes[j]] = bs[j]
        for j in range(L - 1):  # x_{j+2} = phi(W_{j+1} x_{j+1} + b_{j+1})
            A[off[j + 1]:off[j + 1] + sizes[j + 1], off[j]:off[j] + sizes[j]] = Ws[j + 1].T
        C[:, off[L - 1]:off[L - 1] + sizes[L - 1]] = Ws[L].T
    c = np.array(bs[L], dtype=dtype)
    return ImplicitModel(A, B, C, D, b=b if n else None, c=c,
                         activation=_MLP_ACTIVATIONS[name])


def _check_W(W, name: str):
    W_np = np.asarray(to_numpy(W))
    if W_np.dtype.kind not in "fiu" or W_np.ndim != 2:
        raise ValueError(
            f"{name} must be a real 2-D array of shape (k, d); got dtype {W_np.dtype} and shape "
            f"{W_np.shape}"
        )
    if W_np.shape[0] == 0 or W_np.shape[1] == 0:
        raise ValueError(f"{name} must have k >= 1 rows and d >= 1 columns; got shape "
                         f"{W_np.shape}")
    check_finite(name, W_np, np)
    return W_np


def cpl_block(W, b=None) -> ImplicitModel:
    r"""The convex potential layer of [CPL] as an implicit block.

    The layer

    .. math:: z = x - \frac{2}{\|W\|_2^2}\, W^\top \sigma(W x + b), \qquad \sigma = \mathrm{ReLU},

    is a gradient step of size :math:`2/\|W\|_2^2` on the convex potential
    :math:`F(x) = \sum_i \tfrac12 (w_i^\top x + b_i)_+^2`, which is
    :math:`\|W\|_2^2`-smooth, hence 1-Lipschitz in the l2 norm [CPL, "Convex Potential
    Layer"]. As an implicit model (theory §5): :math:`A = 0`, :math:`B = W`, bias :math:`b`,
    :math:`C = -\tfrac{2}{\|W\|_2^2} W^\top`, :math:`D = I`, activation ReLU.

    Parameters
    ----------
    W : array of shape (k, d)
        Weights, ``k`` hidden units on inputs of dimension ``d``; not all zero.
    b : array of shape (k,), optional
        Bias (default zero).

    Returns
    -------
    ImplicitModel
        ``n = k`` states, ``p = q = d``.

    Raises
    ------
    ValueError
        If ``W`` is not a finite real 2-D array with a positive spectral norm, or ``b`` does
        not have shape ``(k,)`` or is not finite.

    Notes
    -----
    :math:`\|W\|_2` is computed exactly (SVD), not by the power iteration [CPL] uses in
    training, so the 1-Lipschitz property holds up to rounding.
    """
    W = _check_W(W, "W")
    k, d = W.shape
    dtype = W.dtype if W.dtype in _FLOATS else np.dtype(np.float64)
    W = W.astype(dtype, copy=False)
    if b is not None:
        b_np = np.asarray(to_numpy(b))
        if b_np.dtype.kind not in "fiu" or b_np.shape != (k,):
            raise ValueError(
                f"b must be a real array of shape ({k},) to match W of shape {W.shape}; got "
                f"dtype {b_np.dtype} and shape {b_np.shape}"
            )
        check_finite("b", b_np, np)
        b = b_np.astype(dtype)
    s = float(np.linalg.norm(W.astype(np.float64), 2))
    if s == 0.0:
        raise ValueError("W must have a positive spectral norm ||W||_2; got W = 0")
    h = 2.0 / (s * s)
    return ImplicitModel(np.zeros((k, k), dtype=dtype), W, (-h * W.T).astype(dtype),
                         np.eye(d, dtype=dtype), b=b, activation="relu")


def cpl_network(Ws: Sequence, bs: Sequence | None = None) -> ImplicitModel:
    r"""A deep CPL network: the :func:`cascade` of :func:`cpl_block` layers [CPL; theory §5].

    :math:`z_0 = u`, :math:`z_{l+1} = z_l - \frac{2}{\|W_l\|_2^2} W_l^\top \sigma(W_l z_l + b_l)`;
    a composition of 1-Lipschitz (l2) maps, hence 1-Lipschitz. The implicit form has a strictly
    upper block-triangular :math:`A` (solved by back-substitution) with state
    :math:`(x_L, \dots, x_1)`.

    Parameters
    ----------
    Ws : sequence of arrays of shape (k_l, d)
        Layer weights; every layer maps :math:`\mathbb{R}^d` to itself, so all share ``d``.
    bs : sequence of arrays of shape (k_l,), optional
        Layer biases (default zero); one per layer.

    Returns
    -------
    ImplicitModel
        ``p = q = d``.

    Raises
    ------
    ValueError
        If ``Ws`` is empty, ``bs`` has a different length, or a layer is invalid (see
        :func:`cpl_block`; the message names ``Ws[l]`` / ``bs[l]``).
    """
    if isinstance(Ws, np.ndarray) and Ws.ndim == 2:
        raise ValueError(
            "cpl_network(): Ws must be a sequence of 2-D weight arrays; got a single 2-D array "
            "(use cpl_block, or wrap it in a list)"
        )
    Ws = list(Ws)
    if not Ws:
        raise ValueError("cpl_network(): Ws must hold at least one weight matrix; got none")
    if bs is None:
        bs = [None] * len(Ws)
    else:
        bs = list(bs)
        if len(bs) != len(Ws):
            raise ValueError(
                f"cpl_network(): bs must have one bias per layer; got {len(bs)} biases for "
                f"{len(Ws)} layers"
            )
    blocks = []
    d = None
    for l, (W, b) in enumerate(zip(Ws, bs, strict=True)):
        W = _check_W(W, f"Ws[{l}]")
        if d is None:
            d = W.shape[1]
        elif W.shape[1] != d:
            raise ValueError(
                f"cpl_network(): Ws[{l}] has shape {W.shape} but Ws[0] acts on d={d} inputs; "
                "every CPL layer maps R^d to itself"
            )
        try:
            blocks.append(cpl_block(W, b))
        except ValueError as err:
            raise ValueError(f"cpl_network(): layer {l} (Ws[{l}], bs[{l}]): {err}") from err
    return cascade(*blocks)
