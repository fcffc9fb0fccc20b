"""BLAS-3 RNN projection: BLAS pinned to one thread while sampling, small factorisation kernels,
and near-dependent patterns (the drop and re-projection paths of the Cholesky-QR step)."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import mcsim
import theory
from mcsim import _kernels as K
from mcsim import sampler as S

from test_mcsim_exactness import R, _statistics, two_sample_test


def _blas_threads():
    return sorted({d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"})


def test_blas_runs_on_one_thread_while_sampling_and_is_restored(monkeypatch):
    seen = []
    real = S._sample_projected

    def spy(*args, **kwargs):
        seen.append(_blas_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(S, "_sample_projected", spy)
    prior = theory.Prior("rnn", 3, "relu", 1.5, 0.2, 1.2)
    X = np.random.default_rng(0).standard_normal((3, 4))
    with threadpool_limits(2, user_api="blas"):
        before = _blas_threads()
        a = mcsim.sample(prior, X, 30, 4, seed=1, method="projected")
        after = _blas_threads()
    assert seen == [[1]]
    assert before == after == [2]  # restored: the pinning is local to sampling, not global
    with threadpool_limits(1, user_api="blas"):
        b = mcsim.sample(prior, X, 30, 4, seed=1, method="projected")
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name, strict=True)


def test_small_factorisation_kernels_match_numpy():
    rng = np.random.default_rng(4)
    B = rng.standard_normal((5, 5))
    G = B @ B.T + 5 * np.eye(5)
    L = np.empty((5, 5))
    T = np.empty((5, 5))
    assert K.cholesky_lower(G, L)
    np.testing.assert_allclose(L, np.linalg.cholesky(G), rtol=1e-12, atol=1e-14)
    K.lower_inverse(L, T)
    np.testing.assert_allclose(T @ L, np.eye(5), atol=1e-13)
    assert np.all(np.triu(T, 1) == 0)
    bad = G.copy()
    bad[2, 2] = -1.0
    assert not K.cholesky_lower(bad, L) and np.isnan(L).all()
    # pivoted, absolute threshold: a rank-2 matrix of three vectors (third = sum of the others)
    V = rng.standard_normal((2, 7))
    V = np.vstack([V, V[0] + V[1]])
    C = V @ V.T
    piv = np.empty(3, dtype=np.int64)
    Lp = np.empty((3, 3))
    rank = K.pivoted_cholesky_abs(C, 1e-10, Lp, np.empty((3, 3)), piv)
    assert rank == 2 and piv[0] == int(np.argmax(np.diag(C)))
    np.testing.assert_allclose(Lp @ Lp.T, C, atol=1e-12)
    assert K.pivoted_cholesky_abs(C, 2 * C.diagonal().max(), Lp, np.empty((3, 3)), piv) == 0


@pytest.mark.slow
@pytest.mark.parametrize("act", ["relu", "tanh"])
def test_rnn_near_dependent_patterns_projected_matches_direct(act):
    """Pattern 2 differs from pattern 0 by 1e-9 (its residual is dropped), pattern 1 by 1e-4
    (kept with a small Cholesky pivot: the third projection against the basis)."""
    A = 4
    prior = theory.Prior("rnn", A, act, 1.5, 0.2, 1.2, bias="uncorrelated", n_out=2)
    rng = np.random.default_rng(8)
    x0 = rng.normal(0.5, 1.0, size=4)
    X = np.stack([x0, x0 + 1e-4 * rng.standard_normal(4), x0 + 1e-9 * rng.standard_normal(4)])
    obs = ("y", "caux", "chat")
    rp = mcsim.sample(prior, X, 40, R, seed=21, method="projected", observables=obs)
    rd = mcsim.sample(prior, X, 40, R, seed=21, method="direct", observables=obs)
    for res in (rp, rd):
        assert not res["overflow"].any()
        # the 1e-9 neighbour stays within about 1e-6 of pattern 0 (drop tolerance PROJECTION_RTOL)
        scale = np.abs(res["y"][:, 0]).max()
        assert np.abs(res["y"][:, 2] - res["y"][:, 0]).max() <= 1e-5 * scale
    a, names = _statistics(rp, A)
    b, _ = _statistics(rd, A)
    out = two_sample_test(a, b, names)
    assert not out["reject"], out
