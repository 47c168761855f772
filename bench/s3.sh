#!/usr/bin/env bash
# S3 benchmark: Granule on a local directory and on S3 (s3proxy on loopback), unencrypted and
# encrypted, in the same run.
#
#   bench/s3.sh [SIZE_MIB]       (default 4096: a 4 GiB image; results go to bench/results-s3.md)
#
# Needs: runtime/target/granule.jar and the s3proxy jar (./mvnw -q package -DskipTests copies it
# to engine/target/s3proxy/; else it is taken from ~/.m2 or fetched with dependency:get), GNU time
# and curl. Work files go to $BENCH_DIR (default /var/tmp)/granule-bench-s3. S3PROXY_TRANSIENT=0
# leaves out the in-memory s3proxy rows (they hold the repository, a fifth of this image, in
# s3proxy's heap, given half the image size + 1 GiB).
#
# For each configuration: init, full backup of a VM-like raw image, incremental backup after 1% of
# its 4 KiB blocks changed (bench/GenImage.java, as in bench/e2e.sh), full restore of the changed
# image (checked with cmp). Each S3 configuration gets its own fresh s3proxy (started before, and
# stopped after, its timings) on a free loopback port, so its CPU time can be read from
# /proc/PID/stat per step. The page cache is warm for everyone.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib="${1:-4096}"
work="${BENCH_DIR:-/var/tmp}/granule-bench-s3"
out="bench/results-s3.md"
transient="${S3PROXY_TRANSIENT:-1}"
s3_pid=
cleanup() {
  if [ -n "$s3_pid" ]; then kill "$s3_pid" 2>/dev/null || true; wait "$s3_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ -f runtime/target/granule.jar ] || { echo "build first: ./mvnw -q package -DskipTests" >&2; exit 1; }
s3jar=engine/target/s3proxy/s3proxy.jar
if [ ! -f "$s3jar" ]; then
  s3jar="$HOME/.m2/repository/org/gaul/s3proxy/2.6.0/s3proxy-2.6.0-jar-with-dependencies.jar"
  [ -f "$s3jar" ] || ./mvnw -B -q dependency:get -Dartifact=org.gaul:s3proxy:2.6.0:jar:jar-with-dependencies
fi
load="$(cut -d' ' -f1-3 /proc/loadavg)"

rm -rf "$work"; mkdir -p "$work"
export GRANULE_PASSWORD=bench GRANULE_JAVA_OPTS="${GRANULE_JAVA_OPTS:-}"
export AWS_ACCESS_KEY_ID=bench-access AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1
bucket=bench
tck=$(getconf CLK_TCK)

img="$work/vm-base.img"
java bench/GenImage.java create "$img" "$size_mib" 42 >/dev/null
changed_bytes=$(cp --sparse=always "$img" "$work/vm2.img" && java bench/GenImage.java change "$work/vm2.img" 1 7)
cat "$work/vm-base.img" "$work/vm2.img" > /dev/null

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# s3 CURL_ARGS...: a request signed with AWS SigV4 (s3proxy checks signatures)
# (curl signs the URL as given: keep query parameters sorted and percent-encoded)
s3() {
  curl -sS --fail --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
    -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" "$@"
}
urlenc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }

# s3_start PROVIDER: starts s3proxy storing in $work/s3data (filesystem-nio2) or in its heap
# (transient), creates the bucket; sets $s3_pid and $endpoint
s3_start() {
  local provider="$1" port; port=$(free_port)
  rm -rf "$work/s3data"; mkdir -p "$work/s3data"
  cat > "$work/s3proxy.properties" <<EOF
s3proxy.endpoint=http://127.0.0.1:$port
s3proxy.authorization=aws-v2-or-v4
s3proxy.identity=$AWS_ACCESS_KEY_ID
s3proxy.credential=$AWS_SECRET_ACCESS_KEY
jclouds.provider=$provider
jclouds.identity=$AWS_ACCESS_KEY_ID
jclouds.credential=$AWS_SECRET_ACCESS_KEY
jclouds.filesystem.basedir=$work/s3data
EOF
  local heap=512m
  [ "$provider" = transient ] && heap="$(( size_mib / 2 + 1024 ))m"
  java -Xmx"$heap" -jar "$s3jar" --properties "$work/s3proxy.properties" > "$work/s3proxy.log" 2>&1 &
  s3_pid=$!
  endpoint="http://127.0.0.1:$port"
  for _ in $(seq 600); do
    kill -0 "$s3_pid" 2>/dev/null || { cat "$work/s3proxy.log"; echo "s3proxy exited" >&2; exit 1; }
    s3 -o /dev/null -X PUT "$endpoint/$bucket" 2>/dev/null && return
    sleep 0.1
  done
  echo "s3proxy did not answer on port $port within 60 s" >&2; exit 1
}
s3_stop() { kill "$s3_pid"; wait "$s3_pid" 2>/dev/null || true; s3_pid=; }
# s3proxy's CPU time (user + system) in seconds so far
s3_cpu() { awk -v t="$tck" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / t }' "/proc/$s3_pid/stat"; }
# stored bytes: sum of file sizes (local) or of object sizes under the prefix (S3, paginated)
stored() {
  case "$1" in
    s3:*)
      local prefix="${1#s3:"$endpoint"/"$bucket"/}/" token= total=0 page
      while :; do
        page=$(s3 "$endpoint/$bucket?${token:+continuation-token=$(urlenc "$token")&}list-type=2&prefix=$(urlenc "$prefix")")
        total=$(( total + $(grep -o '<Size>[0-9]*</Size>' <<< "$page" | tr -dc '0-9\n' | awk '{s += $1} END {print s + 0}') ))
        grep -q '<IsTruncated>true</IsTruncated>' <<< "$page" || break
        token=$(sed -n 's:.*<NextContinuationToken>\([^<]*\)</NextContinuationToken>.*:\1:p' <<< "$page")
      done
      echo "$total" ;;
    *) find "$1" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}' ;;
  esac
}

# run CMD...: runs CMD under GNU time; sets $secs, $cpu (granule's user + system s), $rss_mib and,
# while s3proxy runs, $s3cpu (its CPU seconds during CMD)
run() {
  local log="$work/time.log" before=0
  sync  # no writeback left over from the images or an earlier step (the page cache stays warm)
  if [ -n "$s3_pid" ]; then before=$(s3_cpu); fi
  /usr/bin/time -f "%e %U %S %M" -o "$log" "$@" > "$work/cmd.log" 2>&1 \
    || { cat "$work/cmd.log"; exit 1; }
  local user sys rss_kib
  read -r secs user sys rss_kib < "$log"
  cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN {printf "%.1f", u + s}')
  rss_mib=$((rss_kib / 1024))
  s3cpu=-
  if [ -n "$s3_pid" ]; then s3cpu=$(awk -v a="$(s3_cpu)" -v b="$before" 'BEGIN {printf "%.1f", a - b}'); fi
}
mibs() { awk -v m="$size_mib" -v s="$1" 'BEGIN {printf "%.0f", m / s}'; }
mib() { awk -v b="$1" 'BEGIN {printf "%.0f", b / 1048576}'; }

declare -A T  # T[config/step] = seconds, for the cost-of-encryption rows
rows=
bench_config() {  # name key repo encrypted(0/1)
  local name="$1" key="$2" repo="$3" enc="$4"
  export XDG_CACHE_HOME="$work/cache-$key"
  rm -rf "$XDG_CACHE_HOME" "$work/restore.img"
  local plain=; [ "$enc" = 1 ] || plain=--insecure-no-encryption
  # a password given for an unencrypted repository is refused
  local g=(bin/granule); [ "$enc" = 1 ] || g=(env -u GRANULE_PASSWORD bin/granule)
  run "${g[@]}" init $plain --repo "$repo"
  local init_s=$secs
  run "${g[@]}" backup --repo "$repo" --disk vm="$work/vm-base.img" --no-progress
  local full_s=$secs full_cpu=$cpu full_s3=$s3cpu full_rss=$rss_mib
  local full_bytes; full_bytes=$(stored "$repo")
  run "${g[@]}" backup --repo "$repo" --disk vm="$work/vm2.img" --no-progress
  local inc_s=$secs inc_cpu=$cpu inc_s3=$s3cpu inc_rss=$rss_mib
  local inc_bytes; inc_bytes=$(( $(stored "$repo") - full_bytes ))
  run "${g[@]}" restore disk latest:vm --repo "$repo" --to "$work/restore.img"
  local res_s=$secs res_cpu=$cpu res_s3=$s3cpu res_rss=$rss_mib
  cmp -s "$work/restore.img" "$work/vm2.img" || { echo "$name: restored image differs" >&2; exit 1; }
  rm -f "$work/restore.img"
  local peak=$(( full_rss > inc_rss ? full_rss : inc_rss )); peak=$(( peak > res_rss ? peak : res_rss ))
  T[$key/full]=$full_s; T[$key/inc]=$inc_s; T[$key/res]=$res_s
  T[$key/cpu]=$(awk -v a="$full_cpu" -v b="$inc_cpu" -v c="$res_cpu" 'BEGIN {printf "%.1f", a + b + c}')
  local share=-
  [ "$full_s3" = - ] || share=$(awk -v g="${T[$key/cpu]}" -v a="$full_s3" -v b="$inc_s3" -v c="$res_s3" \
    'BEGIN {s = a + b + c; printf "%.0f%%", 100 * s / (s + g)}')
  rows+="| $name | $init_s | $full_s | $(mibs "$full_s") | $inc_s | $(mibs "$inc_s") | $res_s | $(mibs "$res_s") | $(mib "$full_bytes") | $(mib "$inc_bytes") | $peak |"$'\n'
  cpurows+="| $name | $full_cpu | $full_s3 | $inc_cpu | $inc_s3 | $res_cpu | $res_s3 | $share |"$'\n'
  echo "done: $name" >&2
}
cpurows=

bench_config "local, unencrypted" local-plain "$work/repo-plain" 0
rm -rf "$work/repo-plain"
bench_config "local, encrypted" local-enc "$work/repo-enc" 1
rm -rf "$work/repo-enc"
s3_start filesystem-nio2
bench_config "S3 (s3proxy, filesystem), unencrypted" s3-plain "s3:$endpoint/$bucket/plain" 0
s3_stop
s3_start filesystem-nio2
bench_config "S3 (s3proxy, filesystem), encrypted" s3-enc "s3:$endpoint/$bucket/enc" 1
s3_stop
if [ "$transient" = 1 ]; then
  s3_start transient
  bench_config "S3 (s3proxy, in memory), unencrypted" mem-plain "s3:$endpoint/$bucket/plain" 0
  s3_stop
  s3_start transient
  bench_config "S3 (s3proxy, in memory), encrypted" mem-enc "s3:$endpoint/$bucket/enc" 1
  s3_stop
fi

# cost of encryption: encrypted time / unencrypted time, per backend and step
cost() { awk -v e="${T[$2/$3]}" -v p="${T[$1/$3]}" 'BEGIN {printf "%+.2f s (%.2fx)", e - p, e / p}'; }
costrow() { echo "| $1 | $(cost "$2" "$3" full) | $(cost "$2" "$3" inc) | $(cost "$2" "$3" res) | $(cost "$2" "$3" cpu) |"; }

{
  echo "# S3 benchmark: local against S3, unencrypted against encrypted"
  echo
  echo "Command: \`bench/s3.sh $size_mib\` on $(date -u +%Y-%m-%d), $(nproc) cores, $(uname -r), $(java -version 2>&1 | head -1);"
  echo "load average before the run: $load (other work shares this machine: mind the noise)."
  echo "Image: ${size_mib} MiB raw, VM-like (bench/GenImage.java, as in bench/e2e.sh); the incremental"
  echo "changes 1% of its 4 KiB blocks in clusters: $(mib "$changed_bytes") MiB. S3 is s3proxy 2.6.0 on loopback"
  echo "(\`jclouds.provider=filesystem-nio2\` writing files under the work directory, or \`transient\`:"
  echo "objects in s3proxy's heap, which leaves out its disk writes), signatures checked, one fresh"
  echo "s3proxy per row, running on the same 2 cores as Granule. Times are wall-clock seconds (GNU time),"
  echo "page cache warm, \`sync\` before each step (so no step pays for an earlier one's writeback);"
  echo "MiB/s is the image size over the time (the incremental reads the whole image too); stored ="
  echo "bytes of the files or objects after the full backup, and those the incremental added; peak RSS"
  echo "is Granule's (not s3proxy's), the largest of its backup and restore runs. Every restore was"
  echo "compared with \`cmp\`."
  echo
  echo "| repository | init s | full backup s | MiB/s | incremental s | MiB/s | full restore s | MiB/s | stored MiB | incremental added MiB | peak RSS MiB |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s' "$rows"
  echo
  echo "## Cost of encryption"
  echo
  echo "Encrypted minus unencrypted (and encrypted over unencrypted), same backend, same run: wall"
  echo "time per step, and Granule's CPU seconds summed over the three steps (less noisy on a shared"
  echo "machine)."
  echo
  echo "| backend | full backup | incremental | full restore | Granule CPU, all steps |"
  echo "|---|---:|---:|---:|---:|"
  costrow "local" local-plain local-enc
  costrow "S3 (s3proxy, filesystem)" s3-plain s3-enc
  [ "$transient" = 1 ] && costrow "S3 (s3proxy, in memory)" mem-plain mem-enc
  echo
  echo "## CPU: Granule and s3proxy"
  echo
  echo "CPU seconds (user + system) during each step: Granule's from GNU time, s3proxy's from"
  echo "/proc/PID/stat before and after. Both run on the same $(nproc) cores, so s3proxy's share is"
  echo "taken from Granule: a real remote S3 server would not cost this machine that CPU. Share ="
  echo "s3proxy's CPU over both processes' CPU, all three steps."
  echo
  echo "| repository | full: granule | full: s3proxy | incr.: granule | incr.: s3proxy | restore: granule | restore: s3proxy | s3proxy share |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s' "$cpurows"
  echo
  echo "## Notes"
  echo
  echo "- s3proxy runs on the same cores as Granule, so its CPU (the share above) is CPU that Granule"
  echo "  could not use. Against a remote S3 service this machine pays only Granule's column, but loopback"
  echo "  has no latency and no bandwidth limit: read the S3 rows as a client-side cost, not as a forecast"
  echo "  for a real network."
  echo "- Backups upload whole packs (16 MiB by default: single PUTs streamed from the pack's buffer,"
  echo "  multipart only from 32 MiB), 6 at a time, under the full JIT (the SDK's SigV4 payload hash"
  echo "  and the Content-MD5 run through the JDK's digests). A restore fetches the ranges its"
  echo "  read-ahead hints (up to 8 MiB of a pack) with one GET each into reusable direct slabs (64 MiB"
  echo "  at most: \`PrefetchingBlobStore\`); loads outside them are ranged GETs of one chunk, streamed"
  echo "  into the writer's buffer. Loopback has no per-request latency, which is what the ranges save"
  echo "  on a real network."
  echo "- The in-memory rows leave out s3proxy's file writes and reads; their difference from the"
  echo "  filesystem rows is what those cost s3proxy, the rest is HTTP, signing and s3proxy itself."
  echo "- Encryption costs CPU (AES-256-GCM per 64 KiB segment plus keyed chunk ids); on a loaded 2-core"
  echo "  machine the wall-time differences are within the noise of one run, so the CPU column of the"
  echo "  cost table is the steadier measure."
} > "$out"
cat "$out"
