r"""The implicit model :math:`\hat y = Cx + Du + c`, :math:`x = \phi(Ax + Bu + b)` [IDL §2]."""

from __future__ import annotations

import numpy as np
from sklearn.utils import gen_batches

from . import kernel
from ._array import check_finite, cupy_available, get_namespace, to_numpy
from ._validation import check_int, check_numeric
from .activations import Activation, get_activation
from .exceptions import IllPosedModelError
from .wellposedness import (
    WellPosedness,
    averaged_step,
    dag_levels,
    is_well_posed,
    mu_inf,
    pf_eigenvalue,
)

__all__ = ["ImplicitModel"]

_FLOATS = (np.float32, np.float64)
_PARAMS = ("A", "B", "C", "D", "b", "c", "activation", "factors")


def _check_matrix(name, M, shape=None, ndim=2, finite=True):
    """Validate a parameter: numeric, ``ndim``-D, of ``shape`` (None = any), finite (unless
    ``finite=False``: a chunked solve checks each chunk)."""
    if M is None:
        raise ValueError(f"{name} is required")
    xp = get_namespace(M)
    if xp is np:
        M = np.asarray(M)
    check_numeric(name, M, shape, ndim)
    if finite:
        check_finite(name, M, xp)
    return M


class ImplicitModel:
    r"""An implicit model: :math:`\hat y = Cx + Du + c` with :math:`x = \phi(Ax + Bu + b)`.

    The papers' model [IDL §2] in the sklearn row convention: for inputs ``U`` of shape
    ``(m, p)`` the states are ``X`` of shape ``(m, n)`` with
    :math:`X = \phi(X A^\top + U B^\top + b)` and the outputs are
    :math:`\hat Y = X C^\top + U D^\top + c`, shape ``(m, q)``.

    Parameters
    ----------
    A : array of shape (n, n)
    B : array of shape (n, p)
    C : array of shape (q, n)
    D : array of shape (q, p)
    b : array of shape (n,), optional
        State bias.
    c : array of shape (q,), optional
        Output bias.
    activation : str or Activation, default="relu"
        Componentwise ("relu", "leaky_relu", "tanh", "sigmoid", "identity") or a
        :class:`~lifted_idl.activations.Blockwise` map.
    factors : tuple (L, R), optional
        Low-rank factors with ``A = L @ R.T`` (theory §6); the kernel then iterates in
        :math:`O(mnk)`. Build with :meth:`from_low_rank`.

    Raises
    ------
    ValueError
        For a parameter of the wrong shape or dtype, or holding NaN or inf (the message names
        it and shows the value seen).

    Notes
    -----
    Parameters are copied and keep the floating dtype they are given (float32 or float64;
    integers become float64; mixed inputs take the wider type). Inference runs in the dtype of
    the input when it is float32 or float64, so float32 data stays float32. The well-posedness
    certificate (theory §2) is computed once, on first use, and cached. Assigning a parameter
    attribute (``model.C = ...``) checks the value as the constructor does (a bad one raises and
    leaves the model as it was), stores a copy, and clears the cache; assigning A drops
    low-rank factors, as :meth:`replace` does. Treat the arrays as immutable: an in-place change
    is not seen by the cache. The model pickles as its arrays and settings only.

    Examples
    --------
    >>> import numpy as np
    >>> from lifted_idl import ImplicitModel
    >>> A = np.array([[0.0, 0.5], [0.0, 0.0]])
    >>> B, C, D = np.eye(2), np.ones((1, 2)), np.zeros((1, 2))
    >>> ImplicitModel(A, B, C, D).predict(np.array([[1.0, 2.0]]))
    array([[4.]])
    """

    def __init__(self, A, B, C, D, b=None, c=None, activation="relu", factors=None):
        A = _check_matrix("A", A)
        n = A.shape[0]
        A = _check_matrix("A", A, (n, n))
        B = _check_matrix("B", B, (n, None))
        p = B.shape[1]
        C = _check_matrix("C", C, (None, n))
        q = C.shape[0]
        D = _check_matrix("D", D, (q, p))
        if b is not None:
            b = _check_matrix("b", b, (n,), ndim=1)
        if c is not None:
            c = _check_matrix("c", c, (q,), ndim=1)
        act = get_activation(activation)
        if not isinstance(act, Activation):  # pragma: no cover - get_activation guarantees it
            raise ValueError(f"activation={activation!r} is not an Activation")
        if getattr(act, "size", n) != n:
            raise ValueError(
                f"activation covers {act.size} states but A has n={n}; they must agree"
            )
        arrays = [A, B, C, D] + [v for v in (b, c) if v is not None]
        dtype = np.result_type(*[a.dtype for a in arrays])
        if dtype not in _FLOATS:
            dtype = np.dtype(np.float64)
        xp = get_namespace(A)

        def cast(M):
            return None if M is None else xp.array(M, dtype=dtype, copy=True)

        object.__setattr__(self, "_cache", {})
        self.A, self.B, self.C, self.D = cast(A), cast(B), cast(C), cast(D)
        self.b, self.c = cast(b), cast(c)
        self.activation = act
        if factors is not None:
            try:
                L, R = factors
            except (TypeError, ValueError):
                raise ValueError(
                    f"factors must be a pair (L, R) with A = L @ R.T; got {type(factors)}"
                ) from None
            L = _check_matrix("L", L, (n, None))
            R = _check_matrix("R", R, L.shape)
            err = float(xp.abs(L @ R.T - self.A).max()) if n else 0.0
            if err > 1e-6 * max(1.0, float(xp.abs(self.A).max()) if n else 0.0):
                raise ValueError(
                    f"factors (L, R) do not reproduce A = L @ R.T: max error {err:.3g}"
                )
            factors = (cast(L), cast(R))
        self.factors = factors

    @classmethod
    def _trusted(cls, A, B, C, D, b=None, c=None, activation="relu") -> ImplicitModel:
        """The model of the constructor from NumPy arrays of consistent shapes and finite
        values that the caller has already checked, without the constructor's validation: the
        trainers build one (or two) per round from the weights their block solvers return. The
        arrays are copied and cast to their common floating dtype, as by the constructor."""
        arrays = [A, B, C, D] + [v for v in (b, c) if v is not None]
        dtype = np.result_type(*[a.dtype for a in arrays])
        if dtype not in _FLOATS:
            dtype = np.dtype(np.float64)

        def cast(M):
            return None if M is None else np.array(M, dtype=dtype, copy=True)

        self = object.__new__(cls)
        d = self.__dict__
        d["_cache"] = {}
        d["A"], d["B"], d["C"], d["D"] = cast(A), cast(B), cast(C), cast(D)
        d["b"], d["c"] = cast(b), cast(c)
        d["activation"] = get_activation(activation)
        d["factors"] = None
        return self

    def __setattr__(self, name, value):
        d = self.__dict__
        if name in _PARAMS and "factors" in d:
            # a built model (``factors`` is set last): the new value is checked as the
            # constructor checks it, through :meth:`replace` (a bad value raises and the model
            # stays as it was); every parameter then comes from that new model
            new = self.replace(**{name: value})
            d.update({k: new.__dict__[k] for k in _PARAMS})
            d["_cache"] = {}
            return
        if name in _PARAMS:
            d.get("_cache", {}).clear()
        object.__setattr__(self, name, value)

    # ------------------------------------------------------------------------------------------
    @classmethod
    def from_low_rank(cls, L, R, B, C, D, b=None, c=None, activation="relu") -> ImplicitModel:
        r"""Model with :math:`A = L R^\top` (theory §6), solved in :math:`O(mnk)` per step."""
        xp = get_namespace(L)
        L = _check_matrix("L", L)
        R = _check_matrix("R", R, L.shape)
        A = xp.asarray(L) @ xp.asarray(R).T
        return cls(A, B, C, D, b=b, c=c, activation=activation, factors=(L, R))

    @property
    def n_states(self) -> int:
        return self.A.shape[0]

    @property
    def n_features(self) -> int:
        return self.B.shape[1]

    @property
    def n_outputs(self) -> int:
        return self.C.shape[0]

    @property
    def dtype(self):
        return self.A.dtype

    def replace(self, **changes) -> ImplicitModel:
        """A new model with some of ``A, B, C, D, b, c, activation, factors`` replaced.

        Low-rank factors are kept unless A is replaced (then pass new ``factors`` to keep the
        low-rank solver).
        """
        params = dict(A=self.A, B=self.B, C=self.C, D=self.D, b=self.b, c=self.c,
                      activation=self.activation,
                      factors=None if "A" in changes else self.factors)
        unknown = set(changes) - set(params)
        if unknown:
            raise ValueError(f"replace() got unknown parameter(s) {sorted(unknown)}")
        params.update(changes)
        return type(self)(**params)

    def astype(self, dtype) -> ImplicitModel:
        """The same model with parameters cast to ``dtype`` (float32 or float64)."""
        dtype = np.dtype(dtype)
        if dtype not in _FLOATS:
            raise ValueError(f"dtype must be float32 or float64; got dtype={dtype}")
        if dtype == self.dtype:
            return self
        f = self.factors
        return type(self)(
            *(M.astype(dtype) for M in (self.A, self.B, self.C, self.D)),
            b=None if self.b is None else self.b.astype(dtype),
            c=None if self.c is None else self.c.astype(dtype),
            activation=self.activation,
            factors=None if f is None else (f[0].astype(dtype), f[1].astype(dtype)),
        )

    def to_numpy(self) -> ImplicitModel:
        """The same model with NumPy arrays (from CuPy ones, say)."""
        f = self.factors
        return type(self)(
            *(to_numpy(M) for M in (self.A, self.B, self.C, self.D)),
            b=None if self.b is None else to_numpy(self.b),
            c=None if self.c is None else to_numpy(self.c),
            activation=self.activation,
            factors=None if f is None else (to_numpy(f[0]), to_numpy(f[1])),
        )

    # ------------------------------------------------------------------------------------------
    @property
    def well_posedness(self) -> WellPosedness:
        """The certificate of theory §2 that holds for A (computed once, then cached).

        See :func:`lifted_idl.wellposedness.is_well_posed`. For a low-rank model where no
        certificate holds for the full A, :math:`\\lambda_{PF}(|R|^\\top\\mathrm{diag}(\\gamma)
        |L|) < 1` (theory §6) is tried last and reported as ``"lowrank"``.
        """
        wp = self._cache.get("wp")
        if wp is None:
            wp = is_well_posed(to_numpy(self.A), self.activation)
            if not wp.well_posed and self.factors is not None and self.activation.componentwise:
                L, R = (np.abs(np.asarray(to_numpy(M), dtype=np.float64)) for M in self.factors)
                g = self.activation.state_lipschitz(self.n_states)
                M = R.T @ (g[:, None] * L)
                lam = float(np.max(np.abs(np.linalg.eigvals(M)), initial=0.0))
                if lam < 1:
                    wp = WellPosedness(True, "lowrank", lam, lam)
            self._cache["wp"] = wp
        return wp

    @property
    def is_well_posed(self) -> bool:
        return self.well_posedness.well_posed

    def _levels(self):
        lv = self._cache.get("levels")
        if lv is None:
            lv = dag_levels(to_numpy(self.A), activation=self.activation)
            self._cache["levels"] = lv if lv is not None else False
        return lv or None

    def _params_for(self, dtype, xp):
        key = ("params", np.dtype(dtype).str, xp.__name__)
        P = self._cache.get(key)
        if P is None:
            def conv(M):
                if M is None:
                    return None
                if xp is np:
                    return np.asarray(to_numpy(M), dtype=dtype)
                return xp.asarray(M, dtype=dtype)

            P = {k: conv(getattr(self, k)) for k in ("A", "B", "C", "D", "b", "c")}
            if self.factors is not None:
                P["factors"] = (conv(self.factors[0]), conv(self.factors[1]))
            self._cache[key] = P
        return P

    def _check_input(self, U, name="U", cast=True):
        """Validate ``U`` (dense, 2-D, numeric, ``n_features`` columns); return ``(U, xp)``.

        With ``cast=True`` also check that U is finite and cast it to the compute dtype (its own
        when float32/float64, else the model's). The chunked paths pass ``cast=False`` and do
        both per chunk (:meth:`_input_chunk`), so that no full-size temporary is made.
        """
        xp = get_namespace(U)
        if xp is np:
            if hasattr(U, "toarray") or type(U).__module__.startswith("scipy.sparse"):
                raise TypeError(
                    f"{name} is a sparse matrix; ImplicitModel needs a dense array "
                    "(call .toarray())"
                )
            U = np.asarray(U)
        if U.dtype.kind not in "fiub":
            raise ValueError(f"{name} must be numeric; got dtype {U.dtype}")
        if U.ndim != 2:
            raise ValueError(
                f"{name} must be 2-D with shape (n_samples, {self.n_features}); got shape "
                f"{U.shape}"
            )
        if U.shape[1] != self.n_features:
            raise ValueError(
                f"{name} has {U.shape[1]} features (shape {U.shape}); the model expects "
                f"{self.n_features}"
            )
        if not cast:
            return U, xp
        check_finite(name, U, xp)
        return U.astype(self._compute_dtype(U), copy=False), xp

    def _compute_dtype(self, U):
        """The dtype inference runs in: the input's when float32/float64, else the model's."""
        return U.dtype if U.dtype in _FLOATS else self.dtype

    @staticmethod
    def _input_chunk(name, M, sl, dtype, xp):
        """Rows ``sl`` of ``M``, checked finite and cast to ``dtype`` (the chunk only).

        A non-finite chunk re-runs the check on the whole of ``M`` so that the message gives
        the entry's index in ``M``.
        """
        Mc = M[sl]
        if not bool(xp.isfinite(Mc).all()):
            check_finite(name, M, xp)
        return Mc.astype(dtype, copy=False)

    def row_bytes(self, dtype=None) -> int:
        """Upper estimate of the bytes that :meth:`predict` holds per input row while it solves.

        The solver keeps, per sample, about seven state vectors of length n at its peak (the
        pre-activation ``Z0``, the iterate, the output buffer, the returned states and, while
        the active rows are compacted, copies of the iterate and ``Z0``; back-substitution keeps
        permuted copies of the same size), the rank-k product of a low-rank model, the input
        row cast to the compute dtype, the q outputs and three q-vector temporaries, and a few
        per-sample scalars. To bound a prediction's extra memory by ``budget`` bytes, pass
        ``batch_size=budget // model.row_bytes()``; the estimators derive their chunks from it
        with scikit-learn's ``get_chunk_n_rows`` and ``working_memory``.

        Parameters
        ----------
        dtype : float32 or float64, optional
            The compute dtype (the input's); default: the model's.
        """
        dtype = self.dtype if dtype is None else np.dtype(dtype)
        k = 0 if self.factors is None else self.factors[0].shape[1]
        per_row = 7 * self.n_states + k + self.n_features + 4 * self.n_outputs + 8
        return int(per_row * np.dtype(dtype).itemsize)

    def _default_max_iter(self, wp: WellPosedness, tol: float) -> int:
        """Iterations for the certified contraction c to reach ``tol``, with a 3× margin."""
        c = wp.contraction if wp.well_posed else 0.99
        c = min(max(c, 1e-3), 0.9999)
        need = np.log(max(tol, 1e-300)) / np.log(c)
        if wp.certificate == "dag":  # Picard on a nilpotent A is exact after depth + 1 steps
            need = max(need, self.n_states + 2)
        return int(min(max(3 * need + 50, 100), 100000))

    @staticmethod
    def _to_device(U, device):
        """Move ``U`` to ``device`` ("cpu", "cuda", or None to keep it where it is)."""
        if device is None:
            return U
        if device == "cpu":
            return to_numpy(U)
        if device == "cuda":
            if not cupy_available():
                raise ValueError(
                    "device='cuda' needs CuPy and a visible GPU (pip install lifted_idl[gpu]); "
                    "none was found"
                )
            import cupy

            return cupy.asarray(U)
        raise ValueError(f"device must be None, 'cpu' or 'cuda'; got device={device!r}")

    def solve(self, U, method="auto", tol=None, max_iter=None, X0=None, force=False,
              batch_size=None, warn=True, alpha=None, device=None) -> kernel.FixedPointResult:
        """Solve the equilibrium for inputs ``U`` and return the kernel's full result.

        Parameters
        ----------
        U : array of shape (m, p)
        method : {"auto", "picard", "averaged", "triangular", "lowrank", "anderson"}
            ``"auto"`` picks exact back-substitution for DAG-structured A [IDL §3], the
            averaged iteration under the :math:`\\mu_\\infty` certificate [NEMON] (where
            Picard need not converge), the low-rank iteration when factors are known (theory
            §6), and Picard under the inf-norm or PF certificate [IDL Thm 2.2]. ``"anderson"``
            is opt-in, for slowly contracting problems (see :mod:`lifted_idl.kernel`).
        tol : float, optional
            Per-sample relative tolerance (default 1e-10 in float64, 1e-5 in float32).
        max_iter : int, optional
            Default: enough for the certified contraction factor to reach ``tol``, times 3.
        X0 : array of shape (m, n), optional
            Warm start.
        force : bool, default=False
            Iterate even when no well-posedness certificate holds (otherwise
            :class:`~lifted_idl.exceptions.IllPosedModelError` is raised).
        batch_size : int, optional
            Solve in chunks of this many samples: besides the returned (m, n) states, the
            solver then holds only one chunk's work arrays (about :meth:`row_bytes` per row of
            the chunk), and an integer input is cast to floating point one chunk at a time.
            Each sample's answer does not depend on the chunk it is in (samples converge and
            are frozen one by one), so chunking changes memory, not results. A few thousand
            rows already run at full speed (``benchmarks/README.md``); use :meth:`predict`
            with ``batch_size`` when only the outputs are needed, it never holds the (m, n)
            states.
        warn : bool, default=True
            Raise a :class:`~lifted_idl.exceptions.ConvergenceWarning` when a sample does not
            converge (the result's ``converged`` and ``residual`` say so either way); a chunked
            solve warns once, for all chunks.
        alpha : float, optional
            Step of the averaged iteration; default: the NE-MON step
            :func:`~lifted_idl.wellposedness.averaged_step` when :math:`\\mu_\\infty(A\\Gamma)
            < 1`, else 1.
        device : {None, "cpu", "cuda"}, optional
            Where to compute: None keeps the input's array library (NumPy or CuPy), "cuda"
            moves ``U`` to the GPU with CuPy, "cpu" to NumPy. The states come back on that
            device.

        Returns
        -------
        FixedPointResult
        """
        U, xp = self._check_input(self._to_device(U, device), cast=False)
        plan = self._plan(method, tol, max_iter, alpha, force, self._compute_dtype(U))
        m = U.shape[0]
        chunk = self._check_batch_size(batch_size, m)
        if chunk is None:
            return self._run_whole(U, xp, plan, X0, warn)[0]
        X = xp.empty((m, self.n_states), dtype=plan["dtype"])

        def keep(sl, Uc, res):
            X[sl] = res.X

        res = self._solve_chunked(U, xp, plan, X0, chunk, warn, keep)
        res.X = X
        return res

    def _plan(self, method, tol, max_iter, alpha, force, dtype) -> dict:
        """Check the certificate and resolve ``method="auto"``, ``alpha`` and ``max_iter`` once
        for all the chunks of a solve."""
        wp = self.well_posedness
        if not wp.well_posed and not force:
            raise IllPosedModelError(
                f"No well-posedness certificate holds for this A: lambda_PF = {wp.value:.6g} "
                f">= 1, mu_inf >= 1 and A is not triangular (n = {self.n_states}). Rescale or "
                "project A (lifted_idl.wellposedness.project_inf_norm_ball), or pass "
                "force=True to iterate anyway."
            )
        valid = ("auto",) + kernel.METHODS
        if method not in valid:
            raise ValueError(f"method must be one of {valid}; got method={method!r}")
        if method == "auto":
            if self._levels() is not None:
                method = "triangular"
            elif wp.certificate == "mu_inf":  # Picard, low-rank or not, need not converge
                method = "averaged"
            elif self.factors is not None:
                method = "lowrank"
            else:
                method = "picard"
        levels = None
        if method == "triangular":
            levels = self._levels()
            if levels is None:
                raise ValueError(
                    "method='triangular' needs A strictly (block-)triangular up to a permutation"
                )
        if method == "lowrank" and self.factors is None:
            raise ValueError("method='lowrank' needs a model built with factors (L, R)")
        if method == "averaged" and alpha is None:
            alpha = wp.alpha if wp.certificate == "mu_inf" else self._nemon_alpha()
        if max_iter is None and method != "triangular":
            eff_tol = kernel._check_tol(tol, dtype)  # a bad tol is named here
            max_iter = self._default_max_iter(wp, eff_tol)
        return dict(method=method, levels=levels, tol=tol, max_iter=max_iter,
                    alpha=1.0 if alpha is None else alpha, dtype=np.dtype(dtype))

    @staticmethod
    def _check_batch_size(batch_size, m):
        """The chunk length, or None when ``m`` rows are solved at once."""
        batch_size = check_int("batch_size", batch_size, 1, allow_none=True)
        return batch_size if batch_size is not None and m > batch_size else None

    def _run(self, U, xp, plan, X0, warn) -> kernel.FixedPointResult:
        """One kernel solve for inputs ``U`` (checked and cast) under a :meth:`_plan`."""
        P = self._params_for(U.dtype, xp)
        # in the layout the fixed-point iterations work in (kernel._iterate_order)
        Z0 = xp.empty((U.shape[0], self.n_states), dtype=U.dtype,
                      order=kernel._iterate_order(xp))
        with np.errstate(over="ignore", invalid="ignore"):
            xp.matmul(U, P["B"].T, out=Z0)
            if P["b"] is not None:
                Z0 += P["b"]
        try:  # the kernel checks Z0 (finite, shape) once; its error is renamed here
            return kernel.solve(P["A"], Z0, self.activation, plan["method"], tol=plan["tol"],
                                max_iter=plan["max_iter"], X0=X0, alpha=plan["alpha"],
                                levels=plan["levels"], factors=P.get("factors"), warn=warn,
                                force=True)
        except ValueError:
            if bool(xp.isfinite(Z0).all()):
                raise
            # U itself is finite (checked): U B^T + b overflowed
            raise ValueError(f"the input U is too large for this model: U B^T + b overflows "
                             f"{U.dtype} (largest |U| entry {float(xp.abs(U).max()):.3g})"
                             ) from None

    def _nemon_alpha(self) -> float:
        a = self._cache.get("alpha")
        if a is None:
            A = np.asarray(to_numpy(self.A), dtype=np.float64)
            if self.activation.componentwise:
                A = A * self.activation.state_lipschitz(self.n_states)[None, :]
            a = averaged_step(A)[0] if mu_inf(A) < 1 else 1.0
            self._cache["alpha"] = a
        return a

    def _solve_chunked(self, U, xp, plan, X0, batch_size, warn, emit):
        """Solve ``U`` (shape-checked, not yet cast) in chunks of ``batch_size`` rows and hand
        each chunk's ``(slice, cast inputs, FixedPointResult)`` to ``emit``; return the
        combined result without states (``X=None``). Only the current chunk's inputs, warm
        start and work arrays are alive at a time."""
        m = U.shape[0]
        if X0 is not None:
            X0 = _check_matrix("X0", X0, (m, self.n_states), finite=False)
        dtype = plan["dtype"]
        n_iter, residual, n_unconv = 0, 0.0, 0
        for sl in gen_batches(m, batch_size):
            Uc = self._input_chunk("U", U, sl, dtype, xp)
            X0c = None if X0 is None else self._input_chunk("X0", X0, sl, dtype, xp)
            r = self._run(Uc, xp, plan, X0c, warn=False)
            emit(sl, Uc, r)
            n_iter = max(n_iter, r.n_iter)
            residual = max(residual, r.residual)
            n_unconv += r.n_unconverged
        res = kernel.FixedPointResult(None, n_iter, residual, n_unconv == 0, n_unconv,
                                      plan["method"])
        if warn:
            kernel._warn(res, kernel._check_tol(plan["tol"], dtype), plan["max_iter"])
        return res

    def equilibrium(self, U, **kwargs):
        """The hidden states :math:`x(u)`, shape (m, n); keyword arguments as :meth:`solve`."""
        return self.solve(U, **kwargs).X

    def output(self, X, U):
        """:math:`\\hat Y = X C^\\top + U D^\\top + c` for given states ``X`` (no solve)."""
        U, xp = self._check_input(U)
        shape = getattr(X, "shape", None)
        if shape != (U.shape[0], self.n_states):
            raise ValueError(
                f"X has shape {shape}; expected {(U.shape[0], self.n_states)} "
                "(one state row per row of U)"
            )
        return self._finite_output(X, U, xp)

    def _output(self, X, U, xp):
        """:math:`XC^\\top + UD^\\top + c`, unchecked (the trainers': an overflow there is an
        infinite objective, which their tests reject)."""
        P = self._params_for(U.dtype, xp)
        Y = X @ P["C"].T
        Y += U @ P["D"].T
        if P["c"] is not None:
            Y += P["c"]
        return Y

    def _finite_output(self, X, U, xp):
        """:meth:`_output` for the user: a ValueError where it overflows (finite inputs so
        large that an output is inf or NaN are never returned as a prediction)."""
        with np.errstate(over="ignore", invalid="ignore"):
            Y = self._output(X, U, xp)
        if not bool(xp.isfinite(Y).all()):
            raise ValueError(f"the input U is too large for this model: its outputs overflow "
                             f"{Y.dtype} (largest |U| entry {float(xp.abs(U).max()):.3g})")
        return Y

    def predict(self, U, **kwargs):
        """Outputs :math:`\\hat y(u)`, shape (m, q); keyword arguments as :meth:`solve`.

        With ``batch_size`` the outputs are computed chunk by chunk: the (m, n) states are
        never held, only one chunk's (about :meth:`row_bytes` per row) besides the (m, q)
        outputs. ``device="cuda"`` runs on the GPU and returns a CuPy array.
        """
        U = self._to_device(U, kwargs.pop("device", None))
        return self._predict(U, **kwargs)

    def _solve_trusted(self, U, X0=None, warn=True) -> kernel.FixedPointResult:
        """:meth:`solve` with the default settings on a float32/float64 NumPy ``U`` (and warm
        start ``X0``) that the caller has checked (shapes, finite values): the trainers' per-round
        equilibria, without re-checking the same training inputs every round."""
        plan = self._plan("auto", None, None, None, False, U.dtype)
        return self._run(U, np, plan, X0, warn)

    def _run_whole(self, U, xp, plan, X0, warn):
        """One solve over all the rows of ``U`` (no chunking), its input checked in full;
        returns the result and the checked ``U``."""
        U, _ = self._check_input(U)
        if X0 is not None:
            X0 = _check_matrix("X0", X0, (U.shape[0], self.n_states))
        return self._run(U, xp, plan, X0, warn), U

    def _predict(self, U, method="auto", tol=None, max_iter=None, X0=None, force=False,
                 batch_size=None, warn=True, alpha=None, post=None):
        """:meth:`predict`, with ``post`` applied to each chunk's outputs (the estimators'
        logits to probabilities, say) before they are stored."""
        U, xp = self._check_input(U, cast=False)
        plan = self._plan(method, tol, max_iter, alpha, force, self._compute_dtype(U))
        m = U.shape[0]
        chunk = self._check_batch_size(batch_size, m)
        if chunk is None:
            res, U = self._run_whole(U, xp, plan, X0, warn)
            Y = self._finite_output(res.X, U, xp)
            return Y if post is None else post(Y)
        out = []

        def store(sl, Uc, res):
            Y = self._finite_output(res.X, Uc, xp)
            if post is not None:
                Y = post(Y)
            if not out:
                out.append(xp.empty((m,) + Y.shape[1:], dtype=Y.dtype))
            out[0][sl] = Y

        self._solve_chunked(U, xp, plan, X0, chunk, warn, store)
        return out[0]

    # ------------------------------------------------------------------------------------------
    def pf_eigenvalue(self) -> float:
        """:math:`\\lambda_{PF}(\\mathrm{diag}(\\gamma)|A|)` or :math:`\\lambda_{PF}(N(A,\\gamma))`
        (theory §2)."""
        return pf_eigenvalue(to_numpy(self.A), self.activation)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_cache"] = {}
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.__dict__["_cache"] = {}

    def __repr__(self):
        return (
            f"ImplicitModel(n={self.n_states}, p={self.n_features}, q={self.n_outputs}, "
            f"activation={self.activation!r}, dtype={self.dtype})"
        )
