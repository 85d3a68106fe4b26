#!/bin/sh
# deploy/slurm/start.sh DIR - starts a one-node Slurm cluster on this machine
# (Debian 12, no systemd needed; the packages: deploy/install-deps.sh), with
# its configuration, state and logs under DIR:
#
#   deploy/slurm/start.sh /tmp/cluster && export SLURM_CONF=/tmp/cluster/slurm.conf
#   srun -N1 -n1 hostname ...
#   deploy/slurm/stop.sh /tmp/cluster
#
# One partition, "debug", with this machine's CPUs and 80% of its memory.
# Ready when the node is idle and `srun true` runs (1-2 s).  The daemons'
# pids are in DIR/pids (munged only when this script started it: one munged
# serves every cluster on the machine).  Exit 1, the logs' tails on stderr,
# when the cluster does not come up within 60 s.
set -eu
[ $# -eq 1 ] || { echo "usage: deploy/slurm/start.sh DIR" >&2; exit 2; }
mkdir -p "$1"
DIR=$(cd "$1" && pwd)
mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
: > "$DIR/pids"
CPUS=$(nproc)
MEM=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.8 }' /proc/meminfo)

cat > "$DIR/slurm.conf" <<CONF
ClusterName=graft
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MailProg=/bin/true
MinJobAge=3600
KillWait=5
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 NodeHostname=localhost CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$DIR/slurm.conf"

fail() {
	echo "deploy/slurm/start.sh: $1" >&2
	for f in "$DIR"/log/*.log; do [ -f "$f" ] && { echo "== $f" >&2; tail -5 "$f" >&2; }; done
	"$(dirname "$0")/stop.sh" "$DIR" || true
	exit 1
}

# munged: /run/munge does not exist without systemd; one munged serves all.
if ! munge -n 2>/dev/null | unmunge > /dev/null 2>&1; then
	mkdir -p /run/munge
	chown munge:munge /run/munge
	chmod 755 /run/munge
	if [ ! -s /etc/munge/munge.key ]; then
		dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null
		chown munge:munge /etc/munge/munge.key
		chmod 400 /etc/munge/munge.key
	fi
	setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged -F \
		> "$DIR/log/munged.log" 2>&1 &
	echo "munged $!" >> "$DIR/pids"
	for _ in $(seq 100); do
		munge -n 2>/dev/null | unmunge > /dev/null 2>&1 && break
		sleep 0.1
	done
	munge -n 2>/dev/null | unmunge > /dev/null 2>&1 || fail "munged did not start"
fi

slurmctld -D -i -f "$SLURM_CONF" > "$DIR/log/slurmctld.out" 2>&1 &
echo "slurmctld $!" >> "$DIR/pids"
slurmd -D -N localhost -f "$SLURM_CONF" > "$DIR/log/slurmd.out" 2>&1 &
echo "slurmd $!" >> "$DIR/pids"

for _ in $(seq 600); do
	[ "$(sinfo -h -n localhost -o %T 2>/dev/null)" = idle ] &&
		timeout 20 srun -N1 -n1 true 2> /dev/null && exit 0
	sleep 0.1
done
fail "the cluster did not come up within 60 s"
