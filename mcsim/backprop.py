"""Explicit-weight DNN / weight-shared RNN: forward pass, back-propagation and the posterior potential.

The hidden parameters Theta (all hidden weights and biases; the readout is
integrated out, :mod:`mcsim.readout_posterior`) are held in *whitened*
coordinates: one flat float64 vector ``z`` with prior ``N(0, I)``, each block
scaled by its prior standard deviation (theory-notes Sec. 2):

==============  =====================  ==========================================
block           shape                  Theta = scale * z
==============  =====================  ==========================================
``W_in[a]``     (n_a, n_in)            ``sqrt(g_0^2 / n_in)``; DNN: one per layer a
                                       with non-zero input ``x^(a)``; RNN: one
                                       ``W_in`` shared by all steps
``W[a]``        (n_a, n_{a-1})         ``sqrt(g_a^2 / n_{a-1})``, a = 1..A; RNN: one
                                       ``W`` shared by all steps
``xi[a]``       (n_a,)                 ``sigma_a``; ``uncorrelated``: one per layer
                                       with ``sigma_a > 0``; ``static``: one ``xi``
==============  =====================  ==========================================

so that ``-ln p(Theta) = |z|^2 / 2 + const``.  The network is that of
theory-notes Sec. 1 (``h^(a) = W^(a) phi(h^(a-1)) + W^(in,a) x^(a) + xi^(a)``),
the same realization law as :func:`mcsim.sample` (its ``direct`` sampler
materialises the same matrices).

The potential of the hidden-parameter posterior (Sec. 9.1) is

    U(z) = |z|^2 / 2 - sum_o ln N(Y_o | 0, K_DD(z) + kappa I),
    K = (sigma_out^2 1 1^T + g_out^2 / n_A phi(h^(A)) phi(h^(A))^T) / gamma0,

and its gradient is computed by back-propagation (through time with the
shared ``W`` for the RNN) in BLAS matrix products: a forward pass costs
``2 P sum_a n_a n_{a-1}`` flops, the backward pass twice that.
"""

from __future__ import annotations

import math

import numpy as np

from theory.prior import Prior, check_inputs

from .readout_posterior import check_kappa_gamma0, loglik_and_dK


class ExplicitNetwork:
    """Parameter layout and forward/backward passes of one (prior, inputs, width).

    Parameters
    ----------
    prior : theory.Prior
    X : array_like, shape (P, n_in) or (P, A+1, n_in)
        Inputs (all patterns: training and test).
    width : int

    Attributes
    ----------
    seq : ndarray of float64, shape (P, A+1, n_in)
    widths : ndarray of int64, shape (A+1,)
    blocks : list of (name, layer, shape, scale, offset)
        Layout of the flat parameter vector.
    dim : int
        Length of ``z``.
    """

    def __init__(self, prior: Prior, X, width: int):
        if not isinstance(prior, Prior):
            raise ValueError(f"prior: expected theory.Prior, got {type(prior).__name__}")
        self.prior = prior
        self.seq = check_inputs(prior, X)
        self.P, self.A1, self.n_in = self.seq.shape
        self.A = self.A1 - 1
        self.widths = prior.widths(width)
        self.width = int(width)
        self.shared = prior.shared
        self.static = prior.bias == "static"
        self.xnz = np.any(self.seq != 0.0, axis=(0, 2))
        self.Xa = np.ascontiguousarray(self.seq.transpose(1, 0, 2))  # (A+1, P, n_in)
        self.phi = prior.act.numpy
        self.dphi = prior.act.derivative(1)
        g2, s2 = prior.g2_layers, prior.sigma2_layers
        blocks = []
        off = 0

        def add(name, layer, shape, scale):
            nonlocal off
            size = int(np.prod(shape))
            blocks.append((name, layer, tuple(int(s) for s in shape), float(scale), off))
            off += size

        n = self.widths
        if self.shared:
            if self.xnz.any():
                add("W_in", -1, (n[0], self.n_in), math.sqrt(g2[0] / self.n_in))
            if self.A >= 1:
                add("W", -1, (n[0], n[0]), math.sqrt(g2[1] / n[0]))
        else:
            for a in range(self.A1):
                if self.xnz[a]:
                    add("W_in", a, (n[a], self.n_in), math.sqrt(g2[0] / self.n_in))
                if a >= 1:
                    add("W", a, (n[a], n[a - 1]), math.sqrt(g2[a] / n[a - 1]))
        if self.static:
            if s2[0] > 0:
                add("xi", -1, (n[0],), math.sqrt(s2[0]))
        else:
            for a in range(self.A1):
                if s2[a] > 0:
                    add("xi", a, (n[a],), math.sqrt(s2[a]))
        self.blocks = blocks
        self.dim = off
        self.g2_out = float(g2[-1])
        self.sigma2_out = float(s2[-1])

    # ------------------------------------------------------------------ layout
    def _views(self, z: np.ndarray) -> dict:
        """``{(name, layer): (view of z reshaped, scale)}``; layer -1 means shared by all."""
        return {(nm, a): (z[o:o + int(np.prod(sh))].reshape(sh), sc) for nm, a, sh, sc, o in self.blocks}

    @staticmethod
    def _get(views, name, a):
        v = views.get((name, a))
        return v if v is not None else views.get((name, -1))

    def prior_draw(self, rng: np.random.Generator) -> np.ndarray:
        """A draw ``z ~ N(0, I)`` (the prior), shape (dim,)."""
        return rng.standard_normal(self.dim)

    # ------------------------------------------------------------------ passes
    def forward(self, z: np.ndarray, patterns=None) -> tuple[list, list]:
        """Pre-activations and activations of all layers.

        Parameters
        ----------
        z : ndarray of float64, shape (dim,)
        patterns : index array, optional
            Subset of patterns (default all).

        Returns
        -------
        H, PHI : list of A+1 ndarrays of float64, shapes (P', n_a)
        """
        V = self._views(z)
        X = self.Xa if patterns is None else self.Xa[:, patterns]
        Pp = X.shape[1]
        H, PHI = [], []
        for a in range(self.A1):
            h = np.zeros((Pp, int(self.widths[a])))
            if a >= 1:
                W, s = self._get(V, "W", a)
                h += (s * PHI[-1]) @ W.T
            if self.xnz[a]:
                Win, s = self._get(V, "W_in", a)
                h += (s * X[a]) @ Win.T
            b = self._get(V, "xi", a)
            if b is not None:
                h += b[1] * b[0]
            H.append(h)
            PHI.append(self.phi(h))
        return H, PHI

    def readout_kernel(self, phiA: np.ndarray) -> np.ndarray:
        """``Caux^(A+1,A+1) = sigma_out^2 + g_out^2/n_A phi . phi`` for activations (P', n_A) -> (P', P')."""
        return self.sigma2_out + (self.g2_out / phiA.shape[1]) * (phiA @ phiA.T)

    def backward(self, z: np.ndarray, H: list, PHI: list, dphiA: np.ndarray, patterns=None) -> np.ndarray:
        """Gradient with respect to ``z`` of a scalar whose gradient with respect to ``phi(h^(A))`` is ``dphiA``.

        Parameters
        ----------
        z : ndarray of float64, shape (dim,)
        H, PHI : from :meth:`forward` on the same ``patterns``
        dphiA : ndarray of float64, shape (P', n_A)
        patterns : index array, optional

        Returns
        -------
        ndarray of float64, shape (dim,)
        """
        V = self._views(z)
        grad = np.zeros(self.dim)
        G = self._views(grad)
        X = self.Xa if patterns is None else self.Xa[:, patterns]
        dphi = dphiA
        for a in range(self.A, -1, -1):
            delta = dphi * self.dphi(H[a])  # dL/dh^(a), (P', n_a)
            b = self._get(G, "xi", a)
            if b is not None:
                b[0][...] += b[1] * delta.sum(axis=0)
            if self.xnz[a]:
                gWin, s = self._get(G, "W_in", a)
                gWin += s * (delta.T @ X[a])
            if a >= 1:
                W, s = self._get(V, "W", a)
                gW, _ = self._get(G, "W", a)
                if self.shared:  # one W for all steps: accumulate (BPTT)
                    gW += delta.T @ (s * PHI[a - 1])
                else:  # written once: straight into the gradient vector, no temporary
                    np.matmul(delta.T, s * PHI[a - 1], out=gW)
                dphi = (s * delta) @ W
        return grad


class PosteriorPotential:
    """``U(z) = |z|^2/2 - sum_o ln N(Y_o | 0, K_DD(z) + kappa I)`` and its gradient.

    Parameters
    ----------
    net : ExplicitNetwork
    Y : ndarray of float64, shape (P_D, n_out)
        Targets of the training patterns.
    train : ndarray of int64, shape (P_D,)
        Training pattern indices into ``net``'s patterns.
    kappa : float
        Noise (``inf``: data term off, ``U`` is the prior's).
    gamma0 : float
        Output scale.
    data_scale : float, optional
        Multiplies the data term (1 for the posterior).  Only for tests that
        show a wrong sampler is detected; do not use otherwise.
    """

    def __init__(self, net: ExplicitNetwork, Y: np.ndarray, train: np.ndarray, kappa: float, gamma0: float = 1.0,
                 data_scale: float = 1.0):
        self.net = net
        self.kappa, self.gamma0 = check_kappa_gamma0(kappa, gamma0)
        self.Y = np.ascontiguousarray(Y, dtype=float)
        self.train = np.asarray(train, dtype=np.int64)
        self.data_scale = float(data_scale)
        self.n_evals = 0

    @property
    def dim(self) -> int:
        return self.net.dim

    def log_likelihood(self, z: np.ndarray) -> float:
        """The data term ``sum_o ln N(Y_o | 0, K_DD + kappa I)`` (0 for ``kappa = inf``)."""
        if math.isinf(self.kappa):
            return 0.0
        _, PHI = self.net.forward(z, self.train)
        K = self.net.readout_kernel(PHI[-1]) / self.gamma0
        return loglik_and_dK(K, self.Y, self.kappa)[0]

    def value(self, z: np.ndarray) -> float:
        """``U(z)`` (``inf`` where ``K_DD + kappa I`` is not positive definite or the pass overflows)."""
        with np.errstate(all="ignore"):
            u = 0.5 * float(z @ z) - self.data_scale * self.log_likelihood(z)
        return u if math.isfinite(u) else math.inf

    def value_and_grad(self, z: np.ndarray) -> tuple[float, np.ndarray]:
        """``U(z)`` and ``dU/dz`` (shape (dim,)); ``(inf, nan...)`` where not finite."""
        self.n_evals += 1
        u0 = 0.5 * float(z @ z)
        if math.isinf(self.kappa) or self.data_scale == 0.0:
            return u0, z.copy()
        with np.errstate(all="ignore"):
            H, PHI = self.net.forward(z, self.train)
            phiA = PHI[-1]
            K = self.net.readout_kernel(phiA) / self.gamma0
            ll, G = loglik_and_dK(K, self.Y, self.kappa)
            if not math.isfinite(ll):
                return math.inf, np.full(self.dim, np.nan)
            c = 2.0 * self.net.g2_out / (phiA.shape[1] * self.gamma0)
            dphiA = (c * self.data_scale) * (G @ phiA)
            g = self.net.backward(z, H, PHI, dphiA, self.train)
        u = u0 - self.data_scale * ll
        grad = np.subtract(z, g, out=g)  # in place: the vector is as long as all weights
        if not (math.isfinite(u) and math.isfinite(float(grad.sum()))):  # one pass; nan/inf propagate
            return math.inf, np.full(self.dim, np.nan)
        return u, grad
