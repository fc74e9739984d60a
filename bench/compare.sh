#!/usr/bin/env bash
# Client-side cost of publishing H.264 over RTMP: campush versus ffmpeg (-c copy), both
# pushing the same 60 s 1080p30 ~5 Mbit/s clip as fast as they can (unpaced) to a loopback
# nginx-rtmp that records nothing, so that what is measured is the client. Then campush over
# RTMPS (nginx's stream module terminating TLS in front of the same server) against campush over
# RTMP. campush runs with --audio none throughout, like for like with ffmpeg's video-only push.
#
# Prints, side by side: CPU seconds (user+sys), peak RSS, context switches per frame, socket
# writes per frame, heap allocations per frame (campush only), and the ratio campush/ffmpeg;
# then campush against the floor, the two run turn about (examples/floor.rs: every message
# built beforehand, then one send() per frame: the CPU of the sending only), with the ratio of
# each pair of runs; then RTMPS/RTMP CPU and allocations, and the binary size (SIZES=1 also
# builds an RTMP-only binary to compare).
#
# Needs nginx + libnginx-mod-rtmp + libnginx-mod-stream, openssl, ffmpeg/ffprobe, strace and
# GNU time (package "time").
# Usage: bench/compare.sh    (env: RUNS=5 for more repetitions, CAMPUSH=path for a prebuilt binary,
#                             SIZES=1 to also build and size campush without TLS)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/nginx.sh
. scripts/lib/nginx.sh
# shellcheck source=scripts/lib/clip.sh
. scripts/lib/clip.sh

RUNS=${RUNS:-3} # CPU and RSS are the median of this many runs each
TARGET_DIR=${CARGO_TARGET_DIR:-target}
CLIP_DIR=$TARGET_DIR/bench-clips
CLIP=$CLIP_DIR/1080p30-5M-60s.h264

die() {
    echo "compare.sh: $*" >&2
    exit 1
}
need() {
    command -v "$1" >/dev/null || die "$1 not found; install it with: apt-get install $2"
}
need ffmpeg ffmpeg
need ffprobe ffmpeg
need strace strace
[ -x /usr/bin/time ] || die "/usr/bin/time not found; install it with: apt-get install time"
nginx_require rtmp stream || exit 1
need openssl openssl

WORK=$(mktemp -d)
cleanup() {
    nginx_stop
    rm -rf "$WORK"
}
trap cleanup EXIT

# --- the clip (made once) ---------------------------------------------------------------------
bench_clip "$CLIP" 1920x1080 60 5 || die "cannot make the clip"
if [ ! -s "$CLIP.frames" ]; then
    ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames \
        -of csv=p=0 -f h264 "$CLIP" | tr -d ',\n' >"$CLIP.frames"
fi
FRAMES=$(cat "$CLIP.frames")
BYTES=$(stat -c %s "$CLIP")
echo "clip: $FRAMES frames, $((BYTES * 8 * 30 / FRAMES / 1000)) kbit/s at 30 fps"

# --- campush -----------------------------------------------------------------------------------
if [ -z "${CAMPUSH:-}" ]; then # CAMPUSH=path/to/campush compares an already built binary
    echo "building campush (release)..."
    cargo build --release --quiet
    CAMPUSH=$TARGET_DIR/release/campush
fi
echo "building the floor publisher (examples/floor.rs, release)..."
cargo build --release --quiet --example floor
FLOOR=$TARGET_DIR/release/examples/floor
[ -x "$CAMPUSH" ] || die "$CAMPUSH was not built"

# --- a throwaway CA and a certificate for localhost, for the TLS front -----------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=bench CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
    -keyout "$WORK/localhost.key" -out "$WORK/localhost.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$WORK/localhost.ext"
openssl x509 -req -in "$WORK/localhost.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
    -CAcreateserial -days 2 -extfile "$WORK/localhost.ext" -out "$WORK/localhost.pem" 2>/dev/null

# --- nginx-rtmp on a free loopback port, recording nothing; TLS on the next port --------------
nginx_up "$WORK" --tls "$WORK/localhost.pem" "$WORK/localhost.key" --log warn ||
    die "nginx-rtmp did not start: $(nginx_log_tail 20)"
PORT=$NGINX_PORT TLS_PORT=$NGINX_TLS_PORT
URL=rtmp://127.0.0.1:$PORT/live
TLS_URL=rtmps://localhost:$TLS_PORT/live

# The command line of publisher $1 ("campush", "campush-tls" or "ffmpeg") pushing the clip,
# unpaced, to stream key $2, into the array CMD.
publisher() {
    case $1 in
    campush) CMD=("$CAMPUSH" run --url "$URL/$2" --source "file:$CLIP" --no-pace --audio none) ;;
    campush-tls) CMD=("$CAMPUSH" run --url "$TLS_URL/$2" --source "file:$CLIP" --no-pace --audio none
        --tls-ca "$WORK/ca.pem") ;;
    ffmpeg) CMD=(ffmpeg -nostdin -v error -f h264 -framerate 30 -i "$CLIP" -c:v copy -f flv "$URL/$2") ;;
    esac
}

# CPU and peak RSS, without strace (ptrace inflates CPU), one line per run in NAME.times:
# "user sys maxrss_kib". GNU time gives the peak RSS; bash's own `time` gives CPU to the
# millisecond (GNU time rounds to 10 ms), including GNU time's own, well under 1 ms.
# With "--floor", the floor runs after each run too (its CPU milliseconds in floor.ms): what
# either costs moves with the machine's load, so the two are measured turn about.
measure() {
    local name=$1 i cpu
    for i in $(seq "$RUNS"); do
        publisher "$name" "$name$i"
        cpu=$({
            TIMEFORMAT='%3U %3S'
            time CAMPUSH_ALLOC_STATS=1 /usr/bin/time -f '%M %w %c' -o "$WORK/rss" "${CMD[@]}" \
                2>"$WORK/$name.stderr"
        } 2>&1) || die "$name push failed: $(tail -n 5 "$WORK/$name.stderr")"
        echo "$cpu $(tail -n 1 "$WORK/rss")" >>"$WORK/$name.times"
        if [ "${2:-}" = --floor ]; then
            "$FLOOR" "$URL/floor$i" "$CLIP" | sed -n 's/.*cpu_ms=\([0-9.]*\).*/\1/p' >>"$WORK/floor.ms"
        fi
    done
}
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
cpu() { awk '{ printf "%.3f\n", $1 + $2 }' "$WORK/$1.times" | median; }
rss_mib() { awk '{ printf "%.1f\n", $3 / 1024 }' "$WORK/$1.times" | median; }
# Voluntary + involuntary context switches per frame (GNU time's %w and %c).
switches() { awk -v f="$FRAMES" '{ printf "%.2f\n", ($4 + $5) / f }' "$WORK/$1.times" | median; }
# The floor's CPU milliseconds for sending, median of its RUNS runs (`measure campush --floor`).
floor_ms() { median <"$WORK/floor.ms"; }

# Socket writes: strace -yy annotates every fd with what it is ("7<TCP:[a:p->b:q]>"), so
# counting write/writev/sendto/sendmsg calls whose fd is a TCP socket leaves out log output
# to stderr and the eventfd/pipe writes runtimes use to wake threads. -f follows all
# threads; a call interrupted by another thread is logged as "...<unfinished" then
# "<... resumed>", and only the first of those lines starts with the call name.
socket_writes_per_frame() {
    local name=$1
    publisher "$name" "${name}strace"
    strace -f -yy -qq -o "$WORK/$name.strace" -e trace=write,writev,sendto,sendmsg "${CMD[@]}" \
        2>"$WORK/$name.strace.stderr" || die "$name push under strace failed"
    grep -cE '^([0-9]+ +)?(write|writev|sendto|sendmsg)\([0-9]+<TCP' "$WORK/$name.strace" |
        awk -v f="$FRAMES" '{ printf "%.2f", $1 / f }'
}

echo "pushing: $RUNS runs each for CPU/RSS, then one run each under strace..."
measure campush --floor
measure ffmpeg
measure campush-tls
ALLOC=$(grep -o "alloc-stats:.*" "$WORK/campush.stderr" | tail -n 1 || true)
ALLOC_TLS=$(grep -o "alloc-stats:.*" "$WORK/campush-tls.stderr" | tail -n 1 || true)
ALLOC_TLS_PER_FRAME=$(sed -n 's/.*per_frame=\([0-9.eE+-]*\).*/\1/p' <<<"$ALLOC_TLS")
ALLOC_PER_FRAME=$(sed -n 's/.*per_frame=\([0-9.eE+-]*\).*/\1/p' <<<"$ALLOC")
PUSHED=$(sed -n 's/.*frames=\([0-9]*\).*/\1/p' <<<"$ALLOC")
[ -n "$ALLOC" ] || echo "warning: campush printed no alloc-stats line"
WRITES_CAMPUSH=$(socket_writes_per_frame campush)
WRITES_FFMPEG=$(socket_writes_per_frame ffmpeg)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
row() { printf '%-28s %12s %12s %16s\n' "$1" "$2" "$3" "$(ratio "$2" "$3")"; }

echo
echo "$FRAMES frames of 1080p30 pushed unpaced to nginx-rtmp on loopback (median of $RUNS runs)"
printf '%-28s %12s %12s %16s\n' "" campush ffmpeg campush/ffmpeg
row "CPU seconds (user+sys)" "$(cpu campush)" "$(cpu ffmpeg)"
row "peak RSS (MiB)" "$(rss_mib campush)" "$(rss_mib ffmpeg)"
row "context switches per frame" "$(switches campush)" "$(switches ffmpeg)"
row "socket writes per frame" "$WRITES_CAMPUSH" "$WRITES_FFMPEG"
printf '%-28s %12s %12s\n' "heap allocations per frame" "${ALLOC_PER_FRAME:-?}" "n/a"
echo "campush: ${ALLOC:-no alloc-stats line}"
# alloc-stats counts the frames after the 30th (the warm-up).
[ -z "$PUSHED" ] || [ "$((PUSHED + 30))" = "$FRAMES" ] ||
    echo "warning: campush reported $((PUSHED + 30)) frames published, the clip has $FRAMES"

FLOOR_MS=$(floor_ms)
CAMPUSH_MS=$(awk -v s="$(cpu campush)" 'BEGIN { printf "%.1f", s * 1000 }')
echo
echo "campush against the floor (every message built beforehand, one send() per frame)"
printf '%-28s %12s %12s %16s\n' "" campush floor campush/floor
row "CPU milliseconds" "$CAMPUSH_MS" "$FLOOR_MS"
# Each campush run against the floor run right after it.
echo "campush/floor run by run: $(paste -d ' ' "$WORK/campush.times" "$WORK/floor.ms" |
    awk '{ printf "%s%.2f", (NR > 1 ? " " : ""), ($1 + $2) * 1000 / $6 }')"

echo
echo "campush over RTMPS (TLS terminated by nginx's stream module) versus RTMP, same clip"
printf '%-28s %12s %12s %16s\n' "" rtmps rtmp rtmps/rtmp
row "CPU seconds (user+sys)" "$(cpu campush-tls)" "$(cpu campush)"
row "peak RSS (MiB)" "$(rss_mib campush-tls)" "$(rss_mib campush)"
printf '%-28s %12s %12s\n' "heap allocations per frame" "${ALLOC_TLS_PER_FRAME:-?}" "${ALLOC_PER_FRAME:-?}"
echo "campush rtmps: ${ALLOC_TLS:-no alloc-stats line}"

# --- binary size ---------------------------------------------------------------------------------
size_of() { stat -c %s "$1"; }
echo
printf '%-40s %10s bytes (%s)\n' "campush binary as measured" "$(size_of "$CAMPUSH")" "$(file -b "$CAMPUSH" 2>/dev/null | cut -d, -f1-2)"
if [ "${SIZES:-0}" = 1 ]; then
    echo "building campush without TLS (--no-default-features) for its size..."
    cargo build --release --quiet --no-default-features --target-dir "$TARGET_DIR/bench-no-tls"
    NO_TLS=$TARGET_DIR/bench-no-tls/release/campush
    printf '%-40s %10s bytes\n' "campush without TLS (RTMP only)" "$(size_of "$NO_TLS")"
    printf '%-40s %10s bytes\n' "cost of TLS" "$(($(size_of "$CAMPUSH") - $(size_of "$NO_TLS")))"
fi
