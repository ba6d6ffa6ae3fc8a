#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, for tests/test_slurm.py (as root).
#
#   tests/slurm/cluster.sh install       apt-get SLURM and munge if they are missing
#   tests/slurm/cluster.sh start DIR     start munged, slurmctld and slurmd; all their files in DIR
#   tests/slurm/cluster.sh stop DIR      cancel every job, stop the daemons started in DIR (by pid)
#   tests/slurm/cluster.sh run CMD...    CMD on a fresh cluster in a temporary directory, with
#                                        SLURM_CONF and HPCOPT_TEST_SLURM=1 set; the cluster is
#                                        stopped afterwards whatever happens; CMD's exit status
#
# Clients find the cluster through SLURM_CONF=DIR/slurm.conf (start prints it). Nothing
# outside DIR is written: own munge key and socket, own ports, own state, spool, logs
# and pid files. Debian 12's packages (slurmctld, slurmd, slurm-client, munge); run as root.
set -euo pipefail

PORT=${HPCOPT_SLURM_PORT:-16817}  # slurmctld; slurmd gets PORT+1

install() {
    if command -v sbatch >/dev/null && [ -x /usr/sbin/slurmctld ] && [ -x /usr/sbin/slurmd ] \
            && [ -x /usr/sbin/munged ]; then
        return
    fi
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurmctld slurmd slurm-client munge
}

start() {
    local dir host cpus
    dir=$(realpath -m "$1")
    mkdir -p "$dir"/{state,spool,log,munge}
    chmod 755 "$dir"
    host=$(hostname -s)
    cpus=$(nproc)

    # munge: a fresh key and a private socket, daemon as user munge
    dd if=/dev/urandom bs=1 count=1024 of="$dir/munge/munge.key" status=none
    chown -R munge:munge "$dir/munge"
    chmod 711 "$dir/munge"  # clients reach the socket; the key (0400) stays unreadable
    chmod 400 "$dir/munge/munge.key"
    runuser -u munge -- /usr/sbin/munged --socket="$dir/munge/socket" --key-file="$dir/munge/munge.key" \
        --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/seed"

    cat > "$dir/slurm.conf" <<CONF
ClusterName=local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
# quicker than production, otherwise the same: a requeued job may start again after 10 s
# (cred_expire; default 120) and the scheduler looks every 2 s (default 60, backfill 30)
AuthInfo=socket=$dir/munge/socket,cred_expire=10
SchedulerParameters=sched_interval=2,bf_interval=2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# finished jobs stay visible to 'scontrol show job' for 30 minutes (there is no sacct here)
MinJobAge=1800
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
    export SLURM_CONF=$dir/slurm.conf
    /usr/sbin/slurmctld -f "$SLURM_CONF"
    /usr/sbin/slurmd -f "$SLURM_CONF"
    # up when the node is idle
    for _ in $(seq 120); do
        if sinfo -h -N -o %t 2>/dev/null | grep -qx idle; then
            echo "SLURM_CONF=$SLURM_CONF"
            return
        fi
        sleep 0.5
    done
    echo "cluster.sh: the node never became idle; logs in $dir/log" >&2
    sinfo -N -l >&2 || true
    tail -n 20 "$dir"/log/*.log >&2 || true
    return 1
}

stop_pid() {  # stop_pid PIDFILE: SIGTERM the daemon it names, wait for it, SIGKILL after 30 s
    local pid
    [ -s "$1" ] || return 0
    pid=$(cat "$1")
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 300); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
}

stop() {
    local dir
    dir=$(realpath -m "$1")
    export SLURM_CONF=$dir/slurm.conf
    if [ -s "$dir/slurmctld.pid" ] && kill -0 "$(cat "$dir/slurmctld.pid")" 2>/dev/null; then
        local jobs
        jobs=$(squeue -h -o %A 2>/dev/null || true)
        # shellcheck disable=SC2086
        [ -z "$jobs" ] || scancel $jobs || true
        for _ in $(seq 120); do  # the jobs' processes end before slurmd does
            [ -z "$(squeue -h -o %A 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
    stop_pid "$dir/slurmd.pid"
    stop_pid "$dir/slurmctld.pid"
    stop_pid "$dir/munge/munged.pid"
}

run() {
    local dir status=0
    dir=$(mktemp -d "${TMPDIR:-/tmp}/hpcopt-slurm.XXXXXX")
    trap 'stop "$dir"' EXIT
    start "$dir" >/dev/null
    SLURM_CONF=$dir/slurm.conf HPCOPT_TEST_SLURM=1 "$@" || status=$?
    stop "$dir"
    trap - EXIT
    if [ "$status" -eq 0 ]; then
        rm -rf "$dir"
    else
        echo "cluster.sh: '$*' exited with status $status; the cluster's logs are in $dir/log" >&2
    fi
    return "$status"
}

case "${1:-}" in
    install) install ;;
    start) start "${2:?usage: cluster.sh start DIR}" ;;
    stop) stop "${2:?usage: cluster.sh stop DIR}" ;;
    run) shift; [ $# -gt 0 ] || { echo "usage: cluster.sh run COMMAND..." >&2; exit 2; }; run "$@" ;;
    *) echo "usage: cluster.sh install | start DIR | stop DIR | run COMMAND..." >&2; exit 2 ;;
esac
