#!/usr/bin/env bash
# hpcopt on one machine: start the run, or continue it from its run file.
#
#   jobscripts/workstation.sh -n 8 CONFIG [-o RUN]
#
# Runs `mpiexec -n 8 hpcopt run CONFIG -o RUN --continue` with the venv's mpiexec, so the
# same command starts a run, continues an interrupted one, and does nothing for a finished
# one. Ctrl-C (or SIGTERM/SIGUSR1 to this script) stops the run cleanly: hpcopt finishes
# the evaluations in flight (at most checkpoint.stop_within s), writes the run file and
# exits 3; a second Ctrl-C kills it at once (completed evaluations are kept in RUN.journal).
# Exit status: hpcopt's (0 finished, 2 bad input, 3 interrupted: run the same command again).
#
# VENV: the virtual environment with hpcopt and mpiexec (default: this repository's .venv).
VENV=${VENV:-$(cd "$(dirname "$0")/.." && pwd)/.venv}

usage() {
    echo "usage: ${0##*/} -n RANKS CONFIG [-o RUN]" >&2
    exit 2
}
ranks="" config="" output=()
while [ $# -gt 0 ]; do
    case $1 in
        -n) [ $# -ge 2 ] || usage; ranks=$2; shift 2 ;;
        -o) [ $# -ge 2 ] || usage; output=(-o "$2"); shift 2 ;;
        -h|--help) usage ;;
        -*) usage ;;
        *) [ -z "$config" ] || usage; config=$1; shift ;;
    esac
done
[[ $ranks =~ ^[1-9][0-9]*$ ]] && [ -n "$config" ] || usage
if [ ! -x "$VENV/bin/hpcopt" ] || [ ! -x "$VENV/bin/mpiexec" ]; then
    echo "${0##*/}: no hpcopt and mpiexec in $VENV (make install, or set VENV)" >&2
    exit 2
fi

# mpiexec runs in its own session: a Ctrl-C reaches only this script, which passes it on
# as SIGTERM (a clean stop) instead of interrupting every rank with SIGINT.
launcher="" stops=0
stop() {
    stops=$((stops + 1))
    if [ "$stops" -eq 1 ]; then
        echo "${0##*/}: stopping: hpcopt finishes the evaluations in flight and writes the run file" \
             "(Ctrl-C again to kill it now)" >&2
        kill -s "${1:-TERM}" "$launcher" 2>/dev/null
    else
        kill -s KILL -- "-$launcher" 2>/dev/null
    fi
}
trap 'stop TERM' INT TERM
trap 'stop USR1' USR1
setsid "$VENV/bin/mpiexec" -n "$ranks" "$VENV/bin/hpcopt" run "$config" "${output[@]}" --continue &
launcher=$!
while kill -0 "$launcher" 2>/dev/null; do wait "$launcher"; done  # a trapped signal ends a wait early
wait "$launcher"
status=$?
if [ "$status" -eq 3 ]; then
    echo "${0##*/}: interrupted; the run file is complete up to the last generation." \
         "Run the same command again to continue." >&2
fi
exit "$status"
