"""``python -m mcsim posterior``: spec in, self-describing HDF5 out, clear errors."""

import json
import math

import numpy as np
import pytest

import mcsim
from mcsim.cli import main
from mcsim.datasets import make_dataset
from theory import Prior

PRIOR = {"arch": "dnn", "depth": 1, "activation": "relu", "g2": 1.5, "sigma2": 0.1, "g2_in": 1.0}


def _spec(tmp_path, **kw):
    doc = {"prior": PRIOR, "data": {"kind": "linear_teacher", "count": 4, "dim": 2, "train": 3, "seed": 0},
           "width": 6, "draws": 40, "kappa": 0.2, "method": "hmc", "chains": 2,
           "hmc": {"warmup": 20, "n_leapfrog": 3}, "observables": ["caux_readout", "predictor", "test_error"]}
    doc.update(kw)
    p = tmp_path / "spec.json"
    p.write_text(json.dumps(doc))
    return p


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_cli_hmc_writes_self_describing_file_equal_to_api(tmp_path, capsys):
    out = tmp_path / "post.h5"
    assert main(["posterior", "--spec", str(_spec(tmp_path)), "--out", str(out)]) == 0
    r = mcsim.read_posterior(out)
    assert r.method == "hmc" and r.meta["width"] == 6 and r.meta["kappa"] == 0.2
    assert r.meta["prior"]["activation"] == "relu" and len(r.meta["data_hash"]) == 64
    assert r.meta["settings"]["n_leapfrog"] == 3 and r.meta["settings"]["chains"] == 2
    assert r.diagnostics["rhat/predictor"].shape == (4, 1) and r.diagnostics["accept_rate"].shape == (2,)
    X, y, tr = make_dataset("linear_teacher", 4, 2, 3, seed=0)
    api = mcsim.posterior(Prior.from_dict(PRIOR), X, y, tr, 6, 40, 0.2, method="hmc", chains=2,
                          hmc={"warmup": 20, "n_leapfrog": 3}, observables=["caux_readout", "predictor", "test_error"])
    for o in api.mean:
        np.testing.assert_array_equal(r.mean[o], api.mean[o])
        np.testing.assert_array_equal(r.draws[o], api.draws[o])


def test_cli_importance_and_inf_kappa(tmp_path):
    out = tmp_path / "imp.h5"
    spec = _spec(tmp_path, method="importance", kappa="inf", draws=50, observables=["caux_readout"])
    assert main(["posterior", "--spec", str(spec), "--out", str(out)]) == 0
    r = mcsim.read_posterior(out)
    assert math.isinf(r.meta["kappa"]) and r.diagnostics["ess"] == pytest.approx(50)


@pytest.mark.parametrize("kw, code, match", [
    (dict(width=0), 2, "width"),
    (dict(data={"kind": "spiral", "count": 3, "dim": 2, "train": 2}), 2, "data.kind"),
    (dict(data={"file": "/nonexistent.npz"}), 2, "data.file"),
    (dict(bogus=1), 2, "spec: unknown keys"),
    (dict(kappa="big"), 2, "kappa"),
    (dict(method="importance", kappa=1e-6, draws=20,
          data={"kind": "linear_teacher", "count": 12, "dim": 2, "train": 12}, observables=["caux_readout"]),
     1, "effective sample size"),
])
def test_cli_errors_named(tmp_path, capsys, kw, code, match):
    out = tmp_path / "x.h5"
    assert main(["posterior", "--spec", str(_spec(tmp_path, **kw)), "--out", str(out)]) == code
    err = capsys.readouterr().err
    assert err.startswith("error: ") and match in err
    assert not out.exists()
