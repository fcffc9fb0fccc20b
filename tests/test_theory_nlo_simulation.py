"""Brute-force check of the 1/n fluctuation theory against finite networks.

Plain NumPy with materialised float64 weights, batched over realizations.  For
each case we estimate ``n Var[Caux^(a,a)]`` over ``R`` independent weight
realizations (a = 1..A+1, readout included) and compare its ``n -> infinity``
limit with the theory's n-independent ``n * theory.nlo_variance``.

Pre-declared procedure (no tuned allowances)
--------------------------------------------
* Two widths ``n1`` and ``n2 = 2 n1`` with independent random streams (seed
  ``[seed, n]``), ``R`` realizations each.  At each width ``n_i Var_i`` is the
  unbiased sample variance times ``n_i``; its standard error ``SE_i`` is ``n_i``
  times the fourth-moment standard error of a sample variance,
  ``Var(s^2) ~ (m4 - s^4 (R-3)/(R-1)) / R``.
* Richardson extrapolation assuming ``n Var = V + b/n + O(1/n^2)``:
  ``V_hat = 2 (n2 Var2) - (n1 Var1)``, ``SE_hat^2 = 4 SE2^2 + SE1^2``
  (independent widths).  The leftover bias is ``-c / (2 n1^2)`` for a
  ``c/n^2`` term.  It was measured during development with widths 64, 128,
  256, 512 and R = 10000 (not part of the test; fit of ``b`` and ``c`` with
  ``V`` at the theory value): at ``n1 = 128`` it was at most about 0.3
  ``SE_hat`` for every entry except the RNN ReLU a = 2 entry (0.5 +- 0.3
  ``SE_hat``).  The test uses ``n1 = 200``, ``n2 = 400`` (the width range the
  issue asks for), where the bias is (128/200)^2 = 0.41 times smaller at the
  same ``R``: about 0.12 ``SE_hat`` (0.2 for that entry).
* Acceptance: ``|V_hat - V_theory| <= Z * SE_hat`` for every compared entry,
  with ``Z`` the two-sided Bonferroni quantile at family-wise significance
  ``FAMILY_ALPHA = 1 %`` over *all* entries compared in this file.
* Negative controls (wrong alternatives that the data must reject): each is a
  single pre-declared two-sided test at level ``FAMILY_ALPHA``:
  ``|V_hat - V_alt| > norm.ppf(1 - FAMILY_ALPHA/2) * SE_hat`` at the readout,
  and the right formula must be closer to ``V_hat`` than the wrong one.
  ``R`` of those cases is chosen so that ``|V_theory - V_alt|`` is about 5-6
  ``SE_hat`` (power > 99 % if the theory is right).

  - RNN ReLU readout without the readout/hidden cross terms (about 19 % low);
  - static-bias DNN with the plain Eq. 44 (layer-diagonal sources, about 30 %
    low).
"""

from dataclasses import dataclass

import numpy as np
import pytest
from scipy.stats import norm

import theory
from theory import nlo

FAMILY_ALPHA = 0.01
"""Family-wise significance of all theory-vs-simulation comparisons in this file."""

X = np.array([1.2, 0.1, 1.9, 0.6])
"""The single input, given at a = 0."""

N1 = 200
"""Smaller width; the larger is ``2 * N1``."""


@dataclass(frozen=True)
class Case:
    """One network prior with its realization count and seed."""

    name: str
    prior: theory.Prior
    realizations: int
    seed: int


CASES = {
    c.name: c
    for c in [
        Case("dnn_relu", theory.Prior("dnn", 3, "relu", 1.2, 0.2, 1.2), 2000, 11),
        Case("rnn_relu", theory.Prior("rnn", 3, "relu", 1.2, 0.2, 1.2), 16000, 12),
        Case("rnn_erf", theory.Prior("rnn", 3, "erf", 1.6, 0.2, 1.6), 2500, 13),
        # static bias: the shared per-unit bias correlates layers (cross-layer sources)
        Case("dnn_static_relu", theory.Prior("dnn", 3, "relu", 1.2, 0.4, 1.2, bias="static"), 6000, 14),
        # tanh exercises the quadrature path; erf + static bias has non-zero cross-time sources
        Case("rnn_tanh", theory.Prior("rnn", 3, "tanh", 1.5, 0.2, 1.2), 2500, 15),
        Case("rnn_erf_static", theory.Prior("rnn", 3, "erf", 1.6, 0.3, 1.2, bias="static"), 2500, 16),
    ]
}

N_COMPARED = sum(c.prior.depth + 1 for c in CASES.values())
"""Number of compared entries (a = 1..A+1 per case), the Bonferroni family size."""

Z = norm.ppf(1 - FAMILY_ALPHA / (2 * N_COMPARED))
"""Two-sided Bonferroni quantile for the positive comparisons."""

Z_CONTROL = norm.ppf(1 - FAMILY_ALPHA / 2)
"""Two-sided quantile for rejecting one pre-declared wrong alternative."""


def simulate_caux_diag(prior, x, n, R, seed, max_elems=4_000_000):
    """``Caux^(a,a)`` for ``a = 0..A+1`` over ``R`` realizations with materialised weights.

    Parameters
    ----------
    prior : theory.Prior
        Equal widths ``n`` (``nu = 1``).
    x : ndarray of float64, shape (n_in,)
        Single input at ``a = 0``.
    n : int
        Width.
    R : int
        Number of weight realizations.
    seed : int or sequence of int
        Seed of the random stream (SFC64).
    max_elems : int
        Upper bound on the size of the batched weight buffer (realizations x n x n).

    Returns
    -------
    ndarray of float64, shape (R, A+2)
    """
    rng = np.random.Generator(np.random.SFC64(seed))
    A = prior.depth
    g2, s2, phi = prior.g2_layers, prior.sigma2_layers, prior.phi
    n_in = x.shape[0]
    out = np.empty((R, A + 2))
    out[:, 0] = s2[0] + g2[0] / n_in * (x @ x)
    chunk = max(1, min(R, max_elems // (n * n)))
    W_buf = np.empty((chunk, n, n))
    for s in range(0, R, chunk):
        r = min(chunk, R - s)
        W = W_buf[:r]
        xi_static = rng.standard_normal((r, n)) * np.sqrt(s2[0])

        def bias(a):
            return xi_static if prior.bias == "static" else rng.standard_normal((r, n)) * np.sqrt(s2[a])

        W_in = rng.standard_normal((r, n, n_in)) * np.sqrt(g2[0] / n_in)
        h = W_in @ x + bias(0)
        if prior.is_rnn:
            rng.standard_normal(out=W)
            W *= np.sqrt(g2[1] / n)
        for a in range(1, A + 1):
            p = phi(h)
            out[s : s + r, a] = s2[a] + g2[a] / n * np.einsum("ri,ri->r", p, p)
            if not prior.is_rnn:
                rng.standard_normal(out=W)
                W *= np.sqrt(g2[a] / n)
            h = np.matmul(W, p[:, :, None])[:, :, 0] + bias(a)
        p = phi(h)
        out[s : s + r, A + 1] = s2[A + 1] + g2[A + 1] / n * np.einsum("ri,ri->r", p, p)
    return out


def scaled_variance(caux, n):
    """``n`` times the sample variance per column and its fourth-moment standard error.

    Parameters
    ----------
    caux : ndarray of float64, shape (R, K)
    n : int

    Returns
    -------
    (ndarray, ndarray) of float64, shapes (K,), (K,)
    """
    R = caux.shape[0]
    d = caux - caux.mean(axis=0)
    s2 = (d**2).sum(axis=0) / (R - 1)
    m4 = (d**4).mean(axis=0)
    se = np.sqrt(np.maximum(m4 - s2**2 * (R - 3) / (R - 1), 0.0) / R)
    return n * s2, n * se


def extrapolated_scaled_variance(case, n1=N1):
    """Richardson-extrapolated ``lim n Var[Caux^(a,a)]`` from widths ``n1`` and ``2 n1``.

    Returns
    -------
    (ndarray, ndarray) of float64, shapes (A+2,), (A+2,)
        ``V_hat`` and ``SE_hat``; entry 0 is 0 (deterministic input layer).
    """
    n2 = 2 * n1
    est = {}
    for n in (n1, n2):
        caux = simulate_caux_diag(case.prior, X, n, case.realizations, [case.seed, n])
        est[n] = scaled_variance(caux, n)
    (v1, se1), (v2, se2) = est[n1], est[n2]
    v_hat = 2.0 * v2 - v1
    se_hat = np.sqrt(4.0 * se2**2 + se1**2)
    print(f"\n{case.name}: n1={n1} n2={n2} R={case.realizations} Z={Z:.2f}")
    for a in range(1, v_hat.shape[0]):
        print(f"  a={a}: n1Var1 {v1[a]:.4f}+-{se1[a]:.4f}  n2Var2 {v2[a]:.4f}+-{se2[a]:.4f}  "
              f"V_hat {v_hat[a]:.4f}+-{se_hat[a]:.4f}")
    return v_hat, se_hat


def _compare(case, estimate=extrapolated_scaled_variance):
    """Extrapolated simulation vs ``n * nlo_variance`` for every compared entry of one case.

    Parameters
    ----------
    case : Case
    estimate : callable ``case -> (V_hat, SE_hat)``
        The simulation estimate (replaced by a stub in the family-size test).

    Returns
    -------
    (V_hat, SE_hat, V_theory, report) : ndarray, ndarray, ndarray, list of str
        ``report`` has one line per compared entry ``a = 1..A+1``; lines of
        entries outside the limit start with ``FAIL``.
    """
    v_hat, se_hat = estimate(case)
    v_theory = N1 * theory.nlo_variance(case.prior, X, N1)
    report = []
    for a in range(1, v_hat.shape[0]):
        dev = (v_hat[a] - v_theory[a]) / se_hat[a]
        flag = "FAIL" if not abs(dev) <= Z else "ok"
        report.append(f"{flag} {case.name} a={a}: V_hat {v_hat[a]:.4f} +- {se_hat[a]:.4f}, theory {v_theory[a]:.4f}, "
                      f"deviation {dev:+.2f} SE_hat (limit {Z:.2f})")
    print("\n".join(report))
    return v_hat, se_hat, v_theory, report


def _assert_matches(case):
    """Assert every entry of one case is within the Bonferroni limit; the message lists all entries."""
    v_hat, se_hat, v_theory, report = _compare(case)
    failed = [line for line in report if line.startswith("FAIL")]
    assert not failed, "\n".join([f"{len(failed)} of {len(report)} entries outside the limit:", *report])
    return v_hat, se_hat, v_theory


def _reject_alternative(v_hat, se_hat, v_theory, v_alt, label):
    """Assert the data reject a wrong alternative at the readout, with the distances in the message."""
    d_alt = abs(v_hat[-1] - v_alt) / se_hat[-1]
    d_theory = abs(v_hat[-1] - v_theory[-1]) / se_hat[-1]
    text = (f"readout {label}: {v_alt:.4f}; V_hat {v_hat[-1]:.4f} +- {se_hat[-1]:.4f}; "
            f"|V_hat - alt| = {d_alt:.2f} SE_hat (must exceed {Z_CONTROL:.2f} and |V_hat - theory| = "
            f"{d_theory:.2f} SE_hat); |theory - alt| = {abs(v_theory[-1] - v_alt) / se_hat[-1]:.2f} SE_hat")
    print("  " + text)
    assert d_alt > Z_CONTROL and d_alt > d_theory, text


def _readout_with_sources(prior, G):
    """Readout ``n Var`` for a given source matrix G (A+1, A+1) and the theory's propagation."""
    F = nlo.propagation_factors(prior, X)
    T = nlo._transfer(F)[:, 1:]
    return (T @ G @ T.T)[-1, -1]


def test_bonferroni_family_counts_every_compared_entry():
    """Z is computed for N_COMPARED entries: run every case's comparison (a stub estimate
    stands in for the simulation) and count the entries it actually tests."""
    compared = 0
    for case in CASES.values():
        def stub(c):
            v = N1 * theory.nlo_variance(c.prior, X, N1)
            return v, np.ones_like(v)
        *_, report = _compare(case, estimate=stub)
        assert not any(line.startswith("FAIL") for line in report), report
        compared += len(report)
    assert compared == N_COMPARED, f"_compare tests {compared} entries, the Bonferroni family has {N_COMPARED}"


@pytest.mark.slow
def test_dnn_relu_variance_matches_simulation():
    _assert_matches(CASES["dnn_relu"])


@pytest.mark.slow
def test_rnn_relu_variance_matches_simulation_including_readout_cross_terms():
    case = CASES["rnn_relu"]
    v_hat, se_hat, v_theory = _assert_matches(case)
    # the readout prediction without readout/hidden cross terms is rejected
    G = nlo.source_matrix(case.prior, X)
    G[-1, :-1] = G[:-1, -1] = 0
    v_alt = _readout_with_sources(case.prior, G)
    _reject_alternative(v_hat, se_hat, v_theory, v_alt, "without cross terms")


@pytest.mark.slow
def test_rnn_erf_variance_matches_simulation():
    _assert_matches(CASES["rnn_erf"])


@pytest.mark.slow
def test_dnn_static_bias_relu_variance_matches_simulation():
    case = CASES["dnn_static_relu"]
    v_hat, se_hat, v_theory = _assert_matches(case)
    # the naive Eq. 44 (layer-diagonal sources only) is rejected at the readout
    G = np.diag(np.diagonal(nlo.source_matrix(case.prior, X)))
    v_alt = _readout_with_sources(case.prior, G)
    _reject_alternative(v_hat, se_hat, v_theory, v_alt, "layer-diagonal sources only")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["rnn_tanh", "rnn_erf_static"])
def test_rnn_quadrature_and_static_bias_match_simulation(name):
    _assert_matches(CASES[name])
