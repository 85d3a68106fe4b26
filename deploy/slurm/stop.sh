#!/bin/sh
# deploy/slurm/stop.sh DIR - stops the cluster deploy/slurm/start.sh DIR
# started: cancels every job, then TERM to its daemons, KILL after 10 s.
# Safe to run twice, or on a cluster that did not come up.
set -u
[ $# -eq 1 ] || { echo "usage: deploy/slurm/stop.sh DIR" >&2; exit 2; }
DIR=$1
[ -f "$DIR/pids" ] || exit 0
export SLURM_CONF="$DIR/slurm.conf"
timeout 10 scancel --full -u "$(id -un)" 2>/dev/null || true
pids=$(awk '{ print $2 }' "$DIR/pids")
[ -n "$pids" ] || exit 0
# Slurmd first, then slurmctld, munged last (the other two use it).
for p in $(echo "$pids" | sed '1!G;h;$!d'); do kill -TERM "$p" 2>/dev/null; done
for _ in $(seq 100); do
	alive=""
	for p in $pids; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
	[ -z "$alive" ] && break
	sleep 0.1
done
for p in $pids; do kill -KILL "$p" 2>/dev/null; done
# The steps slurmd started (slurmstepd and their tasks) end with it: every
# slurmstepd on the machine, which is right for the one-node cluster this is.
pkill -KILL -f "slurmstepd: \[" 2>/dev/null
: > "$DIR/pids"
exit 0
