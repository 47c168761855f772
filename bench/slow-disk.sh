#!/usr/bin/env bash
# Slow-disk emulation: bench/e2e.sh, Granule against restic and borg side by side, on a file system
# whose writes are capped at RATE MiB/s, for every tool alike.
#
#   bench/slow-disk.sh [RATE_MIB_S] [SIZE_MIB] [ROUNDS]   (default 473: the AMD EPYC machine's
#                                                          fio rate of 2026-12-03; 4096; 3)
#   SLOW_CPU=avx2 bench/slow-disk.sh …   also hides AVX-512 (and VAES/VPCLMULQDQ) from OpenSSL
#                                        (OPENSSL_ia32cap) and from the JVM (-XX:UseAVX=2), as on
#                                        that machine; for BLAKE3 too, point GRANULE_JAR at a build
#                                        without it: ./mvnw -q package -DskipTests
#                                        -Dnative.cc="cc -DBLAKE3_NO_AVX512" (in a clone)
#
# How: an ext4 file system in a sparse file on /var/tmp (SLOW_BACKING), attached as a loop device
# with direct I/O (no second page cache under it), a cgroup v1 blkio write throttle on that loop
# device in the root cgroup. The root cgroup is where the kernel's flusher threads run, so the cap
# holds for page-cache write-back (restic, borg, cp) as much as for O_DIRECT writes (Granule);
# only this benchmark writes to that device. Reads are not capped (the AMD machine's read rate was
# not measured). Needs root, losetup, mkfs.ext4 and /sys/fs/cgroup/blkio, as on these VMs.
# Results go to bench/results-slow-disk.md: e2e.sh's tables, then how the disk was capped.
set -euo pipefail
cd "$(dirname "$0")/.."
rate_mib="${1:-473}"
size_mib="${2:-4096}"
rounds="${3:-3}"
out=bench/results-slow-disk.md
backing="${SLOW_BACKING:-/var/tmp/granule-slow-disk.img}"
mnt=/var/tmp/granule-slow-disk
throttle=/sys/fs/cgroup/blkio/blkio.throttle.write_bps_device
[ "$(id -u)" = 0 ] && [ -w "$throttle" ] || { echo "needs root and cgroup v1 blkio ($throttle)" >&2; exit 1; }
for t in losetup mkfs.ext4; do
  command -v "$t" > /dev/null || { echo "missing $t" >&2; exit 1; }
done

dev=""
cleanup() {
  if [ -n "$dev" ]; then
    echo "$(lsblk -dno MAJ:MIN "$dev" | tr -d ' ') 0" > "$throttle" 2>/dev/null || true
    umount "$mnt" 2>/dev/null || true
    losetup -d "$dev" 2>/dev/null || true
  fi
  rmdir "$mnt" 2>/dev/null || true
  rm -f "$backing"
}
trap cleanup EXIT
# room for two images, six repositories and a restored image at a time (e2e.sh deletes each tool's
# repository after its turn): 10x the image, sparse
truncate -s "$((size_mib * 10))M" "$backing"
mkfs.ext4 -q -F "$backing"
dev=$(losetup --direct-io=on -f --show "$backing")
mkdir -p "$mnt"
mount "$dev" "$mnt"
majmin=$(lsblk -dno MAJ:MIN "$dev" | tr -d ' ')
echo "$majmin $((rate_mib * 1048576))" > "$throttle"

cpu_note="this machine's CPU as it is"
if [ "${SLOW_CPU:-}" = avx2 ]; then
  # OpenSSL's capability vector, second word = CPUID(7).EBX | CPUID(7).ECX << 32: clear AVX512F,
  # DQ, IFMA, CD, BW, VL (EBX bits 16, 17, 21, 28, 30, 31) and VAES, VPCLMULQDQ (ECX bits 9, 10)
  export OPENSSL_ia32cap=":~0x600D0230000"
  export GRANULE_JAVA_OPTS="${GRANULE_JAVA_OPTS:-} -XX:UseAVX=2"
  cpu_note="AVX-512, VAES and VPCLMULQDQ hidden from OpenSSL (OPENSSL_ia32cap=$OPENSSL_ia32cap, every tool) and from Granule's JVM (-XX:UseAVX=2)"
  if [ -n "${GRANULE_JAR:-}" ]; then
    cpu_note="$cpu_note, Granule's BLAKE3 built without AVX-512 (GRANULE_JAR=$GRANULE_JAR)"
  else
    cpu_note="$cpu_note; Granule's BLAKE3 still uses AVX-512"
  fi
fi

BENCH_DIR="$mnt" E2E_OUT="$out" bench/e2e.sh "$size_mib" "$rounds"

{
  echo
  echo "## How the disk was capped"
  echo
  echo "Command: \`${SLOW_CPU:+SLOW_CPU=$SLOW_CPU }${GRANULE_JAR:+GRANULE_JAR=… }bench/slow-disk.sh $rate_mib $size_mib $rounds\`."
  echo "Every tool's files on an ext4 file system in a loop device (direct I/O to its backing file on"
  echo "$(df --output=source "$(dirname "$backing")" | tail -1)), its writes capped at $rate_mib MiB/s by a cgroup v1 blkio throttle on"
  echo "$majmin in the root cgroup: O_DIRECT writes and the page cache's write-back alike (the fio and"
  echo "cp + sync floors above ran under the same cap). Reads not capped. CPU: $cpu_note."
} >> "$out"
