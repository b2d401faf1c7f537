#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine for the tests (as root, without systemd):
# MUNGE on its own key and socket, slurmctld and slurmd, all state, logs and PIDs in one dir.
#   bash tests/slurm/install.sh          # once: apt-get install slurm-wlm munge
#   bash tests/slurm/start.sh            # idempotent; prints the `export SLURM_CONF=...` line
#   eval "$(bash tests/slurm/start.sh | tail -1)"   # ... or take the line straight into this shell
#   bash tests/slurm/stop.sh             # stops exactly the daemons this script started
# ODIN_SLURM_DIR picks the state dir (default /tmp/odin-slurm); ODIN_SLURM_WAIT_S bounds the wait.
set -euo pipefail

state=${ODIN_SLURM_DIR:-/tmp/odin-slurm}
wait_s=${ODIN_SLURM_WAIT_S:-60}
export SLURM_CONF=$state/slurm.conf

fail() {
    echo "tests/slurm/start.sh: $*" >&2
    for log in "$state"/log/*.log; do
        [ -f "$log" ] && { echo "--- tail of $log" >&2; tail -n 20 "$log" >&2; }
    done
    exit 1
}

# sinfo retries for 60 s when SLURM_CONF is missing: ask only once the file exists.
node_state() { [ -f "$SLURM_CONF" ] && timeout 20 sinfo --noheader --Node --format=%t 2>/dev/null | head -1; }

all_running() {
    [ -f "$state/pids" ] || return 1
    local name pid
    while read -r name pid; do kill -0 "$pid" 2>/dev/null || return 1; done <"$state/pids"
}

[ "$(id -u)" = 0 ] || fail "run as root (SlurmUser=root; slurmd must start jobs)"
for cmd in munged slurmctld slurmd sinfo; do
    command -v "$cmd" >/dev/null || fail "$cmd not found: run tests/slurm/install.sh first"
done

if all_running && [[ $(node_state) =~ ^(idle|mix|alloc)$ ]]; then
    echo "SLURM already running (state dir $state)"
    echo "export SLURM_CONF=$SLURM_CONF"
    exit 0
fi
# Half-started or dead leftovers of an earlier start: stop what is recorded, then start afresh.
[ -f "$state/pids" ] && bash "$(dirname "$0")/stop.sh"

mkdir -p "$state"/{munge,ctld,spool,log,run}
# munged refuses a key or socket dir that others can write; 711 still lets non-root clients reach the socket.
chmod 755 "$state"
chmod 711 "$state/munge"
if [ ! -f "$state/munge/munge.key" ]; then
    dd if=/dev/urandom of="$state/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$state/munge/munge.key"
fi
munge_socket=$state/munge/munge.socket
munged --force --key-file="$state/munge/munge.key" --socket="$munge_socket" \
    --pid-file="$state/run/munged.pid" --log-file="$state/log/munged.log" --seed-file="$state/munge/munged.seed" \
    || fail "munged did not start"

host=$(hostname -s)
cpus=$(nproc)
mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)   # below the machine's, as slurmd checks
cat >"$SLURM_CONF" <<CONF
# Written by tests/slurm/start.sh: a single-node test cluster, not a production config.
ClusterName=odin
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
# cred_expire is also how long a requeued job waits before it may start again (default 120 s): short for tests.
AuthInfo=socket=$munge_socket,cred_expire=10
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
SchedulerParameters=sched_interval=2
# Preemption and time limits: submitit's sbatch asks --signal=USR2@<signal_delay_s> (submitit >= 1.5; the env var
# SUBMITIT_PREEMPT_SIGNAL changes it); on that signal it checkpoints and runs 'scontrol requeue', which needs
# requeue allowed (JobRequeue=1, the default, set here to say so). preempt_send_user_signal makes a preempting
# cluster send that signal at preemption too (otherwise only SIGTERM, which submitit ignores, then SIGKILL).
JobRequeue=1
SlurmctldParameters=preempt_send_user_signal
KillWait=30
MinJobAge=300
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/run/slurmctld.pid
SlurmdPidFile=$state/run/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF

slurmctld -c || fail "slurmctld did not start"   # -c: a test cluster starts with no jobs left over
slurmd || fail "slurmd did not start"

# The daemons fork; their PID files appear once they are up. Record the PIDs: stop.sh kills only these.
for _ in $(seq 50); do
    [ -s "$state/run/munged.pid" ] && [ -s "$state/run/slurmctld.pid" ] && [ -s "$state/run/slurmd.pid" ] && break
    sleep 0.1
done
: >"$state/pids"
for name in munged slurmctld slurmd; do
    [ -s "$state/run/$name.pid" ] || fail "$name wrote no PID file"
    echo "$name $(cat "$state/run/$name.pid")" >>"$state/pids"
done

for _ in $(seq "$wait_s"); do
    [ "$(node_state)" = idle ] && break
    sleep 1
done
[ "$(node_state)" = idle ] || fail "node $host not idle after ${wait_s}s (sinfo: '$(node_state)')"
echo "SLURM up: node $host, $cpus CPUs, ${mem_mb} MB, partition debug (state dir $state)"
echo "export SLURM_CONF=$SLURM_CONF"
