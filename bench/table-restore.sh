#!/usr/bin/env bash
# Single-table restore from a block backup: a 100 MB table out of a 4 GiB disk that holds the data
# directories of a PostgreSQL 15 cluster and a MariaDB server (loop-mounted ext4, both running,
# both quiesced for one snapshot), against restoring the whole disk.
# Results: bench/results-table-restore.md
#
#   bench/table-restore.sh [DISK_MIB] [TABLE_MB]     (defaults 4096 and 100; run as root)
#
# The disk holds the cluster with the table, a second database and other files (a quarter of the
# disk each), so
# the table is a small part of what is on it. The backup is application-consistent (--freeze and
# --app); the restore loads the table into the same (live) server under the default new name.
# Reported: each phase as the plugin reports it, the total wall time (JVM start included), bytes and
# chunks fetched from the repository against the disk's data chunks, and a whole-disk restore.
set -euo pipefail
cd "$(dirname "$0")/.."
disk_mib="${1:-4096}"
table_mb="${2:-100}"
work="${BENCH_DIR:-/var/tmp}/granule-bench-table"
out=bench/results-table-restore.md
bin=/usr/lib/postgresql/15/bin
[ "$(id -u)" = 0 ] || { echo "run as root (loop mount, fsfreeze)" >&2; exit 2; }
cleanup() {
  set +e
  fsfreeze -u "$work/mnt" 2>/dev/null
  [ -d "$work/mnt/pgdata" ] && runuser -u postgres -- "$bin/pg_ctl" -D "$work/mnt/pgdata" -m immediate stop >/dev/null 2>&1
  [ -f "$work/my.pid" ] && kill "$(cat "$work/my.pid")" 2>/dev/null && sleep 3
  mountpoint -q "$work/mnt" && umount "$work/mnt"
  [ -n "${dev:-}" ] && losetup -d "$dev"
  rm -rf "$work"
}
trap cleanup EXIT
rm -rf "$work"; mkdir -p "$work/mnt" "$work/sock"
chmod 755 "$work"
truncate -s "${disk_mib}M" "$work/disk.img"
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$work/disk.img"
dev=$(losetup -f --show "$work/disk.img")
mount "$dev" "$work/mnt"
mkdir -p "$work/mnt/pgdata" "$work/mnt/other"
quarter=$(( disk_mib / 4 ))
for i in $(seq 1 $(( quarter / 64 ))); do head -c 64M /dev/urandom > "$work/mnt/other/f$i.bin"; done
touch "$work/pg.log"
chown postgres:postgres "$work/mnt/pgdata" "$work/sock" "$work/pg.log"
runuser -u postgres -- "$bin/initdb" -D "$work/mnt/pgdata" -U bench --auth-local=trust --auth-host=trust >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
runuser -u postgres -- "$bin/pg_ctl" -D "$work/mnt/pgdata" -l "$work/pg.log" -w \
  -o "-p $port -k $work/sock -c listen_addresses=127.0.0.1" start >/dev/null
psql() { "$bin/psql" -X -q -h 127.0.0.1 -p "$port" -U bench "$@"; }
psql -d postgres -c "CREATE DATABASE shop" -c "CREATE DATABASE other"
# ~TABLE_MB of rows of ~250 bytes with a primary key, and a quarter of the disk in another database
rows=$(( table_mb * 1000000 / 280 ))
psql -d shop -c "CREATE TABLE orders (id bigint PRIMARY KEY, customer int, payload text, note text)" \
  -c "INSERT INTO orders SELECT g, g % 1000, md5(g::text), repeat(md5((g*7)::text), 6) FROM generate_series(1, $rows) g" \
  -c "ANALYZE orders"
psql -d other -c "CREATE TABLE big AS SELECT g AS id, repeat(md5(g::text), 30) AS pad FROM generate_series(1, $(( quarter * 1000 ))) g"
table_bytes=$(psql -d shop -At -c "SELECT pg_total_relation_size('orders')")

# MariaDB on the same disk, the same table shape and size
mkdir -p "$work/mnt/mysql"
mariadb-install-db --no-defaults --user=root --datadir="$work/mnt/mysql" \
  --auth-root-authentication-method=normal --skip-test-db > "$work/my-install.log" 2>&1
myport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/my.cnf" <<CNF
[mysqld]
datadir=$work/mnt/mysql
port=$myport
bind-address=127.0.0.1
socket=$work/my.sock
pid-file=$work/my.pid
log-error=$work/my.err
log-bin=$work/mnt/mysql/mysql-bin
server-id=1
innodb-buffer-pool-size=256M
CNF
/usr/sbin/mariadbd --defaults-file="$work/my.cnf" --user=root > /dev/null 2>&1 &
for _ in $(seq 100); do mariadb -h 127.0.0.1 -P "$myport" -u root -e "SELECT 1" > /dev/null 2>&1 && break; sleep 0.2; done
my() { mariadb -h 127.0.0.1 -P "$myport" -u root "$@"; }
my -e "CREATE DATABASE shop; CREATE TABLE shop.orders (id bigint PRIMARY KEY, customer int, payload text, note text) ENGINE=InnoDB"
my shop -e "INSERT INTO shop.orders SELECT seq, seq % 1000, md5(seq), repeat(md5(seq*7), 6) FROM seq_1_to_$rows"
my -e "ANALYZE TABLE shop.orders" > /dev/null
my_bytes=$(my -N -e "SELECT data_length + index_length FROM information_schema.tables WHERE table_schema='shop' AND table_name='orders'")
sync

# page cache warm for every backup (as in the other benchmarks): compare the software, not the disk
cat "$work/disk.img" > /dev/null
export GRANULE_PASSWORD="${GRANULE_PASSWORD:-bench}"
repo="$work/repo"
bin/granule init --repo "$repo" >/dev/null
t0=$(date +%s%N)
bin/granule backup --repo "$repo" --disk db="$dev" --freeze "$work/mnt" --app "postgres://bench@127.0.0.1:$port/shop" --app "mysql://root@127.0.0.1:$myport/" --no-progress > "$work/backup.txt"
t1=$(date +%s%N)
backup_ms=$(( (t1 - t0) / 1000000 ))
# the same device without applications or freeze, into a second repository, for comparison
bin/granule init --repo "$work/repo-plain" >/dev/null
t0=$(date +%s%N)
bin/granule backup --repo "$work/repo-plain" --disk db="$dev" --no-progress > /dev/null
t1=$(date +%s%N)
plain_ms=$(( (t1 - t0) / 1000000 ))
rm -rf "$work/repo-plain"

t0=$(date +%s%N)
bin/granule restore table latest postgres:shop/public.orders --to "postgres://bench@127.0.0.1:$port/shop" --repo "$repo" --json > "$work/restore.json" 2> "$work/restore.err"
t1=$(date +%s%N)
table_ms=$(( (t1 - t0) / 1000000 ))
j() { python3 -c "import json; d=json.load(open('$work/restore.json')); print($1)"; }
restored_as=$(j "d['restoredAs']")
[ "$(psql -d shop -At -c "SELECT count(*) FROM $restored_as")" = "$rows" ] || { echo "row count differs" >&2; exit 1; }
phases=$(j "', '.join('%s %.2f s' % (k, v) for k, v in d['phases'].items())")
fetched=$(j "d['bytesFetched']"); chunks=$(j "d['chunksFetched']"); data_chunks=$(j "d['diskDataChunks']")

t0=$(date +%s%N)
bin/granule restore table latest mysql:shop.orders --to "mysql://root@127.0.0.1:$myport/" --repo "$repo" --json > "$work/restore.json" 2> "$work/restore.err"
t1=$(date +%s%N)
my_ms=$(( (t1 - t0) / 1000000 ))
my_as=$(j "d['restoredAs']")
[ "$(my -N -e "SELECT count(*) FROM $my_as")" = "$rows" ] || { echo "MariaDB row count differs" >&2; exit 1; }
my_phases=$(j "', '.join('%s %.2f s' % (k, v) for k, v in d['phases'].items())")
my_fetched=$(j "d['bytesFetched']"); my_chunks=$(j "d['chunksFetched']")
my_notes=$(j "'; '.join(d['notes'])")

t0=$(date +%s%N)
bin/granule restore disk latest --repo "$repo" --to "$work/disk-restored.img" >/dev/null
t1=$(date +%s%N)
disk_ms=$(( (t1 - t0) / 1000000 ))
rm -f "$work/disk-restored.img"

{
  echo "# Single-table restore"
  echo
  echo "Command: \`bench/table-restore.sh $disk_mib $table_mb\` on $(date -u +%Y-%m-%d), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(java -version 2>&1 | head -1), PostgreSQL $("$bin/postgres" --version | awk '{print $3}')."
  echo "Disk: ${disk_mib} MiB ext4 (loop device) holding a PostgreSQL 15 cluster (table \`shop.public.orders\`:"
  echo "$rows rows, $(( table_bytes / 1048576 )) MiB with its index; database \`other\` ~$(( disk_mib / 4 )) MiB), a MariaDB $(my -N -e 'SELECT version()' | cut -d- -f1)"
  echo "server (InnoDB \`shop.orders\`, the same rows, $(( my_bytes / 1048576 )) MiB) and $(( disk_mib / 4 )) MiB of other files."
  echo "Backup: one snapshot, \`--freeze\` + \`--app postgres://…\` + \`--app mysql://…\` (both application-consistent),"
  echo "encrypted repository, default chunk size: ${backup_ms} ms (the same device without apps and freeze: ${plain_ms} ms)."
  echo "Each table restored into its live server under the default new name. Times are wall clock, JVM start included;"
  echo "the page cache holds the disk image (warm), as in the other benchmarks."
  echo
  echo "| restore | total | phases | fetched from the repository | chunks fetched / disk data chunks |"
  echo "|---|---:|---|---:|---:|"
  echo "| PostgreSQL table \`restore table\` | ${table_ms} ms | $phases | $(( fetched / 1048576 )) MiB of ${disk_mib} MiB disk | $chunks / $data_chunks ($(awk -v f="$chunks" -v t="$data_chunks" 'BEGIN{printf "%.1f%%", 100*f/t}')) |"
  echo "| MariaDB table \`restore table\` | ${my_ms} ms | $my_phases | $(( my_fetched / 1048576 )) MiB of ${disk_mib} MiB disk | $my_chunks / $data_chunks ($(awk -v f="$my_chunks" -v t="$data_chunks" 'BEGIN{printf "%.1f%%", 100*f/t}')) |"
  echo "| whole disk \`restore disk\` | ${disk_ms} ms | | all data chunks | $data_chunks / $data_chunks (100%) |"
  echo
  echo "MariaDB notes: ${my_notes:-none}"
  echo
  echo "The backup's application lines (step times; held = how long each server stayed quiesced):"
  echo
  echo '```'
  grep '^  app ' "$work/backup.txt"
  echo '```'
} > "$out"
cat "$out"
