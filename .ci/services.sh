#!/usr/bin/env bash
# Real services for the cluster tests: PostgreSQL 15 and a single-node Slurm 22.05 (munge, slurmdbd on
# MariaDB, slurmctld, slurmd), on unix sockets and 127.0.0.1 only, in one scratch folder.
#
#   .ci/services.sh start   install what is missing (apt, as root), start everything, print the env
#   .ci/services.sh env     print the env of running services (eval "$(.ci/services.sh env)")
#   .ci/services.sh stop    stop everything by pid (no pkill), wait until each process is gone
#   .ci/services.sh status  one line per daemon
#   .ci/services.sh pg-restart  restart PostgreSQL (fast shutdown: every connection is cut), for tests
#
# There is no systemd on the CI machines and Debian's policy-rc.d refuses service starts: every daemon
# is started here, with its pid file in $IMACSR_SERVICES_DIR (default /tmp/imacsr-services), and
# stopped by that pid. Ports (override with IMACSR_SLURM_PORT_BASE): slurmctld BASE, slurmd BASE+1,
# slurmdbd BASE+2, all bound to 127.0.0.1.
set -euo pipefail

D="${IMACSR_SERVICES_DIR:-/tmp/imacsr-services}"
PORT_BASE="${IMACSR_SLURM_PORT_BASE:-16817}"
CTLD_PORT=$PORT_BASE
SLURMD_PORT=$((PORT_BASE + 1))
DBD_PORT=$((PORT_BASE + 2))
NODE="$(hostname -s)"
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
SLURM_PKGS=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)

log() { echo "services: $*" >&2; }
die() { echo "services: $*" >&2; exit 1; }

as_user() {  # as_user USER CMD...: run CMD as USER (root only), else as ourselves
    local user=$1; shift
    if [ "$(id -u)" = 0 ]; then runuser -u "$user" -- "$@"; else "$@"; fi
}

alive() {  # alive PIDFILE: the pid in it is a live (non-zombie) process
    local f=$1 pid state
    [ -s "$f" ] || return 1
    pid=$(head -n 1 "$f" 2>/dev/null | tr -dc 0-9)  # the daemon may remove it as we read
    [ -n "$pid" ] && [ -r "/proc/$pid/status" ] || return 1
    state=$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo Z)
    [ "$state" != Z ]
}

wait_for() {  # wait_for SECONDS WHAT CMD...: retry CMD every 0.1 s until it succeeds
    local secs=$1 what=$2; shift 2
    local n=$((secs * 10))
    while ! "$@" >/dev/null 2>&1; do
        n=$((n - 1))
        [ $n -gt 0 ] || { log "timed out waiting for $what"; return 1; }
        sleep 0.1
    done
}

install_missing() {
    local need=()
    [ -n "$PG_BIN" ] || need+=(postgresql)
    for p in "${SLURM_PKGS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
    done
    [ ${#need[@]} -eq 0 ] && return 0
    [ "$(id -u)" = 0 ] || die "missing packages ${need[*]}; install them as root: apt-get install -y ${need[*]}"
    log "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >"$D/apt.log" 2>&1 || {
        apt-get update -q >>"$D/apt.log" 2>&1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >>"$D/apt.log" 2>&1
    } || die "apt-get install failed (see $D/apt.log)"
    PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
}

# ---- PostgreSQL ----------------------------------------------------------------------------------
start_pg() {
    local pgdata="$D/pg/data" sock="$D/pg/sock"
    alive "$pgdata/postmaster.pid" && return 0
    mkdir -p "$D/pg" "$sock"
    if [ "$(id -u)" = 0 ]; then chown -R postgres: "$D/pg"; fi
    if [ ! -f "$pgdata/PG_VERSION" ]; then
        as_user postgres "$PG_BIN/initdb" -D "$pgdata" -U postgres -A trust -E UTF8 --no-sync >"$D/pg/initdb.log" 2>&1 \
            || die "initdb failed (see $D/pg/initdb.log)"
    fi
    as_user postgres "$PG_BIN/pg_ctl" -D "$pgdata" -l "$D/pg/server.log" -w -t 30 \
        -o "-c listen_addresses='' -c unix_socket_directories='$sock' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        start >/dev/null || die "PostgreSQL did not start (see $D/pg/server.log)"
}

pg_url() { echo "postgresql+psycopg://postgres@/postgres?host=$D/pg/sock"; }

# ---- munge, MariaDB, slurmdbd, slurmctld, slurmd --------------------------------------------------
start_munge() {
    mkdir -p "$D/munge"
    alive "$D/munge/munged.pid" && return 0
    local key=/etc/munge/munge.key
    if [ ! -s "$key" ]; then
        [ "$(id -u)" = 0 ] || die "no $key (install munge as root)"
        mkdir -p /etc/munge
        dd if=/dev/urandom bs=1 count=1024 of="$key" status=none
    fi
    local user=root
    if [ "$(id -u)" = 0 ] && id munge >/dev/null 2>&1; then user=munge; fi
    if [ "$(id -u)" = 0 ]; then chown "$user": "$D/munge" "$key"; chmod 0400 "$key"; chmod 0700 "$D/munge"; fi
    as_user "$user" /usr/sbin/munged --key-file="$key" --socket="$D/munge/munge.socket" \
        --pid-file="$D/munge/munged.pid" --log-file="$D/munge/munged.log" --seed-file="$D/munge/munged.seed" \
        --force >/dev/null </dev/null || die "munged did not start (see $D/munge/munged.log)"
    wait_for 10 munged test -S "$D/munge/munge.socket"
}

start_mariadb() {
    local m="$D/mysql"
    alive "$m/mariadbd.pid" && return 0
    mkdir -p "$m"
    local user=mysql
    id mysql >/dev/null 2>&1 && [ "$(id -u)" = 0 ] || user=$(id -un)
    [ "$(id -u)" = 0 ] && chown -R "$user": "$m"
    if [ ! -d "$m/data/mysql" ]; then
        mariadb-install-db --no-defaults --user="$user" --datadir="$m/data" --auth-root-authentication-method=normal \
            --skip-test-db >"$m/install.log" 2>&1 || die "mariadb-install-db failed (see $m/install.log)"
    fi
    # --no-defaults: nothing from /etc/mysql (its socket, port and log paths are not ours).
    # Every descriptor of the background subshell goes to /dev/null: `eval "$(services.sh start)"` reads our
    # stdout to its end, and a daemon that kept it open would hang the caller forever.
    (cd "$m" && exec setsid /usr/sbin/mariadbd --no-defaults --user="$user" --datadir="$m/data" --socket="$m/mysqld.sock" \
        --skip-networking --pid-file="$m/mariadbd.pid" --log-error="$m/error.log" --innodb-flush-log-at-trx-commit=0 \
        --skip-log-bin) </dev/null >/dev/null 2>&1 &
    wait_for 30 MariaDB test -S "$m/mysqld.sock"
    wait_for 30 "MariaDB pid file" test -s "$m/mariadbd.pid"
    mariadb --no-defaults --socket="$m/mysqld.sock" -uroot -e \
        "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;" \
        || die "MariaDB: cannot create the slurm user (see $m/error.log)"
}

write_slurm_conf() {
    local s="$D/slurm"
    mkdir -p "$s/state" "$s/spool" "$s/log"
    local cpus mem
    cpus=$(nproc)
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
    # Two fake GPUs: character devices (mknod c 1 3, like /dev/null) so that --gres=gpu:N sets
    # CUDA_VISIBLE_DEVICES in the job, as on a real GPU node.
    local gres="" gresconf=""
    if [ "$(id -u)" = 0 ]; then
        for i in 0 1; do [ -e "$s/fakegpu$i" ] || mknod "$s/fakegpu$i" c 1 3; done
        gres="Gres=gpu:2"
        gresconf="GresTypes=gpu"
        printf 'NodeName=%s Name=gpu File=%s/fakegpu[0-1]\n' "$NODE" "$s" >"$s/gres.conf"
    fi
    cat >"$s/slurm.conf" <<EOF
ClusterName=imacsr
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$D/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$s/state
SlurmdSpoolDir=$s/spool
SlurmctldPidFile=$s/slurmctld.pid
SlurmdPidFile=$s/slurmd.pid
SlurmctldLogFile=$s/log/slurmctld.log
SlurmdLogFile=$s/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
MinJobAge=300
ReturnToService=2
KillWait=5
MessageTimeout=10
InactiveLimit=0
JobRequeue=1
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
AccountingStoragePass=$D/munge/munge.socket
$gresconf
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem $gres State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
    cat >"$s/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$D/munge/munge.socket
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$s/slurmdbd.pid
LogFile=$s/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
    chmod 0600 "$s/slurmdbd.conf"
    # A cgroup.conf is not read with proctrack/linuxproc and task/none.
}

start_slurm() {
    local s="$D/slurm"
    write_slurm_conf
    export SLURM_CONF="$s/slurm.conf"
    if ! alive "$s/slurmdbd.pid"; then
        # slurmdbd reaches MariaDB through libmariadb, which honours MYSQL_UNIX_PORT for "localhost".
        MYSQL_UNIX_PORT="$D/mysql/mysqld.sock" SLURM_CONF="$s/slurm.conf" \
            /usr/sbin/slurmdbd >/dev/null </dev/null || die "slurmdbd did not start (see $s/log/slurmdbd.log)"
        wait_for 30 slurmdbd bash -c "exec 3<>/dev/tcp/127.0.0.1/$DBD_PORT"
    fi
    if ! alive "$s/slurmctld.pid"; then
        /usr/sbin/slurmctld -f "$s/slurm.conf" >/dev/null </dev/null || die "slurmctld did not start (see $s/log/slurmctld.log)"
    fi
    if ! alive "$s/slurmd.pid"; then
        /usr/sbin/slurmd -f "$s/slurm.conf" -N "$NODE" >/dev/null </dev/null || die "slurmd did not start (see $s/log/slurmd.log)"
    fi
    wait_for 30 "the node to be idle" bash -c "sinfo -h -n '$NODE' -o %T | grep -Eq '^(idle|mixed|allocated)'"
    wait_for 30 "sacct" sacct -n -X -S now
}

print_env() {
    echo "export IMACSR_TEST_PG_URL='$(pg_url)'"
    echo "export SLURM_CONF='$D/slurm/slurm.conf'"
    echo "export IMACSR_TEST_SLURM=1"
    echo "export IMACSR_SERVICES_DIR='$D'"
}

# ---- stop by pid ------------------------------------------------------------------------------------
stop_pidfile() {  # stop_pidfile NAME PIDFILE
    local name=$1 f=$2 pid n
    alive "$f" || return 0
    pid=$(head -n 1 "$f" | tr -dc 0-9)
    kill -TERM "$pid" 2>/dev/null || true
    n=150
    while alive "$f" && [ $n -gt 0 ]; do sleep 0.1; n=$((n - 1)); done
    if alive "$f"; then
        log "$name (pid $pid) ignored SIGTERM for 15 s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        n=50
        while alive "$f" && [ $n -gt 0 ]; do sleep 0.1; n=$((n - 1)); done
    fi
}

stop_all() {
    local s="$D/slurm"
    # Jobs first, so no step is left for the next start; then the daemons in reverse start order.
    if alive "$s/slurmctld.pid"; then SLURM_CONF="$s/slurm.conf" timeout 10 scancel --full -u "$(id -un)" 2>/dev/null || true; fi
    stop_pidfile slurmd "$s/slurmd.pid"
    stop_pidfile slurmctld "$s/slurmctld.pid"
    stop_pidfile slurmdbd "$s/slurmdbd.pid"
    stop_pidfile mariadbd "$D/mysql/mariadbd.pid"
    stop_pidfile munged "$D/munge/munged.pid"
    if alive "$D/pg/data/postmaster.pid"; then
        as_user postgres "$PG_BIN/pg_ctl" -D "$D/pg/data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
        stop_pidfile postgres "$D/pg/data/postmaster.pid"
    fi
}

status_all() {
    local s="$D/slurm"
    for pair in "postgres:$D/pg/data/postmaster.pid" "munged:$D/munge/munged.pid" "mariadbd:$D/mysql/mariadbd.pid" \
                "slurmdbd:$s/slurmdbd.pid" "slurmctld:$s/slurmctld.pid" "slurmd:$s/slurmd.pid"; do
        if alive "${pair#*:}"; then echo "${pair%%:*}: up (pid $(head -n 1 "${pair#*:}" 2>/dev/null))"; else echo "${pair%%:*}: down"; fi
    done
}

case "${1:-}" in
    start)
        mkdir -p "$D"
        install_missing
        t0=$(date +%s.%N)
        start_pg
        start_munge
        start_mariadb
        start_slurm
        log "up in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s (state in $D)"
        print_env
        ;;
    env) print_env ;;
    pg-restart)
        as_user postgres "$PG_BIN/pg_ctl" -D "$D/pg/data" -m fast -w -t 30 stop >/dev/null
        start_pg
        ;;
    stop) stop_all ;;
    status) status_all ;;
    *) echo "usage: $0 start|stop|env|status" >&2; exit 2 ;;
esac
