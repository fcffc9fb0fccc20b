"""A campaign job spanning two SLURM nodes, bit-identical to one process.

Needs the two-node cluster of .ci/slurm-two-node.sh (SLURM_CONF
/etc/slurm-ci2/slurm.conf): node1 and node2 are two slurmd in their own
network and UTS namespaces on this host, connected by veth pairs.  The test
submits ``sbatch -N 2 -n 2 --ntasks-per-node=1`` whose script runs, with the
MPICH wheel's ``mpiexec -launcher slurm -iface eth0 -n 2 -ppn 1`` (Hydra
starts one proxy per node with ``srun``),

* ``python -c ...``: each rank reports its SLURM node id, its host name and the
  size of its ``MPI_COMM_TYPE_SHARED`` communicator, after an allreduce across
  the nodes;
* ``python -m mcsim campaign --specs CHUNK.json --store ...`` on the three
  small points of tests/test_mcsim_campaign.py,

and checks one rank per node, that MPICH/UCX talked TCP over the namespaces'
eth0 (UCX's own log lines: "inter-node ... tcp/eth0"), that both nodes wrote
blocks (the shards' ``host`` attribute), and that every final file is
bit-identical to in-process :func:`mcsim.sample`.

Why not ``srun --mpi=pmi2`` directly (as the SLURM profile does): with
Debian's Slurm 22.05 and the MPICH 5 wheel, a two-node campaign step failed
in MPI_Init in about 1 of 8 runs here with "slurmstepd: error: mpi/pmi2: value
not properly terminated in client request" (Slurm's PMI-1 server splitting a
long ``cmd=put`` line); Hydra's own PMI server did not fail in 5 of 5.

UCX recognises the two namespaces as one machine (same kernel boot id) and
would use shared memory/CMA between them; the job sets ``UCX_TLS=self,tcp``
and ``UCX_NET_DEVICES=eth0`` so the ranks use the network path a real second
node needs.  Same machine: this does not test a real interconnect.

Without the cluster the test is skipped with the reason: the exact error of
the namespace setup if .ci/slurm-two-node.sh found the sandbox forbids network
namespaces (its file /run/slurm-ci2/unavailable); otherwise "not started",
which under CI=true is a failure (CI runs the script).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

import theory
from mcsim import store
from test_mcsim_campaign import POINTS, assert_point_equal, reference, shards, write_chunk

CONF = Path("/etc/slurm-ci2/slurm.conf")
UNAVAILABLE = Path("/run/slurm-ci2/unavailable")
NODES = ("node1", "node2")
JOB_TIMEOUT = 480  # s: sbatch --wait, including numba compilation in the job

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.timeout(600)]

IN_CI = os.environ.get("CI", "").lower() == "true"


def _env(subprocess_env):
    """Environment for sbatch: the checkout's python first, only the two-node SLURM_CONF."""
    env = {k: v for k, v in subprocess_env().items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_"))}
    env["SLURM_CONF"] = str(CONF)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


@pytest.fixture(scope="module")
def two_nodes(subprocess_env):
    if UNAVAILABLE.is_file():
        pytest.skip(f"no two-node cluster: network namespaces unavailable: {UNAVAILABLE.read_text().strip()}")
    if not CONF.is_file():
        msg = f"no two-node cluster: {CONF} missing (start it with .ci/slurm-two-node.sh)"
        if IN_CI:
            pytest.fail(msg + " (CI=true: .ci/run starts it)")
        pytest.skip(msg)
    env = _env(subprocess_env)
    res = subprocess.run(["sinfo", "--noheader", "--Node", "--format=%N|%T"], capture_output=True, text=True,
                         env=env, timeout=30)
    states = dict(line.split("|") for line in res.stdout.split())
    usable = [n for n in NODES if states.get(n, "").rstrip("*~#!%$@^-") in ("idle", "mixed", "completing")]
    if res.returncode != 0 or len(usable) != 2:
        msg = f"two-node cluster not usable: sinfo rc={res.returncode} {res.stdout.strip()} {res.stderr.strip()}"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return env


# each rank writes its report to <argv[1]>/rank<r>.txt (Hydra interleaves the ranks' stdout)
RANK_REPORT = """\
import os, socket, sys
from mpi4py import MPI
c = MPI.COMM_WORLD
total = c.allreduce(c.rank + 1)
shared = c.Split_type(MPI.COMM_TYPE_SHARED).size
with open(os.path.join(sys.argv[1], f"rank{c.rank}.txt"), "w") as fh:
    fh.write(f"rank {c.rank} of {c.size} node {os.environ['SLURM_NODEID']} host {socket.gethostname()} "
             f"shared {shared} sum {total}")
"""


def test_campaign_across_two_nodes_is_bit_identical(two_nodes, mpiexec, tmp_path):
    chunk = write_chunk(tmp_path)
    launch = f"{mpiexec} -launcher slurm -iface eth0 -n 2 -ppn 1 {sys.executable}"
    st = tmp_path / "store"
    log = tmp_path / "job.log"
    script = tmp_path / "job.sh"
    (tmp_path / "report.py").write_text(RANK_REPORT)
    script.write_text(
        "#!/bin/bash\nset -euo pipefail\n"
        "export UCX_TLS=self,tcp UCX_NET_DEVICES=eth0 UCX_LOG_LEVEL=info\n"
        f"{launch} {tmp_path / 'report.py'} {tmp_path}\n"
        f"{launch} -m mcsim campaign --specs {chunk} --store {st} --progress-interval 5\n"
    )
    cmd = ["sbatch", "--wait", "-N", "2", "-n", "2", "--ntasks-per-node=1", "-t", "8", "-J", "two-node-test",
           "-o", str(log), "-D", str(tmp_path), str(script)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, env=two_nodes, timeout=JOB_TIMEOUT)
    except subprocess.TimeoutExpired:
        subprocess.run(["scancel", "--name", "two-node-test"], env=two_nodes, timeout=30)
        pytest.fail(f"sbatch job did not finish in {JOB_TIMEOUT} s:\n{log.read_text()[-6000:] if log.exists() else ''}")
    out = log.read_text() if log.exists() else ""
    assert res.returncode == 0, f"sbatch rc={res.returncode}: {res.stderr}\n{out[-6000:]}"

    # one rank per node, each on its own host; MPICH sees no shared-memory peer; the allreduce crossed nodes
    reports = [(tmp_path / f"rank{r}.txt").read_text() for r in range(2)]
    assert reports == ["rank 0 of 2 node 0 host node1 shared 1 sum 3",
                       "rank 1 of 2 node 1 host node2 shared 1 sum 3"], out[-6000:]
    # UCX connected the ranks over TCP on the namespaces' eth0, never over shared memory
    inter = re.findall(r"\[(node\d):\s*\d+\s*:\d+\].*inter-node cfg#\d+ (.*)$", out, flags=re.M)
    assert {host for host, _ in inter} == set(NODES), out[-6000:]
    assert all("tcp/eth0" in tls for _, tls in inter), inter
    assert "intra-node" not in out, out[-6000:]

    hosts = set()
    for name, spec in POINTS.items():
        path = tmp_path / "out" / f"{name}.h5"
        assert_point_equal(path, reference(spec))
        _, attrs = store.read_point(path)
        assert attrs["mpi_ranks"] == 2
        key = theory.parse_point_spec(spec).point_key()
        for shard in shards(st, spec):
            with h5py.File(st / key / "blocks" / shard, "r") as f:
                hosts.add((int(f.attrs["mpi_rank"]), str(f.attrs["host"])))
    # the campaign's blocks were sampled on both nodes: rank 0 on node1, rank 1 on node2
    assert hosts == {(0, "node1"), (1, "node2")}, hosts
