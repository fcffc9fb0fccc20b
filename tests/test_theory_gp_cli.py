"""GP prediction (Eqs. 37-38) and the ``python -m theory`` CLI."""

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

import theory
from theory.cli import main


def _K(P=8, seed=0):
    X = np.random.default_rng(seed).standard_normal((P, 3))
    return theory.kernel(theory.Prior("rnn", 4, "relu", 1.6, 0.2, 1.6), X)[5, 5]


def test_noiseless_interpolation_and_psd_posterior():
    K = _K()
    train, test = np.arange(5), np.arange(8)
    y = np.random.default_rng(1).standard_normal((5, 2))
    mean, cov = theory.gp_predict(K, y, train, test)
    assert np.allclose(mean[:5], y, atol=1e-8)
    assert np.allclose(cov[:5, :5], 0, atol=1e-8)
    assert np.linalg.eigvalsh(cov).min() > -1e-10
    mean1, _ = theory.gp_predict(K, y[:, 0], train, test[5:])
    assert mean1.shape == (3,) and np.allclose(mean1, mean[5:, 0])
    # noise shrinks towards the prior mean and keeps the posterior PSD
    mean_n, cov_n = theory.gp_predict(K, y, train, test, noise=0.5)
    assert not np.allclose(mean_n[:5], y)
    assert np.linalg.eigvalsh(cov_n).min() > -1e-10
    # matches the explicit formula
    Kdd = K[:5, :5] + 0.5 * np.eye(5)
    assert np.allclose(mean_n, K[:, :5] @ np.linalg.solve(Kdd, y))


def test_gp_errors():
    K = _K()
    y = np.zeros(3)
    with pytest.raises(ValueError, match="^noise"):
        theory.gp_predict(K, y, [0, 1, 2], [3], noise=-1.0)
    with pytest.raises(ValueError, match="^y_train"):
        theory.gp_predict(K, np.zeros(4), [0, 1, 2], [3])
    with pytest.raises(ValueError, match="^K"):
        theory.gp_predict(K[:, :3], y, [0, 1, 2], [3])
    with pytest.raises(ValueError, match="^train"):
        theory.gp_predict(K, y, [0, 1, 99], [3])
    with pytest.raises(ValueError, match="^test"):
        theory.gp_predict(K, y, [0, 1, 2], [0.5])
    Kdup = np.ones((3, 3))  # rank one: K_DD singular
    with pytest.raises(ValueError, match="^K: .*noise"):
        theory.gp_predict(Kdup, np.zeros(2), [0, 1], [2])
    mean, cov = theory.gp_predict(Kdup, np.zeros(2), [0, 1], [2], noise=1e-6)
    assert np.all(np.isfinite(mean)) and np.all(np.isfinite(cov))


def _spec(tmp_path, sequence=False):
    spec = {
        "prior": {"arch": "rnn", "depth": 4, "activation": "relu", "g2": 1.2, "sigma2": 0.2, "g2_in": 1.2},
        "inputs": {"count": 3, "dim": 4, "seed": 2, "sequence": sequence},
        "width": 100,
    }
    path = tmp_path / "point.json"
    path.write_text(json.dumps(spec))
    return path


def test_cli_predict(tmp_path):
    out = tmp_path / "sub" / "theory.h5"
    assert main(["predict", "--spec", str(_spec(tmp_path)), "--out", str(out)]) == 0
    spec = theory.parse_point_spec(_spec(tmp_path))
    with h5py.File(out) as f:
        assert np.allclose(f["kernel"][()], theory.kernel(spec.prior, spec.X))
        assert f["nlo_variance"].shape == (3, 6) and f["nlo_covariance"].shape == (3, 6, 6)
        assert f["input_propagation"].shape == (3, 6) and f["fourth_cumulant"].shape == (3,)
        assert np.allclose(f["nlo_variance"][1], theory.nlo_variance(spec.prior, spec.X[1], 100))
        assert np.allclose(f["fourth_cumulant"][()], 3 * f["nlo_variance"][:, -1])
        assert np.array_equal(f["inputs"][()], spec.X)
        assert json.loads(f.attrs["spec_json"]) == spec.raw
        for key in ("arch", "depth", "activation", "g2", "sigma2", "g2_in", "bias", "width", "theory_version"):
            assert key in f.attrs
        assert f["kernel"].attrs["description"]
    assert [p.name for p in out.parent.iterdir()] == ["theory.h5"]  # no temporary left behind


def test_cli_predict_sequence_skips_nlo(tmp_path):
    out = tmp_path / "theory.h5"
    assert main(["predict", "--spec", str(_spec(tmp_path, sequence=True)), "--out", str(out)]) == 0
    with h5py.File(out) as f:
        assert "kernel" in f and "nlo_variance" not in f
        assert "skipped" in f.attrs["nlo_note"]


def test_cli_phase_diagram_and_errors(tmp_path, capsys):
    out = tmp_path / "pd.h5"
    argv = ["phase-diagram", "--activation", "tanh", "--g2", "0.5", "2", "4", "--sigma2", "0", "0.5", "3", "--out", str(out)]
    assert main(argv) == 0
    with h5py.File(out) as f:
        assert f["tau"].shape == (4, 3) and "description" in f["q_star"].attrs
    argv[6] = "2.5"
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("error: g2:")
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main(["predict", "--spec", str(bad), "--out", str(tmp_path / "x.h5")]) == 2


def test_cli_help_runs():
    res = subprocess.run([sys.executable, "-m", "theory", "--help"], capture_output=True, text=True, check=True)
    assert "predict" in res.stdout and "phase-diagram" in res.stdout


@pytest.mark.parametrize("sub", [[], ["predict"], ["phase-diagram"]])
def test_cli_help_documents_exit_codes(sub):
    res = subprocess.run([sys.executable, "-m", "theory", *sub, "--help"], capture_output=True, text=True, check=True)
    text = " ".join(res.stdout.split())
    assert "exit status: 0 success; 1 runtime failure" in text
    assert "2 bad input" in text and "error: <key>: <what>" in text
    if sub:
        assert "--quad-tol" in text and "--quad-order" in text


def test_cli_exit_codes_and_one_line_errors(tmp_path, capsys):
    out = str(tmp_path / "pd.h5")
    base = ["phase-diagram", "--activation", "tanh", "--sigma2", "0", "0.5", "2", "--out", out]
    # bad input: 2, one line naming the key
    for g2, key in ((["0.5", "nan", "3"], "g2"), (["0.5", "2", "x"], "g2"), (["-1", "2", "3"], "g2_values")):
        assert main(base + ["--g2", *g2]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {key}: ") and err.count("\n") == 1, err
    with pytest.raises(SystemExit) as info:  # argparse: also 2
        main(base + ["--g2", "0.5", "2", "3", "--quad-order", "1"])
    assert info.value.code == 2
    assert "--quad-order" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(base + ["--g2", "0.5", "2", "3", "--quad-tol", "0.5"])
    assert info.value.code == 2
    assert "--quad-tol" in capsys.readouterr().err
    # runtime failure writing the output: 1
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(base[:-1] + [str(blocker / "pd.h5"), "--g2", "0.5", "2", "3"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: out: ") and err.count("\n") == 1, err


def test_cli_records_quadrature_accuracy(tmp_path):
    out = tmp_path / "pd.h5"
    argv = ["phase-diagram", "--activation", "tanh", "--g2", "0.5", "2", "3", "--sigma2", "0", "0.5", "2",
            "--out", str(out)]
    assert main(argv) == 0
    with h5py.File(out) as f:
        assert f.attrs["quadrature"] == "automatic, relative tolerance 1e-09"
        assert 0 < f.attrs["quadrature_max_rel_error"] <= 1e-9
    assert main(argv + ["--quad-order", "40"]) == 0
    with h5py.File(out) as f:
        assert f.attrs["quadrature"].startswith("Gauss-Hermite order 40")
    out2 = tmp_path / "theory.h5"
    assert main(["predict", "--spec", str(_spec(tmp_path)), "--out", str(out2)]) == 0
    with h5py.File(out2) as f:
        assert f.attrs["quadrature"] == "closed form (no quadrature)"
