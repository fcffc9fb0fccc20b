"""Kind `proportional` (issue 11, item 4.5): claim 12 on synthetic tables, config checks, dry run, the figure.

The HMC-vs-theory statistics themselves are tested in tests/test_proportional_hmc.py;
the real workflow run of the default config produces results/fl_proportional/.
"""

import copy
import csv
import json

from test_workflow_helpers import load_tiny_config, run_script, run_snakemake, scripts_common, write_config
from theory.claims import CLAIMS_BY_ID, claim_proportional_kernels

BLOCK = {"kind": "proportional", "title": "t",
         "proportional": {"alpha": [0.25, 0.5], "width": [8], "depth": 1, "kappa": 0.05, "draws": 20, "warmup": 10}}


def _rows(widths=(16, 32), shift=0.0, signal=0.5, se=0.01, bias=0.3):
    """Synthetic table rows: HMC = theory + bias / n (+ shift), learning signal `signal` above the NNGP."""
    rows = []
    for n in widths:
        for alpha in (0.25, 0.5):
            for layer in (1, 2):
                post = 1.0 + signal * alpha * layer
                rows.append({"experiment": "e", "alpha": alpha, "depth": 1, "layer": layer, "width": n,
                             "hmc": post + bias / n + shift, "hmc_se": se, "posterior": post,
                             "map": 1.0 + 0.7 * (post - 1.0)})
    return rows


def test_claim_12_passes_on_theory_plus_one_over_n_and_reports_map():
    res = claim_proportional_kernels(_rows())
    assert res.status == "pass", res.reason
    assert abs(res.value) < 1e-9  # Richardson removes the exact bias / n
    assert res.reason.startswith("MAP kernels: max |z| = ")
    assert CLAIMS_BY_ID["12"].kind == "proportional"


def test_claim_12_fails_on_a_wrong_theory_naming_the_row():
    rows = _rows()
    for r in rows:
        if r["alpha"] == 0.5 and r["layer"] == 2:
            r["hmc"] += 0.2  # 20 SE (x the Richardson amplification) off in one row
    res = claim_proportional_kernels(rows)
    assert res.status == "fail"
    assert "alpha=0.5" in res.reason and "layer 2" in res.reason


def test_claim_12_single_width_uses_the_deviation_at_that_width():
    res = claim_proportional_kernels(_rows(widths=(16,), bias=0.0))
    assert res.status == "pass"
    res = claim_proportional_kernels(_rows(widths=(16,), bias=0.0, shift=0.1))
    assert res.status == "fail"


def test_claim_12_without_a_learning_signal_is_unresolved():
    res = claim_proportional_kernels(_rows(signal=0.0, bias=0.0))
    assert res.status == "fail" and res.reason.startswith("unresolved")
    assert claim_proportional_kernels([]).status == "not evaluated"


def test_alpha_n_must_be_a_whole_number_of_patterns(tmp_path):
    config = load_tiny_config()
    bad = copy.deepcopy(BLOCK)
    bad["proportional"]["alpha"] = [0.3]
    config["experiments"]["prop"] = bad
    proc = run_snakemake(["-n", "--configfile", write_config(tmp_path / "bad.yaml", config)], cwd=tmp_path)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stdout[-3000:]
    assert lines[0].startswith("Error in config: experiments.prop.proportional.alpha: ")
    assert "alpha = 0.3 at n = 8" in lines[0]


def test_dry_run_plans_hmc_compare_plot_and_claims(tmp_path):
    config = load_tiny_config()
    config["experiments"]["prop"] = copy.deepcopy(BLOCK)
    proc = run_snakemake(["-n", "--configfile", write_config(tmp_path / "c.yaml", config)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
    for text in ("results/prop/sim/alpha-0.25_n-8.h5", "results/prop/sim/alpha-0.5_n-8.h5",
                 "results/prop/tables/proportional.csv", "results/figures/prop.", "results/claims.csv"):
        assert text in proc.stdout, text
    assert not (tmp_path / "results").exists()


def test_figure_draws_points_not_lines_between_data_sets(monkeypatch, tmp_path):
    """Every (alpha, n) point has its own data set: HMC and both theories are markers without connecting
    lines (only the NNGP constant is a line), one panel per layer with the axes named."""
    rows = _rows()
    table = tmp_path / "proportional.csv"
    with open(table, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    figures = []
    common = scripts_common(monkeypatch)
    monkeypatch.setattr(common, "finish_figure", lambda fig, smk, log, title: figures.append((fig, title)))
    experiment = {"name": "e", "title": "t", "kind": "proportional",
                  "proportional": {"depth": 1, "g2": 1.0, "kappa": 0.05, "gamma0": 1.0}}
    run_script("plot_proportional.py", monkeypatch, input={"table": str(table)}, output={"figures": []},
               params={"experiment": json.dumps(experiment), "dpi": 60}, log=tmp_path / "plot.log")
    (fig, title), = figures
    assert len(fig.axes) == 2 and "kappa = 0.05" in title
    for ax in fig.axes:
        nngp = [line for line in ax.get_lines() if line.get_label().startswith("NNGP")]
        assert len(nngp) == 1 and set(nngp[0].get_ydata()) == {1.0}  # the one line: a constant
        for line in ax.get_lines():  # the data: HMC points (and their error-bar caps), both theories
            if line not in nngp:
                assert line.get_linestyle() == "None" and line.get_marker() not in (None, "None", ""), line
        _, labels = ax.get_legend_handles_labels()
        assert len(labels) == 3 * 2 + 1, labels  # (HMC, posterior_kernels, MAP) x widths, NNGP
        assert "P/n" in ax.get_xlabel() and "NNGP = 1" in ax.get_ylabel()
