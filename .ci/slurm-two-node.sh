#!/usr/bin/env bash
# Start a second, two-node SLURM test cluster ("ci2") on this host, for
# tests/test_slurm_two_node.py: a campaign job spanning two nodes.
#
#   * needs slurm-wlm and munge (run .ci/slurm-up.sh first: it installs them
#     and starts munged; the munge socket is a file, shared by every namespace);
#   * two network namespaces ci2n1 and ci2n2, each with a veth pair into the
#     bridge ci2br on the host: host 10.231.0.1, node1 10.231.0.2, node2
#     10.231.0.3 (/24);
#   * one slurmd per namespace (`slurmd -N node1|node2`), each also in its own
#     UTS namespace with hostname node1|node2, so every rank sees a different
#     host name and MPICH treats the two ranks as two nodes (no shared memory
#     between them: they talk TCP over the veth pairs);
#   * a separate slurmctld on 10.231.0.1, ports 6827/6828, its own config
#     /etc/slurm-ci2/slurm.conf, spool, state, pid and log files: the one-node
#     cluster of .ci/slurm-up.sh (ports 6817/6818, /etc/slurm) is untouched.
#     The daemons run through symlinks named slurmctld-ci2 and slurmd-ci2, so
#     slurm-up.sh's `pgrep -x slurmctld|slurmd` never mistakes them for its own.
#
# Clients reach this cluster with SLURM_CONF=/etc/slurm-ci2/slurm.conf.
# Idempotent: when everything already runs it only checks the node states.
# `--down` stops the daemons and removes the namespaces and the bridge.
# Needs root.
#
# Exit codes: 0 the cluster is up; 3 the sandbox forbids the network setup
# (bridge, network namespace or veth pair): the kernel's exact error is printed
# and written to $UNAVAILABLE_FILE, whose content the two-node test reports as
# its skip reason -- a missing capability of the machine, not a bug, and never
# a faked second node; 1 anything else (daemons, configuration, smoke test)
# fails loudly with the daemon logs.
#
# Environment knobs (all optional):
#   SLURM_UP_TIMEOUT   seconds to wait for each daemon / the idle nodes (default 60)
set -euo pipefail

TIMEOUT="${SLURM_UP_TIMEOUT:-60}"
CONF_DIR=/etc/slurm-ci2
CONF="$CONF_DIR/slurm.conf"
LOG_DIR=/var/log/slurm-ci2
RUN_DIR=/run/slurm-ci2
BIN_DIR="$RUN_DIR/bin"
SPOOL=/var/spool/slurm-ci2
CTLD_LOG="$LOG_DIR/slurmctld.log"
BRIDGE=ci2br
HOST_IP=10.231.0.1
NODES=(node1 node2)
NODE_IPS=(10.231.0.2 10.231.0.3)
NETNS=(ci2n1 ci2n2)
UNAVAILABLE_FILE="$RUN_DIR/unavailable"
export SLURM_CONF="$CONF"

say() { printf '[slurm-two-node] %s\n' "$*"; }

dump_logs() {
    say "---- diagnostics ----"
    for f in "$CTLD_LOG" "$LOG_DIR"/slurmd-*.log; do
        if [ -f "$f" ]; then
            say "last lines of $f:"
            tail -n 30 "$f" || true
        fi
    done
    say "processes:"
    ps -eo pid,user,args | grep -E '[s]lurm(ctld|d)-ci2' || true
    [ -f "$CONF" ] && timeout 10 sinfo -N -l 2>&1 || true
}

die() {
    say "ERROR: $*"
    dump_logs
    exit 1
}

# run COMMAND...: run it; on failure stop with the command and its exact error
run() {
    local err
    if ! err="$("$@" 2>&1)"; then
        say "ERROR: '$*' failed: $err"
        dump_logs
        exit 1
    fi
}

# net COMMAND...: a network-setup step; if the sandbox forbids it, record the
# exact error for the test's skip reason and exit 3
net() {
    local err
    if ! err="$("$@" 2>&1)"; then
        install -d -m 0755 "$RUN_DIR"
        printf "'%s' failed: %s\n" "$*" "$err" >"$UNAVAILABLE_FILE"
        say "ERROR: network namespaces unavailable: '$*' failed: $err"
        say "the two-node test will be skipped with this reason ($UNAVAILABLE_FILE)"
        exit 3
    fi
}

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

# stop this cluster's daemons (found by their symlink names, never the one-node cluster's)
stop_daemons() {
    if [ -f "$CONF" ]; then
        timeout 10 scontrol shutdown >/dev/null 2>&1 || true
    fi
    local pid
    for pid in $(pgrep -x slurmd-ci2) $(pgrep -x slurmctld-ci2); do
        kill "$pid" 2>/dev/null || true
    done
    wait_for 20 "the ci2 SLURM daemons to exit" \
        sh -c '! pgrep -x slurmd-ci2 && ! pgrep -x slurmctld-ci2'
}

[ "$(id -u)" -eq 0 ] || die "must run as root (network namespaces and SLURM daemons)"

if [ "${1:-}" = "--down" ]; then
    stop_daemons
    for ns in "${NETNS[@]}"; do
        ip netns del "$ns" 2>/dev/null || true
    done
    ip link del "$BRIDGE" 2>/dev/null || true
    rm -f "$CONF" "$UNAVAILABLE_FILE"
    say "two-node cluster stopped, namespaces and bridge removed"
    exit 0
fi

if ! command -v ip >/dev/null 2>&1; then
    say "installing iproute2 with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends \
        iproute2 >/dev/null 2>&1 || die "apt-get install iproute2 failed"
fi
for exe in slurmctld slurmd sinfo srun sbatch scontrol munge unmunge ip nsenter unshare; do
    command -v "$exe" >/dev/null 2>&1 || die "'$exe' is not installed (run .ci/slurm-up.sh first)"
done
munge -n 2>/dev/null | unmunge >/dev/null 2>&1 \
    || die "munged does not answer (run .ci/slurm-up.sh first: it starts munged)"

# -------------------------------------------------------------- network ---
# Each step is checked, so a sandbox without network namespaces fails here
# with the kernel's exact error message.
if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    say "creating bridge $BRIDGE ($HOST_IP/24)"
    net ip link add "$BRIDGE" type bridge
fi
ip -4 addr show dev "$BRIDGE" | grep -q "inet $HOST_IP/24" || net ip addr add "$HOST_IP/24" dev "$BRIDGE"
net ip link set "$BRIDGE" up
for i in 0 1; do
    ns="${NETNS[$i]}"
    ip="${NODE_IPS[$i]}"
    host_if="ci2v$((i + 1))"
    if ! ip netns list | grep -qw "$ns"; then
        say "creating network namespace $ns (${NODES[$i]} = $ip)"
        net ip netns add "$ns"
    fi
    if ! ip netns exec "$ns" ip link show eth0 >/dev/null 2>&1; then
        ip link del "$host_if" 2>/dev/null || true
        net ip link add "$host_if" type veth peer name eth0 netns "$ns"
    fi
    net ip link set "$host_if" master "$BRIDGE"
    net ip link set "$host_if" up
    net ip netns exec "$ns" ip link set lo up
    ip netns exec "$ns" ip -4 addr show dev eth0 | grep -q "inet $ip/24" \
        || net ip netns exec "$ns" ip addr add "$ip/24" dev eth0
    net ip netns exec "$ns" ip link set eth0 up
done
# slurmd runs in its own UTS namespace too
net unshare --uts true
# (reachability is proven below: both slurmd register with slurmctld on
# $HOST_IP, and the smoke test's srun talks to both nodes)

rm -f "$UNAVAILABLE_FILE"

# ------------------------------------------------------------ slurm.conf ---
hw="$(slurmd -C | head -n 1)" || die "slurmd -C failed"
field() { printf '%s\n' "$hw" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
CPUS="$(field CPUs)"
BOARDS="$(field Boards)"
SOCKETS="$(field SocketsPerBoard)"
CORES="$(field CoresPerSocket)"
THREADS="$(field ThreadsPerCore)"
MEM_TOTAL="$(field RealMemory)"
[ -n "$CPUS" ] && [ -n "$MEM_TOTAL" ] || die "cannot parse 'slurmd -C' output: $hw"
# both nodes share this host's memory: each gets a quarter of it
NODE_MEM=$((MEM_TOTAL / 4))
[ "$NODE_MEM" -ge 512 ] || die "too little memory for two SLURM nodes: ${MEM_TOTAL} MB"

install -d -m 0755 "$CONF_DIR" "$LOG_DIR" "$RUN_DIR" "$BIN_DIR" "$SPOOL/ctld"
for node in "${NODES[@]}"; do
    install -d -m 0755 "$SPOOL/$node"
done
ln -sfn "$(command -v slurmctld)" "$BIN_DIR/slurmctld-ci2"
ln -sfn "$(command -v slurmd)" "$BIN_DIR/slurmd-ci2"

new_conf="$(mktemp)"
trap 'rm -f "$new_conf"' EXIT
node_line() {
    printf 'NodeName=%s NodeAddr=%s CPUs=%s Boards=%s SocketsPerBoard=%s CoresPerSocket=%s ThreadsPerCore=%s RealMemory=%s State=UNKNOWN\n' \
        "$1" "$2" "$CPUS" "$BOARDS" "$SOCKETS" "$CORES" "$THREADS" "$NODE_MEM"
}
{
    cat <<EOF
# Written by .ci/slurm-two-node.sh: two-node test cluster, each node a network
# namespace on this host (no accounting).  Use with SLURM_CONF=$CONF.
ClusterName=ci2
SlurmctldHost=$(hostname -s)($HOST_IP)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6827
SlurmdPort=6828
AuthType=auth/munge
CryptoType=crypto/munge
StateSaveLocation=$SPOOL/ctld
SlurmdSpoolDir=$SPOOL/%n
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd-%n.pid
SlurmctldLogFile=$CTLD_LOG
SlurmdLogFile=$LOG_DIR/slurmd-%n.log
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
EnforcePartLimits=ALL
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=10
Waittime=0
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
EOF
    node_line node1 "${NODE_IPS[0]}"
    node_line node2 "${NODE_IPS[1]}"
    echo "PartitionName=two Nodes=node1,node2 Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO"
} >"$new_conf"

if ! cmp -s "$new_conf" "$CONF"; then
    install -m 0644 "$new_conf" "$CONF"
    say "wrote $CONF (node1, node2: CPUs=${CPUS}, RealMemory=${NODE_MEM} MB each)"
    if running slurmctld-ci2 || running slurmd-ci2; then
        say "configuration changed: restarting the ci2 SLURM daemons"
        stop_daemons
    fi
fi

# ---------------------------------------------------------- slurm daemons ---
if running slurmctld-ci2; then
    say "slurmctld-ci2 already running"
else
    say "starting slurmctld-ci2"
    run "$BIN_DIR/slurmctld-ci2" -f "$CONF"
fi
wait_for "$TIMEOUT" "slurmctld-ci2 to answer (scontrol ping)" \
    sh -c 'timeout 5 scontrol ping | grep -q "is UP"'

for i in 0 1; do
    node="${NODES[$i]}"
    if pgrep -x slurmd-ci2 -a | grep -q -- "-N $node"; then
        say "slurmd-ci2 for $node already running"
    else
        say "starting slurmd-ci2 for $node in network namespace ${NETNS[$i]}"
        # own UTS namespace: `hostname` is the node name inside its jobs
        run nsenter --net=/run/netns/"${NETNS[$i]}" unshare --uts sh -c \
            "hostname $node && exec $BIN_DIR/slurmd-ci2 -f $CONF -N $node"
    fi
done

node_state() { timeout 5 sinfo -h -N -n "$1" -o '%T' 2>/dev/null | head -n 1; }
for node in "${NODES[@]}"; do
    deadline=$((SECONDS + TIMEOUT))
    resumed=0
    while :; do
        state="$(node_state "$node" || true)"
        case "$state" in
            idle | mixed | allocated | completing) break ;;
            down* | drain* | drained* | fail*)
                if [ "$resumed" -eq 0 ]; then
                    say "node $node is '$state': resuming it"
                    timeout 5 scontrol update NodeName="$node" State=RESUME || true
                    resumed=1
                fi
                ;;
        esac
        if [ "$SECONDS" -ge "$deadline" ]; then
            die "timed out after ${TIMEOUT}s waiting for node $node to become idle (state: '${state:-none}')"
        fi
        sleep 0.5
    done
done

# ------------------------------------------------------------- smoke test ---
# one task per node: each reports its host name and PMI rank/size
srun_err="$(mktemp)"
out="$(timeout 60 srun -N2 -n2 --ntasks-per-node=1 -t 1 --mpi=pmi2 \
    sh -c 'echo "$(hostname):${SLURM_NODEID}:${PMI_RANK:-unset}/${PMI_SIZE:-unset}"' 2>"$srun_err" | sort | tr '\n' ' ')" \
    || die "two-node srun smoke test failed: $out $(cat "$srun_err")"
[ "$out" = "node1:0:0/2 node2:1:1/2 " ] \
    || die "two-node srun gave '$out', expected 'node1:0:0/2 node2:1:1/2 ' ($(cat "$srun_err"))"
rm -f "$srun_err"

say "two-node SLURM cluster is up (SLURM_CONF=$CONF); 'srun -N2 -n2' host:nodeid:rank/size -> $out"
sinfo -N -o '%N %P %T %c %m'
