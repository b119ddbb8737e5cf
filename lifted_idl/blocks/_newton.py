r"""The face-Newton machinery shared by the (A, B, b) solvers (:mod:`.ab`, :mod:`.ab_robust`).

Both blocks separate across the rows :math:`w_i` of :math:`[A\ B\ b]` (the group penalty of
:mod:`.ab` couples them through the columns of B but uses the same pieces) and solve all rows at
once by a working-set ("face") Newton method in the internal, centred parametrisation
:math:`w = [a,\ b,\ \beta]` with design :math:`M = [X - \bar x,\ U - \bar u,\ \mathbf 1]`
(:func:`design`). Each iteration of every solver:

1. identifies a face of the feasible set from a proximal point: the free coordinates, and for
   the rows whose A part lies on the ball :math:`\|a\|_1 \le \kappa` the constraint normal
   :math:`c = \mathrm{sign}(a)` (:func:`ball_face`);
2. takes the Newton step on that face, one (d + 1) × (d + 1) KKT solve per row with the
   (generalised) Hessian, coordinates leaving the face moved to 0 and
   :math:`c^\top(w + \Delta) = \kappa` on the ball (:func:`face_kkt`, :func:`solve_face`),
   its length capped to a sane distance (:func:`cap_rows`);
3. searches along the projection arc of the step, row by row (:func:`armijo_rows`).

The Hessians are weighted Gram matrices :math:`M^\top\mathrm{diag}(D_{:,i})M`
(:func:`weighted_grams`), kept up to date incrementally by :class:`RowHessians` where few
weights change between iterations. Nothing here checks its input: the callers pass float64
arrays of consistent shapes.
"""

from __future__ import annotations

import numpy as np

__all__: list[str] = []


# --------------------------------------------------------------------------------------------
# the internal (centred) parametrisation
# --------------------------------------------------------------------------------------------
def design(X, U, fit_bias, w=None):
    """``[X U]`` centred plus a column of ones (free bias), or ``[X U]``; and the column means
    (weighted by the unit-mean sample weights ``w`` when given)."""
    M = np.hstack([X, U])
    if not fit_bias:
        return M, np.zeros(M.shape[1])
    mbar = M.mean(axis=0) if w is None else w @ M / M.shape[0]
    M -= mbar
    return np.hstack([M, np.ones((M.shape[0], 1))]), mbar


def to_internal(A, B, b, mbar, fit_bias):
    r"""``W = [A B b']`` with :math:`b' = b + [A\ B]\bar m` (``[A B]`` without a bias)."""
    W = np.hstack([A, B])
    if fit_bias:
        W = np.hstack([W, (b + W @ mbar)[:, None]])
    return W


def from_internal(W, n, p, mbar, fit_bias):
    """``(A, B, b)`` from the internal ``W`` (the inverse of :func:`to_internal`)."""
    A = np.ascontiguousarray(W[:, :n])
    B = np.ascontiguousarray(W[:, n:n + p])
    b = W[:, n + p] - W[:, :n + p] @ mbar if fit_bias else np.zeros(W.shape[0])
    return A, B, b


# --------------------------------------------------------------------------------------------
# Hessians
# --------------------------------------------------------------------------------------------
def weighted_grams(M, Dw, iu=None):
    r""":math:`M^\top\mathrm{diag}(D_{:,i})M` for every column i of ``Dw`` (batched, in chunks).

    Returns an array of shape ``(r, d, d)``, or with ``iu`` (the indices of the upper
    triangle) the packed upper triangles, shape ``(r, len(iu[0]))``.
    """
    m, d = M.shape
    r = Dw.shape[1]
    out = np.empty((r, d, d) if iu is None else (r, iu[0].size))
    chunk = max(1, int(4_000_000 // max(m * d, 1)))
    Mt = M.T
    for s in range(0, r, chunk):
        Dc = Dw[:, s:s + chunk]
        full = (Mt[None, :, :] * Dc.T[:, None, :]) @ M
        out[s:s + Dc.shape[1]] = full if iu is None else full[:, iu[0], iu[1]]
    return out


class RowHessians:
    r"""Generalised Hessians :math:`H_i = M^\top\mathrm{diag}(D_{:,i})M` of the row problems.

    Kept in packed (upper-triangle) form, one per row, and updated from the previous iteration's
    weights: :math:`H_i \mathrel{+}= \sum_{s} \Delta D_{si}\, m_s m_s^\top` over the samples
    whose weight changed, one GEMM against the Khatri-Rao rows
    :math:`k_s = \mathrm{vech}(m_s m_s^\top)`. For ReLU few samples change sign between Newton
    iterations, so this is much cheaper than recomputing; tanh recomputes. ``Kr`` (from
    :meth:`khatri_rao`) lets chunks of rows solved in parallel share those rows.
    """

    def __init__(self, M, n, Kr=None):
        m, d = M.shape
        self.M, self.d = M, d
        self.iu = np.triu_indices(d)
        self.small = m * self.iu[0].size <= 4_000_000
        if self.small and Kr is None:
            Kr = self.khatri_rao(M)
        self.Kr = Kr if self.small else None
        self.packed = np.zeros((n, self.iu[0].size))
        self.D = np.zeros((m, n))

    @staticmethod
    def khatri_rao(M):
        r"""The rows :math:`k_s = \mathrm{vech}(m_s m_s^\top)` (``None`` above the size at which
        the Hessians are recomputed instead)."""
        m, d = M.shape
        iu = np.triu_indices(d)
        return M[:, iu[0]] * M[:, iu[1]] if m * iu[0].size <= 4_000_000 else None

    def update(self, rows, Dw):
        """Dense Hessians (len(rows), d, d) for the new weights ``Dw`` (m, len(rows))."""
        dD = Dw - self.D[:, rows]
        changed = np.flatnonzero(np.any(dD != 0, axis=1))
        if changed.size == 0:
            pass
        elif changed.size < 0.5 * dD.shape[0]:
            if self.small:
                self.packed[rows] += dD[changed].T @ self.Kr[changed]
            else:
                self.packed[rows] += weighted_grams(self.M[changed], dD[changed], self.iu)
        elif self.small:
            self.packed[rows] = Dw.T @ self.Kr
        else:
            self.packed[rows] = weighted_grams(self.M, Dw, self.iu)
        self.D[:, rows] = Dw
        H = np.empty((rows.size, self.d, self.d))
        pk = self.packed[rows]
        H[:, self.iu[0], self.iu[1]] = pk
        H[:, self.iu[1], self.iu[0]] = pk
        return H


# --------------------------------------------------------------------------------------------
# the face and the Newton step on it
# --------------------------------------------------------------------------------------------
def ball_face(VA, d, kappa):
    r"""The rows of the A part ``VA`` (r, n) on the ball :math:`\|a\|_1 = \kappa` (relative
    slack 1e-9), and their constraint normals :math:`c = [\mathrm{sign}(a),\ 0]` of length
    ``d`` (zero rows off the ball)."""
    on_ball = np.abs(VA).sum(axis=1) >= kappa * (1 - 1e-9)
    cvec = np.zeros((VA.shape[0], d))
    cvec[:, :VA.shape[1]] = np.sign(VA)
    cvec[~on_ball] = 0.0
    return on_ball, cvec


def face_kkt(H, reg, cvec, free, on_ball, g, W, kappa, dz=None, extra_diag=None):
    r"""The KKT systems of the Newton step on the working face, one per row.

    For row i, with :math:`F` its free coordinates: minimise the quadratic model
    :math:`g^\top\Delta + \tfrac12\Delta^\top(H + \rho I)\Delta` subject to
    :math:`\Delta_j = dz_j` off the face (default :math:`-w_j`: leaving coordinates go to 0) and,
    on the ball, :math:`c^\top(w + \Delta) = \kappa`.

    Parameters
    ----------
    H : ndarray of shape (r, d, d)
    reg : ndarray of shape (r,)
        Diagonal regularisation :math:`\rho_i`.
    cvec, on_ball : from :func:`ball_face`
    free : ndarray of bool, shape (r, d)
    g : ndarray of shape (r, d)
        Gradient (of the smooth model on the face).
    W : ndarray of shape (r, d)
        Current rows.
    kappa : float
    dz : ndarray of shape (r, d), optional
        The moves of the fixed coordinates (default ``where(free, 0, -W)``).
    extra_diag : ndarray of shape (d,), optional
        Added to every row's diagonal after ``reg``.

    Returns
    -------
    K : ndarray of shape (r, d + 1, d + 1)
        The KKT matrices, with identity rows and columns for the fixed coordinates (and the
        multiplier of rows off the ball).
    rhs : ndarray of shape (r, d + 1)
    dz : ndarray of shape (r, d)
    """
    r, d = W.shape
    idx = np.arange(d)
    K = np.zeros((r, d + 1, d + 1))
    K[:, :d, :d] = H
    K[:, idx, idx] += reg[:, None]
    if extra_diag is not None:
        K[:, idx, idx] += extra_diag[None, :]
    K[:, :d, d] = cvec
    K[:, d, :d] = cvec
    if dz is None:
        dz = np.where(free, 0.0, -W)
    rhs_top = -g - (H @ dz[:, :, None])[:, :, 0]
    rhs_c = np.where(on_ball, kappa - (cvec * W).sum(axis=1), 0.0)
    fixed = np.concatenate([~free, ~on_ball[:, None]], axis=1)
    K = np.where(fixed[:, :, None] | fixed[:, None, :], np.eye(d + 1), K)
    rhs = np.concatenate([np.where(free, rhs_top, 0.0), rhs_c[:, None]], axis=1)
    return K, rhs, dz


def solve_face(K, rhs, free, dz):
    """The face Newton steps: the KKT solves of :func:`face_kkt` (pseudo-inverse where a
    matrix is singular) on the free coordinates, ``dz`` on the others. Rows of a singular face
    may come back non-finite; the caller replaces them."""
    d = free.shape[1]
    with np.errstate(all="ignore"):
        try:
            sol = np.linalg.solve(K, rhs[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            sol = (np.linalg.pinv(K) @ rhs[:, :, None])[:, :, 0]
    return np.where(free, sol[:, :d], dz)


def cap_rows(delta, W, kappa):
    r"""Scale each row of ``delta`` (in place) to at most :math:`10(\max(1, \|w\|_\infty) +
    \kappa)` in the max norm: the first trial point stays within a sane distance (the A part
    lives in a ball)."""
    big = 10.0 * (np.maximum(1.0, np.abs(W).max(axis=1)) + kappa)
    delta *= np.minimum(1.0, big / np.maximum(np.abs(delta).max(axis=1), 1e-300))[:, None]
    return delta


def armijo_rows(W, delta, f, gd, todo, trial, W_new, f_new, Z_new=None, tries=10):
    r"""Per-row Armijo backtracking along the projection arc of ``delta``.

    For the rows ``todo`` (indices into the r rows of ``W``), tries :math:`a = 1, \tfrac12,
    \ldots` (``tries`` halvings at most) and accepts row i at the first trial point
    :math:`w_t = \Pi(w_i + a\Delta_i)` with
    :math:`f(w_t) \le f_i + 10^{-4} a\, gd_i + 10^{-15}|f_i|`.

    Parameters
    ----------
    W, delta : ndarray of shape (r, d)
    f, gd : ndarray of shape (r,)
        Current row objectives and directional derivatives (``<= 0``).
    todo : ndarray of int
        The rows to search.
    trial : callable
        ``trial(Wt, rows) -> (ft, Zt)``: projects the trial rows ``Wt`` (those of ``rows``) in
        place onto the arc and returns their objectives, and optionally their pre-activations
        (``None`` otherwise).
    W_new, f_new : ndarray
        Filled in place for the accepted rows (the others keep what the caller put there).
    Z_new : ndarray of shape (m, r), optional
        Filled in place with the accepted rows' pre-activations.

    Returns
    -------
    a : ndarray of shape (r,)
        The step lengths (1 for rows not searched, halved once past the last failed try).
    todo : ndarray of int
        The rows where the search failed.
    """
    a = np.ones(W.shape[0])
    for _ in range(tries):
        if todo.size == 0:
            break
        Wt = W[todo] + a[todo, None] * delta[todo]
        ft, Zt = trial(Wt, todo)
        ok = ft <= f[todo] + 1e-4 * a[todo] * gd[todo] + 1e-15 * np.abs(f[todo])
        acc = todo[ok]
        W_new[acc] = Wt[ok]
        f_new[acc] = ft[ok]
        if Z_new is not None:
            Z_new[:, acc] = Zt[:, ok]
        todo = todo[~ok]
        a[todo] *= 0.5
    return a, todo

