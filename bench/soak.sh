#!/usr/bin/env bash
# Soak test: campush pushes a clip in a loop, unpaced (as fast as the server takes it), to a
# loopback nginx-rtmp that is restarted every 30 s, for N minutes (default 10). Every 10 s it
# prints campush's resident memory, open file descriptors, threads and counters; at the end a
# summary, and whether campush stayed alive the whole time. Exits 0 when campush survived
# and stopped cleanly on SIGTERM, 1 otherwise. Memory or fd growth is for the reader to judge
# from the samples (the summary prints first and last values next to min/max).
#
# Needs nginx + libnginx-mod-rtmp and ffmpeg (with libx264) for the clip. Not run in CI.
# Usage: bench/soak.sh [MINUTES]
#   env: CAMPUSH=path      use an already built binary instead of building a release one
#        CLIP=path.h264    push this Annex B clip instead of the generated 720p one
#        RESTART_EVERY=30  seconds between server restarts; SAMPLE_EVERY=10 between samples
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/nginx.sh
. scripts/lib/nginx.sh
# shellcheck source=scripts/lib/clip.sh
. scripts/lib/clip.sh

MINUTES=${1:-10}
RESTART_EVERY=${RESTART_EVERY:-30}
SAMPLE_EVERY=${SAMPLE_EVERY:-10}
TARGET_DIR=${CARGO_TARGET_DIR:-target}

die() {
    echo "soak.sh: $*" >&2
    exit 1
}
if ! [[ $MINUTES =~ ^[0-9]+$ ]] || [ "$MINUTES" -lt 1 ] || [ "$MINUTES" -gt 10080 ]; then
    die "MINUTES must be a whole number from 1 to 10080, not '$MINUTES'"
fi
nginx_require rtmp || exit 1

# --- the clip: 10 s of 720p30, one keyframe every 2 s (made once) ----------------------------
if [ -z "${CLIP:-}" ]; then
    CLIP=$TARGET_DIR/bench-clips/720p30-2M-10s.h264
    bench_clip "$CLIP" 1280x720 10 2 || die "cannot make the clip"
fi
[ -s "$CLIP" ] || die "clip $CLIP is missing or empty"

# --- campush -----------------------------------------------------------------------------------
if [ -z "${CAMPUSH:-}" ]; then
    echo "building campush (release)..."
    cargo build --release --quiet
    CAMPUSH=$TARGET_DIR/release/campush
fi
[ -x "$CAMPUSH" ] || die "$CAMPUSH was not built"

WORK=$(mktemp -d)
CAMPUSH_PID=
cleanup() {
    if [ -n "$CAMPUSH_PID" ]; then proc_stop "$CAMPUSH_PID" TERM 5; fi
    nginx_stop 5
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- nginx-rtmp on a loopback port, recording nothing ---------------------------------------
nginx_up "$WORK" --log notice || die "nginx-rtmp did not start: $(nginx_log_tail 5)"
PORT=$NGINX_PORT

# --- campush, never giving up, short backoff ----------------------------------------------------
STATUS=$WORK/status.json
cat >"$WORK/soak.toml" <<EOF
[network]
backoff_min_s = 0.1
backoff_max_s = 1
max_attempts = 0

[status]
file = "$STATUS"
summary_interval_s = 60
EOF
CAMPUSH_ALLOC_STATS=1 "$CAMPUSH" run --config "$WORK/soak.toml" \
    --url "rtmp://127.0.0.1:$PORT/live/soak" --source "file:$CLIP" --loop --no-pace \
    --max-attempts 0 </dev/null >"$WORK/campush.log" 2>&1 &
CAMPUSH_PID=$!

# --- the soak ------------------------------------------------------------------------------------
# A number from the status file (0 before it exists).
json_num() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" "$STATUS" 2>/dev/null | head -n 1 | grep . || echo 0; }
json_str() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" "$STATUS" 2>/dev/null | head -n 1 || true; }
proc_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

echo "soak: $MINUTES min, clip $CLIP ($(stat -c %s "$CLIP") bytes), nginx-rtmp on 127.0.0.1:$PORT" \
    "restarted every ${RESTART_EVERY}s, campush pid $CAMPUSH_PID"
printf '%8s %9s %4s %4s %12s %9s %10s %7s %7s %s\n' \
    elapsed rss_kib fds thr frames_sent fps dropped connect reconn status
START=$(date +%s)
END=$((START + MINUTES * 60))
next_sample=$((START + SAMPLE_EVERY))
next_restart=$((START + RESTART_EVERY))
restarts=0 restart_failures=0 samples=0 survived=yes
rss_min='' rss_max=0 rss_first='' fd_min='' fd_max=0 fd_first='' last_frames=0 last_t=$START
while :; do
    now=$(date +%s)
    if ! proc_alive "$CAMPUSH_PID"; then
        survived=no
        echo "campush DIED after $((now - START)) s"
        break
    fi
    if ((now >= next_sample)); then
        rss=$(proc_kib "$CAMPUSH_PID" VmRSS)
        threads=$(proc_kib "$CAMPUSH_PID" Threads)
        fds=$(find "/proc/$CAMPUSH_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
        frames=$(json_num frames_sent)
        fps=$(awk -v f="$frames" -v l="$last_frames" -v dt=$((now - last_t)) \
            'BEGIN { printf "%.0f", (dt > 0 ? (f - l) / dt : 0) }')
        last_frames=$frames last_t=$now
        printf '%7ss %9s %4s %4s %12s %9s %10s %7s %7s %s\n' $((now - START)) "$rss" "$fds" \
            "$threads" "$frames" "$fps" "$(json_num frames_dropped)" "$(json_num connects)" \
            "$(json_num reconnects)" "$(json_str status)"
        samples=$((samples + 1))
        rss_first=${rss_first:-$rss} fd_first=${fd_first:-$fds}
        rss_last=$rss fd_last=$fds hwm=$(proc_kib "$CAMPUSH_PID" VmHWM)
        if [ -z "$rss_min" ] || ((rss < rss_min)); then rss_min=$rss; fi
        if ((rss > rss_max)); then rss_max=$rss; fi
        if [ -z "$fd_min" ] || ((fds < fd_min)); then fd_min=$fds; fi
        if ((fds > fd_max)); then fd_max=$fds; fi
        next_sample=$((next_sample + SAMPLE_EVERY))
    fi
    ((now < END)) || break
    if ((now >= next_restart)); then
        # Graceful for nginx means: SIGTERM, and wait for it to exit before starting again.
        nginx_stop 10
        case $PROC_ENDED in
        killed*) echo "nginx did not exit within 10 s of SIGTERM ($PROC_ENDED)" ;;
        esac
        if nginx_start; then
            restarts=$((restarts + 1))
        else
            restart_failures=$((restart_failures + 1))
            echo "nginx did not restart on port $PORT: $(nginx_log_tail 2)"
            ((restart_failures < 5)) || die "nginx failed to restart 5 times"
        fi
        next_restart=$((next_restart + RESTART_EVERY))
    fi
    sleep 0.2
done

# --- the end: SIGTERM campush, expecting a clean stop -------------------------------------------
if [ "$survived" = yes ]; then
    proc_stop "$CAMPUSH_PID" TERM 10
    case $PROC_ENDED in
    "exit 0") stopped="cleanly (exit 0 on SIGTERM)" ;;
    *) stopped="BADLY ($PROC_ENDED)" ;;
    esac
else
    proc_stop "$CAMPUSH_PID" TERM 1
    stopped="not: it had died ($PROC_ENDED)"
fi
CAMPUSH_PID=
CAMPUSH_ENDED=$PROC_ENDED
echo
echo "=== soak summary: $MINUTES min, $samples samples, $restarts server restarts" \
    "($restart_failures failed) ==="
echo "campush alive the whole time: $survived; stopped $stopped"
echo "RSS KiB:      min $rss_min  max $rss_max  first $rss_first  last ${rss_last:-}  (peak VmHWM ${hwm:-?})"
echo "open fds:     min $fd_min  max $fd_max  first $fd_first  last ${fd_last:-}"
echo "frames sent:  $(json_num frames_sent)  (in $(json_num frames_in), dropped $(json_num frames_dropped))"
echo "connects:     $(json_num connects)  reconnects $(json_num reconnects)"
grep -o 'alloc-stats:.*' "$WORK/campush.log" | tail -n 1 || true
echo "campush log: $(wc -l <"$WORK/campush.log") lines; last 5:"
tail -n 5 "$WORK/campush.log" | sed 's/^/    /'
[ "$survived" = yes ] && [ "$CAMPUSH_ENDED" = "exit 0" ]
