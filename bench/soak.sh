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

MINUTES=${1:-10}
RESTART_EVERY=${RESTART_EVERY:-30}
SAMPLE_EVERY=${SAMPLE_EVERY:-10}
TARGET_DIR=${CARGO_TARGET_DIR:-target}

die() {
    echo "soak.sh: $*" >&2
    exit 1
}
[[ $MINUTES =~ ^[0-9]+$ ]] && [ "$MINUTES" -ge 1 ] && [ "$MINUTES" -le 10080 ] ||
    die "MINUTES must be a whole number from 1 to 10080, not '$MINUTES'"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || die "nginx not found; install it with: apt-get install nginx libnginx-mod-rtmp"
RTMP_MODULE=/usr/lib/nginx/modules/ngx_rtmp_module.so
[ -f "$RTMP_MODULE" ] || die "$RTMP_MODULE not found; install it with: apt-get install libnginx-mod-rtmp"

# --- the clip: 10 s of 720p30, one keyframe every 2 s (made once) ----------------------------
if [ -z "${CLIP:-}" ]; then
    CLIP=$TARGET_DIR/bench-clips/720p30-2M-10s.h264
    if [ ! -s "$CLIP" ]; then
        command -v ffmpeg >/dev/null || die "ffmpeg not found; install it with: apt-get install ffmpeg"
        echo "making $CLIP (once)..."
        mkdir -p "$(dirname "$CLIP")"
        ffmpeg -nostdin -v error -y -f lavfi -i testsrc2=size=1280x720:rate=30 -t 10 \
            -c:v libx264 -b:v 2M -maxrate 2M -bufsize 4M -bf 0 -g 60 -x264-params scenecut=0 \
            -pix_fmt yuv420p -f h264 "$CLIP.tmp"
        mv "$CLIP.tmp" "$CLIP"
    fi
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
NGINX_PID=
CAMPUSH_PID=
# Sends $2 to process $1 and waits up to $3 seconds for it to exit (SIGKILL after that), then
# reaps it. Only for our own children, called outside $(...) so that wait finds them. Sets
# ENDED to how it ended: "exit CODE" or "killed, exit CODE".
stop_child() {
    local pid=$1 sig=$2 limit=$3 i rc=0
    ENDED=
    kill "-$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < limit * 20; i++)); do
        alive "$pid" || break
        sleep 0.05
    done
    if alive "$pid"; then
        kill -KILL "$pid" 2>/dev/null || true
        ENDED="killed, "
    fi
    wait "$pid" 2>/dev/null || rc=$?
    ENDED="${ENDED}exit $rc"
}
# Running (a zombie, which kill -0 still finds, counts as dead).
alive() {
    local state
    state=$(awk '/^State:/ { print $2 }' "/proc/$1/status" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}
cleanup() {
    if [ -n "$CAMPUSH_PID" ]; then stop_child "$CAMPUSH_PID" TERM 5; fi
    if [ -n "$NGINX_PID" ]; then stop_child "$NGINX_PID" TERM 5; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- nginx-rtmp on a loopback port, recording nothing ---------------------------------------
# A listening socket on 127.0.0.1:$1, from /proc (no connection is made to find out).
listening() {
    local hex
    hex=$(printf '0100007F:%04X' "$1")
    awk -v a="$hex" '$2 == a && $4 == "0A" { found = 1 } END { exit !found }' /proc/net/tcp
}
write_nginx_conf() {
    cat >"$WORK/nginx.conf" <<EOF
load_module $RTMP_MODULE;
daemon off;
master_process off;
error_log $WORK/error.log notice;
pid $WORK/nginx.pid;
events { worker_connections 64; }
rtmp {
    access_log off;
    server {
        listen 127.0.0.1:$PORT;
        chunk_size 4096;
        application live { live on; record off; }
    }
}
EOF
}
# Starts nginx on $PORT; true once it listens (within 10 s), false if it exited or never did.
start_nginx() {
    local i
    "$NGINX" -p "$WORK" -c "$WORK/nginx.conf" -e "$WORK/error.log" </dev/null >/dev/null 2>&1 &
    NGINX_PID=$!
    for ((i = 0; i < 200; i++)); do
        alive "$NGINX_PID" || break
        if listening "$PORT"; then return 0; fi
        sleep 0.05
    done
    stop_child "$NGINX_PID" TERM 2
    NGINX_PID=
    return 1
}
for _ in $(seq 20); do
    PORT=$((20000 + RANDOM % 40000))
    listening "$PORT" && continue
    write_nginx_conf
    start_nginx && break
done
[ -n "$NGINX_PID" ] || die "nginx-rtmp did not start: $(tail -n 5 "$WORK/error.log" 2>/dev/null)"

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
rss_min= rss_max=0 rss_first= fd_min= fd_max=0 fd_first= last_frames=0 last_t=$START
while :; do
    now=$(date +%s)
    if ! alive "$CAMPUSH_PID"; then
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
        stop_child "$NGINX_PID" TERM 10
        NGINX_PID=
        case $ENDED in killed*) echo "nginx did not exit within 10 s of SIGTERM ($ENDED)" ;; esac
        if start_nginx; then
            restarts=$((restarts + 1))
        else
            restart_failures=$((restart_failures + 1))
            echo "nginx did not restart on port $PORT: $(tail -n 2 "$WORK/error.log")"
            ((restart_failures < 5)) || die "nginx failed to restart 5 times"
        fi
        next_restart=$((next_restart + RESTART_EVERY))
    fi
    sleep 0.2
done

# --- the end: SIGTERM campush, expecting a clean stop -------------------------------------------
if [ "$survived" = yes ]; then
    stop_child "$CAMPUSH_PID" TERM 10
    case $ENDED in "exit 0") stopped="cleanly (exit 0 on SIGTERM)" ;; *) stopped="BADLY ($ENDED)" ;; esac
else
    stop_child "$CAMPUSH_PID" TERM 1
    stopped="not: it had died ($ENDED)"
fi
CAMPUSH_PID=
CAMPUSH_ENDED=$ENDED
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
