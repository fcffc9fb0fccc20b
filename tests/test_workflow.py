"""End-to-end tests of the Snakemake workflow on tests/data/tiny-config.yaml.

One real run (module fixture, 2 cores, MPI with 2 ranks per point) in a
temporary working directory, then: figure files and the HTML report, table
contents against theory with standard-error tolerances, and the incremental
behaviour (what a dry run plans after a config change).

Statistical checks use fixed seeds and a family-wise significance level
ALPHA = 1e-3 (Bonferroni over the rows checked, Student t quantiles for
SEM-based z scores), and only compare quantities whose expectation equals the
mean-field value exactly at any width (see each test).
"""

import copy
import csv
import math
import re
import shutil

import numpy as np
import pytest
from scipy import stats

from test_workflow_helpers import TINY_CONFIG, dry_run_jobs, load_tiny_config, rule_family, run_snakemake, write_config

pytestmark = pytest.mark.slow

ALPHA = 1e-3
FIGURE_EXPERIMENTS = ("kernel", "mmd", "fluct", "inputs", "instab", "phase")
TABLES = {
    "kernel": "kernel/tables/kernel.csv",
    "mmd": "mmd/tables/mmd.csv",
    "mmd_summary": "mmd/tables/mmd_summary.csv",
    "fluct": "fluct/tables/fluctuations.csv",
    "inputs": "inputs/tables/input_propagation.csv",
    "instab": "instab/tables/instability.csv",
    "claims": "claims.csv",
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """Run the whole tiny workflow once and build the report; returns the working directory."""
    workdir = tmp_path_factory.mktemp("tiny-workflow")
    shutil.copy(TINY_CONFIG, workdir / "tiny.yaml")  # no config.yaml here: the tiny config is the only one
    # the user's command: with the default workflow profile (quiet output)
    proc = run_snakemake(["--cores", "2", "--configfile", "tiny.yaml"], cwd=workdir, timeout=1500, default_profile=True)
    if proc.returncode != 0:
        logs = "\n".join(f"--- {p}\n{p.read_text()[-1500:]}" for p in sorted((workdir / "results" / "logs").rglob("*.log")))
        pytest.fail(f"tiny workflow failed:\n{proc.stdout[-5000:]}\n{logs[-8000:]}")
    (workdir / "snakemake-run.log").write_text(proc.stdout)
    report = run_snakemake(["--configfile", "tiny.yaml", "--report", "report.html"], cwd=workdir, timeout=600)
    assert report.returncode == 0, report.stdout[-5000:]
    return workdir


def _read(workdir, name):
    with open(workdir / "results" / TABLES[name], newline="") as fh:
        return list(csv.DictReader(fh))


def _f(row, key):
    return float(row[key])


def _t_crit(rows, dof):
    """Two-sided Bonferroni critical |t| for len(rows) tests at family-wise level ALPHA."""
    return stats.t.isf(ALPHA / (2 * max(len(rows), 1)), dof)


def _copy_run(tiny_run, tmp_path):
    """Independent copy of the finished run (results + Snakemake metadata, mtimes kept)."""
    dst = tmp_path / "run"
    shutil.copytree(tiny_run, dst, symlinks=True)
    return dst


# --------------------------------------------------------------------------- outputs


@pytest.mark.parametrize("exp", FIGURE_EXPERIMENTS)
def test_figures_are_nonempty_images(tiny_run, exp):
    png = (tiny_run / "results" / "figures" / f"{exp}.png").read_bytes()
    pdf = (tiny_run / "results" / "figures" / f"{exp}.pdf").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert pdf[:5] == b"%PDF-" and len(pdf) > 5_000


def test_report_contains_every_figure(tiny_run):
    html = (tiny_run / "report.html").read_text(errors="replace")
    assert len(html) > 100_000
    for exp in FIGURE_EXPERIMENTS:
        assert f"{exp}.png" in html, exp
    assert "claims.csv" in html


def test_tables_are_self_describing(tiny_run):
    import json

    for name, rel in TABLES.items():
        csv_path = tiny_run / "results" / rel
        meta = json.loads(csv_path.with_suffix(".json").read_text())
        with open(csv_path, newline="") as fh:
            header = next(csv.reader(fh))
        assert [c["name"] for c in meta["columns"]] == header, name
        assert all(c["description"] for c in meta["columns"])
        assert "experiment" in meta and "kind" in meta["experiment"]


def test_second_run_has_nothing_to_do(tiny_run):
    proc = run_snakemake(["-n", "--configfile", "tiny.yaml"], cwd=tiny_run)
    assert proc.returncode == 0
    assert "Nothing to be done" in proc.stdout, proc.stdout[-3000:]


# --------------------------------------------------------------------------- numbers


def test_kernel_means_match_theory_where_exact(tiny_run):
    """E[Chat] = C exactly at any width for: the ReLU DNN with one input (all diagonal
    entries, since h^(a) is Gaussian given layer a-1 and E[relu(h)^2] = Var/2), DNN
    cross-layer entries (zero: fresh zero-mean weights and biases), and the RNN at
    steps a = 0, 1 (before the shared weights are reused)."""
    rows = [r for r in _read(tiny_run, "kernel") if r["activation"] == "relu"]
    checked = [r for r in rows if r["arch"] == "dnn"]
    checked += [r for r in rows if r["arch"] == "rnn" and r["quantity"] == "diag" and int(r["a"]) <= 1]
    assert len(checked) > 20
    R = int(checked[0]["realizations"])
    crit = _t_crit(checked, R - 1)
    for r in checked:
        assert np.isfinite(_f(r, "mc_mean")) and _f(r, "mc_sem") > 0
        z = (_f(r, "mc_mean") - _f(r, "theory")) / _f(r, "mc_sem")
        assert abs(z) < crit, r


def test_mmd_values_and_noise_floor(tiny_run):
    rows = _read(tiny_run, "mmd")
    cfg = load_tiny_config()["experiments"]["mmd"]
    assert len(rows) == len(cfg["grid"]["arch"]) * len(cfg["grid"]["width"]) * cfg["input_sets"]
    for r in rows:
        assert all(np.isfinite(_f(r, k)) for k in ("mmd2", "noise_floor_mean", "noise_floor_std"))
        assert _f(r, "noise_floor_std") > 0
        assert int(r["patterns"]) == cfg["inputs"]["count"]
        assert int(r["realizations"]) + int(r["overflowed"]) == cfg["realizations"]
    # the noise floor is the exact null law of the estimator for this point's K and R
    import h5py

    from theory.mmd import mmd2_null_moments

    for r in rows:
        with h5py.File(tiny_run / "results" / "mmd" / "theory" / f"{r['point']}.h5", "r") as fh:
            depth = int(r["depth"])
            K = fh["kernel"][depth + 1, depth + 1]
        mean, std = mmd2_null_moments(K, int(r["realizations"]), _f(r, "lengthscale"))
        assert _f(r, "noise_floor_mean") == mean == 0.0
        assert _f(r, "noise_floor_std") == pytest.approx(std, rel=1e-12)
    summary = _read(tiny_run, "mmd_summary")
    assert len(summary) == len(rows) // cfg["input_sets"]
    assert all(r["realizations"] == str(int(r["realizations"])) for r in summary)  # an integer, not "60.0"
    assert all(np.isfinite(_f(r, "mmd2_mean")) and _f(r, "mmd2_sem") > 0 for r in summary)


def test_fluctuation_table(tiny_run):
    rows = _read(tiny_run, "fluct")
    var = [r for r in rows if r["quantity"] == "var_caux"]
    # Caux^(0,0) is deterministic for a fixed input: zero variance in theory, and the compare
    # script checks that the simulated variance is 0 up to round-off before writing "deterministic"
    zero = [r for r in var if int(r["a"]) == 0]
    assert len(zero) == len({r["point"] for r in rows})
    for r in zero:
        assert r["mc"] == "deterministic" and r["z"] == "deterministic"
        assert _f(r, "mc_se") == 0.0 and _f(r, "theory") == 0.0
    for r in (r for r in var if int(r["a"]) >= 1):
        assert _f(r, "mc") > 0 and _f(r, "mc_se") > 0 and _f(r, "theory") > 0
    for quantity in ("excess_kurtosis", "excess_kurtosis_conditional"):
        kurt = [r for r in rows if r["quantity"] == quantity]
        assert len(kurt) == len({r["point"] for r in rows})
        assert all(np.isfinite(_f(r, "mc")) and _f(r, "mc_se") > 0 and _f(r, "theory") > 0 for r in kurt)
    # C(0,0) of the input and the fixed point C* = sigma^2 / (1 - g^2/2) for relu
    cfg = load_tiny_config()["experiments"]["fluct"]
    g2, sigma2 = cfg["grid"]["g2"][0], cfg["prior"]["sigma2"]
    assert all(math.isclose(_f(r, "c_star"), sigma2 / (1 - g2 / 2), rel_tol=1e-9) and _f(r, "c00") > sigma2
               for r in rows)


def test_input_propagation_wiring(tiny_run):
    """At a = 0 the weight-averaged Caux^(0,0) = sigma^2 + g0^2 |x|^2 / n_in is exact, so the
    simulated spread over input draws must equal the theory's spread to round-off: this
    checks that simulation and theory saw the same inputs."""
    rows = _read(tiny_run, "inputs")
    first = [r for r in rows if int(r["a"]) == 0]
    assert first
    for r in first:
        assert _f(r, "mc_std") == pytest.approx(_f(r, "mft_std"), rel=1e-9)
        assert _f(r, "linear_response") == pytest.approx(_f(r, "mft_std"), rel=1e-9)
        assert _f(r, "weight_noise") < 1e-9 * _f(r, "mc_std")
    assert all(np.isfinite(_f(r, "mc_std")) and _f(r, "mc_std") > 0 for r in rows)


def test_instability_table(tiny_run):
    rows = _read(tiny_run, "instab")
    cfg = load_tiny_config()["experiments"]["instab"]
    lags = sorted({int(r["lag"]) for r in rows if r["quantity"] == "lag"})
    assert lags == list(range(cfg["analysis"]["max_lag"] + 1))
    # step 0 is exact: Chat^(0,0) has mean C^(0,0) at any width
    first = [r for r in rows if r["quantity"] == "diag" and int(r["a"]) == 0]
    crit = _t_crit(first, cfg["realizations"] - 1)
    for r in first:
        assert abs(_f(r, "z")) < crit, r


# --------------------------------------------------------------------------- incremental


def _planned(workdir, config):
    path = write_config(workdir / "changed.yaml", config)
    proc = run_snakemake(["-n", "--configfile", path], cwd=workdir)
    assert proc.returncode == 0, proc.stdout[-3000:]
    return dry_run_jobs(proc.stdout)


def _sim_contents(workdir, exp):
    """{file name: bytes} of an experiment's simulation files (Snakemake touches the outputs of a
    rerun job, so mtimes do not tell whether mcsim rewrote a file; the bytes do: final files hold
    their creation time)."""
    return {p.name: p.read_bytes() for p in (workdir / "results" / exp / "sim").glob("*.h5")}


def _job_logs(workdir, exp, family, jobs=None):
    """Text of the logs of an experiment's campaign/theory jobs (only those of `jobs`, the planned
    rules, if given: a copied run keeps the logs of chunks that did not rerun)."""
    paths = sorted((workdir / "results" / "logs" / exp).glob(f"{family}-*.log"))
    if jobs is not None:
        ids = {rule[-8:] for rule, _ in jobs if rule_family(rule) == family}
        paths = [p for p in paths if p.stem.split("-", 1)[1] in ids]
    return "\n".join(p.read_text() for p in paths)


def _campaign_logs(workdir, exp, jobs=None):
    return _job_logs(workdir, exp, "campaign", jobs)


def test_default_output_is_quiet_with_one_line_per_campaign_progress(tiny_run):
    """The default profile hides the per-job rule blocks; each campaign job shows its progress
    lines prefixed with its rule; the per-point messages stay in the job's log."""
    printed = (tiny_run / "snakemake-run.log").read_text()
    assert "Using workflow specific profile" in printed
    assert not re.search(r"^rule \w+:", printed, flags=re.M)
    progress = re.findall(r"^\[(campaign_\w+)\] points (\d+)/(\d+), blocks", printed, flags=re.M)
    assert {rule_family(r) for r, _, _ in progress} == {"campaign"}
    assert len({r for r, _, _ in progress}) == 5  # one campaign job per simulation experiment
    assert "wrote results/" not in printed  # per-point lines only in the logs
    assert "wrote results/" in _campaign_logs(tiny_run, "mmd")
    assert len(printed.splitlines()) < 400, len(printed.splitlines())


def test_adding_a_width_samples_only_the_new_points(tiny_run, tmp_path):
    """A new grid value: only the mmd chunks holding new points rerun; the campaign samples only
    the new points (finished point files are skipped and keep their mtime), theory computes only them."""
    workdir = _copy_run(tiny_run, tmp_path)
    config = load_tiny_config()
    config["experiments"]["mmd"]["grid"]["width"] = [8, 16, 32]
    jobs = _planned(workdir, config)
    families = sorted({(rule_family(rule), rule.split("_")[1] if rule_family(rule) != rule else None) for rule, _ in jobs})
    assert families == [("all", None), ("campaign", "mmd"), ("claims", None), ("compare_mmd", None),
                        ("plot_mmd", None), ("theory", "mmd")], families
    before = _sim_contents(workdir, "mmd")
    proc = run_snakemake(["--cores", "2", "--configfile", "changed.yaml"], cwd=workdir, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:]
    after = _sim_contents(workdir, "mmd")
    assert {k: after[k] for k in before} == before  # finished points not rewritten
    new = set(after) - set(before)
    assert new == {f"arch-{arch}_bias-uncorrelated_act-relu_n-16_A-3_g2-1.6_s2-0.2_in-{k}.h5"
                   for arch in ("dnn", "rnn") for k in (0, 1)}
    cfg = config["experiments"]["mmd"]
    logs = _campaign_logs(workdir, "mmd", jobs)
    sampled = sum(int(n) for n in re.findall(r"sampled (\d+) block\(s\), \d+ realizations", logs))
    assert sampled == len(new) * cfg["realizations"] // cfg["block_size"], logs[-3000:]
    written = sum(int(n) for n in re.findall(r"point\(s\): (\d+) written", logs))
    assert written == len(new), logs[-3000:]
    theory = _job_logs(workdir, "mmd", "theory", jobs)
    assert sum(int(n) for n in re.findall(r"predict-many: (\d+) computed", theory)) == len(new), theory


def test_raising_realizations_resamples_only_new_blocks(tiny_run, tmp_path):
    """More realizations: the fluct campaign jobs rerun (params changed) and every point reuses
    its stored blocks and samples only the new block; theory and other experiments are untouched."""
    workdir = _copy_run(tiny_run, tmp_path)
    config = load_tiny_config()
    old = config["experiments"]["fluct"]["realizations"]
    config["experiments"]["fluct"]["realizations"] = old + config["experiments"]["fluct"]["block_size"]
    jobs = _planned(workdir, config)
    assert sorted({rule_family(rule) for rule, _ in jobs}) == [
        "all", "campaign", "claims", "compare_fluctuations", "plot_fluctuations"]
    assert all(rule.startswith("campaign_fluct_") for rule, _ in jobs if rule_family(rule) == "campaign")
    proc = run_snakemake(["--cores", "2", "--configfile", "changed.yaml"], cwd=workdir, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:]
    points = re.findall(r"point (\S+) \(\w+\) \(R=(\d+).*?covering (\d+) realizations; (\d+) block\(s\) to sample",
                        _campaign_logs(workdir, "fluct", jobs))
    grid = config["experiments"]["fluct"]["grid"]
    assert len(points) == len(grid["arch"]) * len(grid["width"]), points
    for _, R, covered, todo in points:
        assert (int(R), int(covered), int(todo)) == (old + config["experiments"]["fluct"]["block_size"], old, 1)
    rows = _read(workdir, "fluct")
    assert {int(r["realizations"]) + int(r["overflowed"]) for r in rows} == {old + config["experiments"]["fluct"]["block_size"]}


def test_plot_option_change_reruns_only_plots(tiny_run, tmp_path):
    workdir = _copy_run(tiny_run, tmp_path)
    config = load_tiny_config()
    config["plots"]["dpi"] = config["plots"]["dpi"] + 10
    jobs = _planned(workdir, config)
    assert {rule for rule, _ in jobs} == {"all"} | {f"plot_{k}" for k in (
        "kernel", "mmd", "fluctuations", "input_propagation", "instability", "phase_diagram")}


def test_comparison_option_change_reruns_only_that_comparison(tiny_run, tmp_path):
    workdir = _copy_run(tiny_run, tmp_path)
    config = copy.deepcopy(load_tiny_config())
    config["comparison"]["mmd_lengthscale"] *= 1.5
    jobs = _planned(workdir, config)
    assert sorted(rule for rule, _ in jobs) == ["all", "claims", "compare_mmd", "plot_mmd"]


def test_statistics_change_does_not_replan_the_phase_diagram(tiny_run, tmp_path):
    """The phase diagram is theory only: switching `statistics` replans the simulation
    experiments' tables and plots, never phase_diagram or plot_phase_diagram."""
    workdir = _copy_run(tiny_run, tmp_path)
    config = load_tiny_config()
    config["statistics"] = "paper"
    rules = {rule for rule, _ in _planned(workdir, config)}
    assert "plot_kernel" in rules  # the experiments' params record `statistics`
    assert not rules & {"phase_diagram", "plot_phase_diagram"}, rules


def test_claims_table(tiny_run):
    """results/claims.csv: one row per declared claim, in order, with a result; the run's
    terminal output ends with one line per claim."""
    from theory.claims import CLAIMS

    rows = _read(tiny_run, "claims")
    assert [r["id"] for r in rows] == [c.id for c in CLAIMS]
    assert all(r["result"] in ("pass", "fail", "not evaluated") for r in rows)
    assert all(r["reason"] for r in rows if r["result"] != "pass")
    # theory-exact claims hold on any data set
    assert {r["id"]: r["result"] for r in rows}["1a"] == "pass"
    printed = (tiny_run / "snakemake-run.log").read_text()
    for r in rows:
        assert re.search(rf"\[\s*{r['result'].upper()}\s*\]\s+{r['id']}\s", printed), r["id"]
    assert f"of {len(rows)} claims pass" in printed
