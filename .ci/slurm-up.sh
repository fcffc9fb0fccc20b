#!/usr/bin/env bash
# Install and start a real one-node SLURM cluster on this (Debian) host, for the
# SLURM integration test (tests/test_slurm.py).
#
#   * installs Debian's slurm-wlm and munge (only if not installed yet),
#   * writes /etc/slurm/slurm.conf for this host on 127.0.0.1 (CPUs and sockets
#     from `slurmd -C`, RealMemory a little below the detected total),
#   * creates the munge key if missing, starts munged, slurmctld and slurmd as
#     root without systemd, and waits until `sinfo` reports the node idle.
#
# Idempotent: on a host where the cluster already runs with the same
# configuration it only checks the node state (a few seconds).  Needs root.
# Fails loudly (non-zero exit, daemon logs printed) when the cluster cannot be
# brought up: a red CI is better than a silently skipped SLURM test.
#
# Environment knobs (all optional):
#   SLURM_UP_TIMEOUT   seconds to wait for each daemon / the idle node (default 60)
set -euo pipefail

TIMEOUT="${SLURM_UP_TIMEOUT:-60}"
CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
LOG_DIR=/var/log/slurm
CTLD_LOG="$LOG_DIR/slurmctld.log"
SLURMD_LOG="$LOG_DIR/slurmd.log"
MUNGE_LOG=/var/log/munge/munged.log
NODE="$(hostname -s)"

say() { printf '[slurm-up] %s\n' "$*"; }

dump_logs() {
    say "---- diagnostics ----"
    for f in "$CTLD_LOG" "$SLURMD_LOG" "$MUNGE_LOG"; do
        if [ -f "$f" ]; then
            say "last lines of $f:"
            tail -n 40 "$f" || true
        else
            say "$f does not exist"
        fi
    done
    say "processes:"
    ps -eo pid,user,args | grep -E '[m]unged|[s]lurmctld|[s]lurmd' || true
    if command -v sinfo >/dev/null 2>&1; then
        timeout 10 sinfo -N -l 2>&1 || true
        timeout 10 scontrol show node "$NODE" 2>&1 || true
    fi
}

die() {
    say "ERROR: $*"
    dump_logs
    exit 1
}

# wait_for SECONDS DESCRIPTION COMMAND... : poll COMMAND every 0.5 s
wait_for() {
    local limit="$1" what="$2"
    shift 2
    local deadline=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            die "timed out after ${limit}s waiting for $what"
        fi
        sleep 0.5
    done
}

running() { pgrep -x "$1" >/dev/null 2>&1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (apt-get and SLURM daemons)"

# ---------------------------------------------------------------- install ---
need_install=0
for exe in slurmctld slurmd sinfo srun sbatch squeue scontrol munged mungekey; do
    command -v "$exe" >/dev/null 2>&1 || need_install=1
done
if [ "$need_install" -eq 1 ]; then
    say "installing slurm-wlm and munge with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt_log="$(mktemp /tmp/slurm-up-apt.XXXXXX.log)"
    if ! { apt-get -o DPkg::Lock::Timeout=120 update -qq && apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends \
        slurm-wlm munge; } >"$apt_log" 2>&1; then
        tail -n 40 "$apt_log" || true
        die "apt-get update/install of slurm-wlm munge failed (full log: $apt_log)"
    fi
    say "installed: $(dpkg-query -W -f='${Package}=${Version} ' slurm-wlm munge)"
else
    say "slurm-wlm and munge already installed"
fi
say "$(slurmctld -V 2>&1 | head -n 1)"

# ------------------------------------------------------------------ munge ---
install -d -o munge -g munge -m 0700 /etc/munge /var/log/munge
install -d -o munge -g munge -m 0711 /var/lib/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    say "creating munge key"
    mungekey --create --keyfile=/etc/munge/munge.key || die "mungekey --create failed"
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key

if running munged && munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "munged already running"
else
    if running munged; then
        say "munged runs but does not answer; restarting it"
        if [ -s /run/munge/munged.pid ]; then
            kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true
        fi
        wait_for 10 "the old munged to exit" sh -c '! pgrep -x munged'
    fi
    say "starting munged"
    rm -f /run/munge/munge.socket.2.lock
    runuser -u munge -- /usr/sbin/munged --log-file="$MUNGE_LOG" \
        || die "munged did not start"
    wait_for "$TIMEOUT" "munged to answer" sh -c 'munge -n | unmunge'
fi

# ------------------------------------------------------------ slurm.conf ---
# Node hardware exactly as slurmd detects it, so slurmd never registers with
# fewer resources than configured (which would drain the node).  Memory is
# lowered by ~5% (at least 256 MB) so jobs cannot push the host into swap/OOM.
hw="$(slurmd -C | head -n 1)" || die "slurmd -C failed"
field() { printf '%s\n' "$hw" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
CPUS="$(field CPUs)"
BOARDS="$(field Boards)"
SOCKETS="$(field SocketsPerBoard)"
CORES="$(field CoresPerSocket)"
THREADS="$(field ThreadsPerCore)"
MEM_TOTAL="$(field RealMemory)"
[ -n "$CPUS" ] && [ -n "$MEM_TOTAL" ] || die "cannot parse 'slurmd -C' output: $hw"
MEM_MARGIN=$((MEM_TOTAL / 20))
[ "$MEM_MARGIN" -ge 256 ] || MEM_MARGIN=256
REAL_MEM=$((MEM_TOTAL - MEM_MARGIN))
[ "$REAL_MEM" -ge 512 ] || die "too little memory for a SLURM node: ${MEM_TOTAL} MB"

install -d -m 0755 "$CONF_DIR" "$LOG_DIR"
install -d -m 0755 /var/spool/slurmctld /var/spool/slurmd /run/slurm

new_conf="$(mktemp)"
trap 'rm -f "$new_conf"' EXIT
cat >"$new_conf" <<EOF
# Written by .ci/slurm-up.sh: one-node test cluster on 127.0.0.1 (no accounting).
ClusterName=ci
SlurmctldHost=${NODE}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
CryptoType=crypto/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=${CTLD_LOG}
SlurmdLogFile=${SLURMD_LOG}
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=pmi2
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# Reject at submission (instead of pending forever) jobs that can never fit.
EnforcePartLimits=ALL
# Keep finished jobs visible to squeue for 10 minutes: without accounting the
# Snakemake SLURM executor polls job states with squeue.
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=10
Waittime=0
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
NodeName=${NODE} NodeAddr=127.0.0.1 CPUs=${CPUS} Boards=${BOARDS} SocketsPerBoard=${SOCKETS} CoresPerSocket=${CORES} ThreadsPerCore=${THREADS} RealMemory=${REAL_MEM} State=UNKNOWN
PartitionName=debug Nodes=${NODE} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF

conf_changed=0
if ! cmp -s "$new_conf" "$CONF"; then
    conf_changed=1
    install -m 0644 "$new_conf" "$CONF"
    say "wrote $CONF (node ${NODE}: CPUs=${CPUS}, RealMemory=${REAL_MEM} MB)"
fi

# ---------------------------------------------------------- slurm daemons ---
if [ "$conf_changed" -eq 1 ] && { running slurmctld || running slurmd; }; then
    say "configuration changed: restarting SLURM daemons"
    # 'scontrol shutdown' stops slurmctld and every slurmd it knows; fall back
    # to the daemons' pid files if the old controller does not answer.
    timeout 10 scontrol shutdown >/dev/null 2>&1 || true
    sleep 1
    for pidfile in /run/slurm/slurmd.pid /run/slurm/slurmctld.pid; do
        pid="$(cat "$pidfile" 2>/dev/null || true)"
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
        fi
    done
    wait_for 20 "the old SLURM daemons to exit" \
        sh -c '! pgrep -x slurmd && ! pgrep -x slurmctld'
fi

if running slurmctld; then
    say "slurmctld already running"
else
    say "starting slurmctld"
    slurmctld || die "slurmctld did not start"
fi
wait_for "$TIMEOUT" "slurmctld to answer (scontrol ping)" \
    sh -c 'timeout 5 scontrol ping | grep -q "is UP"'

if running slurmd; then
    say "slurmd already running"
else
    say "starting slurmd"
    slurmd || die "slurmd did not start"
fi

node_state() { timeout 5 sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -n 1; }
deadline=$((SECONDS + TIMEOUT))
resumed=0
while :; do
    state="$(node_state || true)"
    case "$state" in
        idle | mixed | allocated | completing) break ;;
        down* | drain* | drained* | fail*)
            if [ "$resumed" -eq 0 ]; then
                say "node ${NODE} is '$state': resuming it"
                timeout 5 scontrol update NodeName="$NODE" State=RESUME || true
                resumed=1
            fi
            ;;
    esac
    if [ "$SECONDS" -ge "$deadline" ]; then
        die "timed out after ${TIMEOUT}s waiting for node ${NODE} to become idle (state: '${state:-none}')"
    fi
    sleep 0.5
done

# ------------------------------------------------------------- smoke tests ---
# stdout is the tasks' output; srun's own notes (e.g. "queued and waiting for
# resources" while the previous step completes) go to stderr, shown on failure
srun_err="$(mktemp)"
out="$(timeout 60 srun -N1 -n1 -t 1 hostname 2>"$srun_err")" \
    || die "srun smoke test failed: $out $(cat "$srun_err")"
# the pmi2 plugin must hand every task its PMI rank and size (MPICH's PMI
# client then joins them into one MPI world); -O allows 2 tasks on 1 CPU
pmi="$(timeout 60 srun -O -N1 -n2 -t 1 --mpi=pmi2 sh -c 'echo "${PMI_RANK:-unset}/${PMI_SIZE:-unset}"' 2>"$srun_err" | sort | tr '\n' ' ')" \
    || die "srun --mpi=pmi2 smoke test failed: $pmi $(cat "$srun_err")"
[ "$pmi" = "0/2 1/2 " ] || die "srun --mpi=pmi2 gave PMI rank/size '$pmi', expected '0/2 1/2' ($(cat "$srun_err"))"
rm -f "$srun_err"

say "SLURM is up: node ${NODE} is ${state}; 'srun hostname' -> ${out}; 'srun --mpi=pmi2 -n2' PMI rank/size: ${pmi}"
sinfo -N -o '%N %P %T %c %m'
