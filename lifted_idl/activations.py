r"""Activation functions: value, derivative, Lipschitz data and Fenchel divergence.

Every componentwise activation here is the gradient of a convex function :math:`f`
(:math:`\phi = \nabla f`), so the Fenchel divergence [IDL §6, theory §8]

.. math:: F_\phi(x, z) = f^*(x) + f(z) - x z \ \ge 0, \qquad F_\phi(x, z) = 0 \iff x = \phi(z)

is available, together with its cvxpy expression, for training by block-coordinate descent.
The componentwise maps are CONE (componentwise non-expansive, slope in ``[0, lipschitz]``), so the
sufficient well-posedness condition is :math:`\lambda_{PF}(\mathrm{diag}(\gamma)|A|) < 1`
[IDL Thm 2.2]. :class:`Blockwise` builds a BLIP map from blocks, each with its own Lipschitz
constant and norm [IDL §2.3].

All callables take arrays with samples in rows (``(m, n)``) and work on NumPy or CuPy input.
"""

from __future__ import annotations

import numbers

import numpy as np

from ._array import get_namespace
from ._validation import check_real

__all__ = [
    "Activation",
    "ReLU",
    "LeakyReLU",
    "Tanh",
    "Sigmoid",
    "Identity",
    "BlockSoftmax",
    "Blockwise",
    "get_activation",
]


class Activation:
    """Base class of a componentwise activation :math:`\\phi = \\nabla f`.

    Attributes
    ----------
    name : str
        Registry name.
    lipschitz : float
        Lipschitz constant :math:`\\gamma` (slopes lie in ``[0, gamma]``).
    positively_homogeneous : bool
        ``phi(t z) = t phi(z)`` for ``t >= 0`` (needed by the PF rescaling of theory §4).
    componentwise : bool
        True for maps applied to each state separately.
    norm : float
        The norm in which ``lipschitz`` holds (``inf`` for componentwise maps).
    nonnegative : bool
        The range lies in :math:`[0, \\infty)` (ReLU, sigmoid, softmax); the fixed-point kernel
        then needs one reduction instead of two for the row norms of an iterate.
    """

    name = "activation"
    lipschitz = 1.0
    positively_homogeneous = False
    componentwise = True
    norm = np.inf
    nonnegative = False

    # --- value and derivative -------------------------------------------------------------
    def __call__(self, Z, out=None):  # pragma: no cover - abstract
        raise TypeError(f"{type(self).__name__} does not define its value")

    def derivative(self, Z):  # pragma: no cover - abstract
        raise TypeError(f"{type(self).__name__} does not define its derivative")

    def state_lipschitz(self, n: int) -> np.ndarray:
        """Per-state Lipschitz constants, a vector of length ``n``."""
        return np.full(n, float(self.lipschitz))

    def subset(self, idx) -> Activation:
        """The activation acting on the states ``idx`` only (increasing indices).

        A componentwise map is the same on any subset, so this returns ``self``;
        :class:`Blockwise` and :class:`BlockSoftmax` override it. Used by the exact
        back-substitution of the kernel, which evaluates one topological level at a time, and by
        row-separable training blocks that handle one state at a time.
        """
        return self

    # --- Fenchel divergence ---------------------------------------------------------------
    has_fenchel = True

    def f(self, Z):
        """The convex potential :math:`f` with :math:`\\phi = f'`."""
        raise TypeError(f"{type(self).__name__} has no Fenchel potential")

    def f_conj(self, X):
        """The convex conjugate :math:`f^*` (``inf`` outside its domain)."""
        raise TypeError(f"{type(self).__name__} has no Fenchel potential")

    def fenchel(self, X, Z):
        """Elementwise Fenchel divergence :math:`F(x, z) = f^*(x) + f(z) - xz` (theory §8)."""
        return self.f_conj(X) + self.f(Z) - X * Z

    def fenchel_grad_z(self, X, Z):
        """:math:`\\partial F / \\partial z = \\phi(z) - x`."""
        return self(Z) - X

    def fenchel_grad_x(self, X, Z):
        """:math:`\\partial F / \\partial x = (f^*)'(x) - z` (the inverse of phi, minus z)."""
        return self.inverse(X) - Z

    def inverse(self, X):
        """:math:`(f^*)' = \\phi^{-1}` on the range of phi."""
        raise TypeError(f"{type(self).__name__} has no inverse")

    def fenchel_cvxpy(self, x, z):
        """cvxpy expression of the elementwise divergence, summed; ``x`` or ``z`` constant.

        The term :math:`-xz` is affine as long as one of the two is a constant or a
        ``cvxpy.Parameter`` (every BCD block fixes one of them).
        """
        import cvxpy as cp

        return cp.sum(self.f_conj_cvxpy(x)) + cp.sum(self.f_cvxpy(z)) - cp.sum(cp.multiply(x, z))

    def f_cvxpy(self, z):
        raise TypeError(f"{type(self).__name__} has no cvxpy potential")

    def f_conj_cvxpy(self, x):
        raise TypeError(f"{type(self).__name__} has no cvxpy conjugate")

    # --- misc -----------------------------------------------------------------------------
    def __repr__(self):
        return f"{type(self).__name__}()"

    def __eq__(self, other):
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def __hash__(self):
        return hash((type(self).__name__, tuple(sorted(self.__dict__.items()))))


class ReLU(Activation):
    r"""ReLU, :math:`\phi(z) = \max(z, 0)`; :math:`f(z) = \tfrac12 z_+^2`,
    :math:`f^*(x) = \tfrac12 x^2` for :math:`x \ge 0` (theory §8)."""

    name = "relu"
    positively_homogeneous = True
    nonnegative = True

    def __call__(self, Z, out=None):
        xp = get_namespace(Z)
        return xp.maximum(Z, 0, out=out)

    def derivative(self, Z):
        return (Z > 0).astype(Z.dtype)

    def f(self, Z):
        xp = get_namespace(Z)
        zp = xp.maximum(Z, 0)
        return 0.5 * zp * zp

    def f_conj(self, X):
        xp = get_namespace(X)
        return xp.where(X >= 0, 0.5 * X * X, xp.inf)

    def inverse(self, X):
        return X

    def f_cvxpy(self, z):
        import cvxpy as cp

        return 0.5 * cp.square(cp.pos(z))

    def f_conj_cvxpy(self, x):
        import cvxpy as cp

        # the domain constraint x >= 0 is imposed by the caller (P >= 0 in the P block)
        return 0.5 * cp.square(x)


class LeakyReLU(Activation):
    r"""Leaky ReLU, :math:`\phi(z) = \max(z, a z)` with slope ``0 < a < 1``.

    :math:`f(z) = \tfrac12 z_+^2 + \tfrac a2 z_-^2`, :math:`f^*(x) = \tfrac12 x_+^2 +
    \tfrac1{2a} x_-^2`.
    """

    name = "leaky_relu"
    positively_homogeneous = True

    def __init__(self, slope: float = 0.01):
        check_real("slope", slope, 0, 1, closed="neither")
        self.slope = float(slope)

    def __call__(self, Z, out=None):
        xp = get_namespace(Z)
        return xp.maximum(Z, self.slope * Z, out=out)

    def derivative(self, Z):
        xp = get_namespace(Z)
        return xp.where(Z > 0, 1.0, self.slope).astype(Z.dtype)

    def f(self, Z):
        xp = get_namespace(Z)
        zp, zn = xp.maximum(Z, 0), xp.minimum(Z, 0)
        return 0.5 * zp * zp + 0.5 * self.slope * zn * zn

    def f_conj(self, X):
        xp = get_namespace(X)
        xpos, xneg = xp.maximum(X, 0), xp.minimum(X, 0)
        return 0.5 * xpos * xpos + 0.5 / self.slope * xneg * xneg

    def inverse(self, X):
        xp = get_namespace(X)
        return xp.where(X >= 0, X, X / self.slope)

    def f_cvxpy(self, z):
        import cvxpy as cp

        return 0.5 * cp.square(cp.pos(z)) + 0.5 * self.slope * cp.square(cp.neg(z))

    def f_conj_cvxpy(self, x):
        import cvxpy as cp

        return 0.5 * cp.square(cp.pos(x)) + 0.5 / self.slope * cp.square(cp.neg(x))

    def __repr__(self):
        return f"LeakyReLU(slope={self.slope})"


class Tanh(Activation):
    r"""tanh; :math:`f(z) = \log\cosh z`,
    :math:`f^*(x) = \tfrac12[(1+x)\log(1+x) + (1-x)\log(1-x)]` on :math:`|x| < 1` (theory §8)."""

    name = "tanh"

    def __call__(self, Z, out=None):
        xp = get_namespace(Z)
        return xp.tanh(Z, out=out)

    def derivative(self, Z):
        xp = get_namespace(Z)
        t = xp.tanh(Z)
        return 1 - t * t

    def f(self, Z):
        xp = get_namespace(Z)
        a = xp.abs(Z)
        # log cosh z = |z| + log(1 + exp(-2|z|)) - log 2, stable for large |z|
        return a + xp.log1p(xp.exp(-2 * a)) - np.log(2.0)

    def f_conj(self, X):
        xp = get_namespace(X)
        with np.errstate(divide="ignore", invalid="ignore"):
            xc = xp.clip(X, -1, 1)
            val = 0.5 * (_xlogx(1 + xc, xp) + _xlogx(1 - xc, xp))
        return xp.where(xp.abs(X) <= 1, val, xp.inf)

    def inverse(self, X):
        xp = get_namespace(X)
        return xp.arctanh(X)

    def f_cvxpy(self, z):
        import cvxpy as cp

        return cp.logistic(2 * z) - z - np.log(2.0)  # = log cosh z

    def f_conj_cvxpy(self, x):
        import cvxpy as cp

        return -0.5 * (cp.entr(1 + x) + cp.entr(1 - x))


class Sigmoid(Activation):
    r"""Logistic sigmoid (Lipschitz 1/4); :math:`f(z) = \log(1 + e^z)`,
    :math:`f^*(x) = x\log x + (1-x)\log(1-x)` on :math:`[0, 1]`."""

    name = "sigmoid"
    lipschitz = 0.25
    nonnegative = True

    def __call__(self, Z, out=None):
        xp = get_namespace(Z)
        if xp is np:
            from scipy.special import expit

            return expit(Z, out=out)
        res = 0.5 * (xp.tanh(0.5 * Z) + 1)
        if out is not None:
            out[...] = res
            return out
        return res

    def derivative(self, Z):
        s = self(Z)
        return s * (1 - s)

    def f(self, Z):
        xp = get_namespace(Z)
        return xp.logaddexp(0, Z)

    def f_conj(self, X):
        xp = get_namespace(X)
        with np.errstate(divide="ignore", invalid="ignore"):
            xc = xp.clip(X, 0, 1)
            val = _xlogx(xc, xp) + _xlogx(1 - xc, xp)
        return xp.where((X >= 0) & (X <= 1), val, xp.inf)

    def inverse(self, X):
        xp = get_namespace(X)
        return xp.log(X) - xp.log1p(-X)

    def f_cvxpy(self, z):
        import cvxpy as cp

        return cp.logistic(z)

    def f_conj_cvxpy(self, x):
        import cvxpy as cp

        return -(cp.entr(x) + cp.entr(1 - x))


class Identity(Activation):
    """Linear activation (for linear implicit layers and output blocks of compositions)."""

    name = "identity"
    positively_homogeneous = True

    def __call__(self, Z, out=None):
        if out is None:
            return Z.copy()
        out[...] = Z
        return out

    def derivative(self, Z):
        xp = get_namespace(Z)
        return xp.ones_like(Z)

    def f(self, Z):
        return 0.5 * Z * Z

    def f_conj(self, X):
        return 0.5 * X * X

    def inverse(self, X):
        return X

    def f_cvxpy(self, z):
        import cvxpy as cp

        return 0.5 * cp.square(z)

    def f_conj_cvxpy(self, x):
        import cvxpy as cp

        return 0.5 * cp.square(x)


class BlockSoftmax(Activation):
    r"""Softmax over a block of states: a BLIP map, Lipschitz 1/2 in the l2 norm.

    The Jacobian ``diag(s) - s s^T`` has spectral norm at most 1/2. It is not componentwise, so
    only the block condition :math:`\lambda_{PF}(N(A, \gamma)) < 1` applies [IDL §2.3].
    """

    name = "softmax"
    lipschitz = 0.5
    componentwise = False
    norm = 2.0
    has_fenchel = False
    nonnegative = True

    def __call__(self, Z, out=None):
        xp = get_namespace(Z)
        e = xp.exp(Z - Z.max(axis=1, keepdims=True))
        res = e / e.sum(axis=1, keepdims=True)
        if out is not None:
            out[...] = res
            return out
        return res

    def derivative(self, Z):
        raise TypeError("BlockSoftmax has a full Jacobian, not a componentwise derivative")

    def subset(self, idx) -> Activation:
        """Only the whole block: softmax does not act on part of its states separately."""
        idx = np.asarray(idx)
        if idx.ndim != 1 or np.any(np.diff(idx) != 1) or (idx.size and idx[0] != 0):
            raise ValueError(
                "BlockSoftmax acts on its whole block; a subset must be all of its states "
                f"0..size-1 in order; got idx={idx!r}"
            )
        return self


class Blockwise(Activation):
    """A blockwise activation: consecutive blocks of states, each with its own map.

    Parameters
    ----------
    blocks : sequence of (int, Activation or str)
        Block sizes and their activations, in state order.

    Notes
    -----
    Used by composed models (:mod:`lifted_idl.compose`) whose parts have different activations
    and by models with genuinely blockwise (BLIP) maps such as :class:`BlockSoftmax`.
    """

    name = "blockwise"
    positively_homogeneous = False

    def __init__(self, blocks):
        parsed = []
        for item in blocks:
            try:
                size, act = item
            except (TypeError, ValueError):
                raise ValueError(
                    f"Blockwise blocks must be (size, activation) pairs; got {item!r}"
                ) from None
            if not isinstance(size, numbers.Integral) or size < 0:
                raise ValueError(f"Blockwise block size must be a non-negative int; got {size!r}")
            act = get_activation(act)
            if isinstance(act, Blockwise):
                if size != act.size:
                    raise ValueError(
                        f"Blockwise block of size {size} holds a nested Blockwise covering "
                        f"{act.size} states; they must agree"
                    )
                parsed.extend(act.blocks)
            elif size > 0:
                parsed.append((int(size), act))
        # merge neighbouring blocks of the same componentwise activation
        merged = []
        for size, act in parsed:
            if merged and act.componentwise and merged[-1][1] == act:
                merged[-1] = (merged[-1][0] + size, act)
            else:
                merged.append((size, act))
        self.blocks = tuple(merged)
        self.size = sum(s for s, _ in self.blocks)
        self.componentwise = all(a.componentwise for _, a in self.blocks)
        self.positively_homogeneous = all(a.positively_homogeneous for _, a in self.blocks)
        self.lipschitz = max((a.lipschitz for _, a in self.blocks), default=1.0)
        self.has_fenchel = all(a.has_fenchel for _, a in self.blocks)
        self.nonnegative = all(a.nonnegative for _, a in self.blocks)

    @property
    def slices(self):
        start = 0
        for size, act in self.blocks:
            yield slice(start, start + size), act
            start += size

    def _check(self, Z):
        if Z.shape[-1] != self.size:
            raise ValueError(
                f"Blockwise activation covers {self.size} states; got an array with "
                f"{Z.shape[-1]} columns"
            )

    def __call__(self, Z, out=None):
        self._check(Z)
        xp = get_namespace(Z)
        if out is None:
            out = xp.empty_like(Z)
        for sl, act in self.slices:
            out[:, sl] = act(Z[:, sl])
        return out

    def derivative(self, Z):
        self._check(Z)
        xp = get_namespace(Z)
        out = xp.empty_like(Z)
        for sl, act in self.slices:
            out[:, sl] = act.derivative(Z[:, sl])
        return out

    def subset(self, idx) -> Activation:
        """The blockwise map restricted to the states ``idx`` (increasing indices).

        Componentwise blocks may be cut anywhere; a genuine block (softmax) must be taken whole.
        The result is a :class:`Blockwise` over ``len(idx)`` states, in the order of ``idx``.

        Raises
        ------
        ValueError
            If ``idx`` is not increasing, leaves the range, or cuts a genuine block.
        """
        idx = np.asarray(idx)
        if idx.ndim != 1 or (idx.size and (idx[0] < 0 or idx[-1] >= self.size)) or np.any(
            np.diff(idx) <= 0
        ):
            raise ValueError(
                f"subset needs increasing state indices in [0, {self.size}); got idx={idx!r}"
            )
        sizes = np.array([s for s, _ in self.blocks], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        which = np.searchsorted(np.cumsum(sizes), idx, side="right")  # block of each state
        blocks, counts = np.unique(which, return_counts=True)
        out = []
        for blk, cnt in zip(blocks.tolist(), counts.tolist(), strict=True):
            act = self.blocks[blk][1]
            if not act.componentwise and cnt != sizes[blk]:
                raise ValueError(
                    f"subset cuts the {act!r} block of states {starts[blk]}.."
                    f"{starts[blk] + sizes[blk] - 1}: a genuine block must be taken whole"
                )
            out.append((cnt, act))
        return Blockwise(out)

    def state_lipschitz(self, n):
        if n != self.size:
            raise ValueError(f"Blockwise activation covers {self.size} states; asked for {n}")
        return np.concatenate([np.full(s, float(a.lipschitz)) for s, a in self.blocks])

    def _blockwise_apply(self, name, *arrays):
        xp = get_namespace(*arrays)
        out = xp.empty(np.broadcast_shapes(*(a.shape for a in arrays)), dtype=arrays[0].dtype)
        for sl, act in self.slices:
            out[:, sl] = getattr(act, name)(*(a[:, sl] for a in arrays))
        return out

    def f(self, Z):
        return self._blockwise_apply("f", Z)

    def f_conj(self, X):
        return self._blockwise_apply("f_conj", X)

    def inverse(self, X):
        return self._blockwise_apply("inverse", X)

    @staticmethod
    def _cols(expr, sl):
        return expr[sl] if len(expr.shape) == 1 else expr[:, sl]

    def f_cvxpy(self, z):
        """Sum over blocks of each block's potential (a scalar cvxpy expression)."""
        import cvxpy as cp

        self._check(z)
        return sum(cp.sum(act.f_cvxpy(self._cols(z, sl))) for sl, act in self.slices)

    def f_conj_cvxpy(self, x):
        """Sum over blocks of each block's conjugate (a scalar cvxpy expression)."""
        import cvxpy as cp

        self._check(x)
        return sum(cp.sum(act.f_conj_cvxpy(self._cols(x, sl))) for sl, act in self.slices)

    def __repr__(self):
        return f"Blockwise({list(self.blocks)!r})"

    def __eq__(self, other):
        return isinstance(other, Blockwise) and self.blocks == other.blocks

    def __hash__(self):
        return hash(self.blocks)


def _xlogx(t, xp):
    return xp.where(t > 0, t * xp.log(xp.where(t > 0, t, 1)), 0.0)


_REGISTRY = {
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "tanh": Tanh,
    "sigmoid": Sigmoid,
    "identity": Identity,
    "softmax": BlockSoftmax,
}


def get_activation(activation) -> Activation:
    """Return an :class:`Activation` from a name or an instance.

    Parameters
    ----------
    activation : str or Activation
        One of ``"relu"``, ``"leaky_relu"``, ``"tanh"``, ``"sigmoid"``, ``"identity"``,
        ``"softmax"`` (blockwise), or an :class:`Activation` instance.
    """
    if isinstance(activation, Activation):
        return activation
    if isinstance(activation, str) and activation in _REGISTRY:
        return _REGISTRY[activation]()
    raise ValueError(
        f"Unknown activation={activation!r}; expected one of {sorted(_REGISTRY)} or an "
        "Activation instance"
    )
