#!/usr/bin/env bash
# Lag behind a slow, bloated uplink: campush versus ffmpeg (-c copy), in the same run. Each
# pushes the same 720p30 clip, paced in real time, through its own instance of the same
# throttling proxy (examples/throttle.rs: a link at half the clip's bitrate with a deep buffer,
# as a bloated router or Wi-Fi driver has: it takes everything at once and forwards it at the
# link rate) to a loopback nginx-rtmp that records every publish. After RUN_S seconds the link
# is cut (the proxy is killed: what it still holds is lost, as on a dead link); the lag a
# viewer has then is the wall time since the publisher started minus the media time the server
# recorded (ffprobe: the last video timestamp). Also: frames recorded, and whether the
# recording decodes without an error (ffmpeg -v error ... -f null -).
#
# campush runs with its defaults (queue.max_seconds = 2: its drop policy works on the
# end-to-end backlog it measures by the server's RTMP acknowledgements) and a write timeout of
# 60 s (the proxy never stops reading, so it never fires); ffmpeg as people run it:
# `ffmpeg -re -f h264 -framerate 30 -i clip -c copy -f flv rtmp://...`.
#
# Needs nginx + libnginx-mod-rtmp and ffmpeg/ffprobe (with libx264, for the clip). Not run in CI.
# Usage: bench/lag.sh        (env: RUN_S=40 seconds per push, CAMPUSH=path for a prebuilt
#                             binary, THROTTLE=path for a prebuilt examples/throttle)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/nginx.sh
. scripts/lib/nginx.sh
# shellcheck source=scripts/lib/clip.sh
. scripts/lib/clip.sh

RUN_S=${RUN_S:-40}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
CLIP=$TARGET_DIR/bench-clips/720p30-2M-60s.h264
DEEP=$((16 << 20)) # the proxy's buffer, bytes: deeper than anything held in RUN_S

die() {
    echo "lag.sh: $*" >&2
    exit 1
}
need() {
    command -v "$1" >/dev/null || die "$1 not found; install it with: apt-get install $2"
}
need ffmpeg ffmpeg
need ffprobe ffmpeg
[[ $RUN_S =~ ^[0-9]+$ ]] && [ "$RUN_S" -ge 10 ] && [ "$RUN_S" -le 55 ] ||
    die "RUN_S must be 10 to 55 seconds (the clip is 60 s long), not '$RUN_S'"
nginx_require rtmp || exit 1

# --- the clip: 60 s of 720p30 at about 2 Mbit/s, a keyframe every 2 s (made once) -------------
bench_clip "$CLIP" 1280x720 60 2 || die "cannot make the clip"
BYTES=$(stat -c %s "$CLIP")
FRAMES=$(ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames \
    -of csv=p=0 -f h264 "$CLIP" | tr -d ',\n')
STREAM_BPS=$((BYTES * 30 / FRAMES)) # bytes per second at 30 fps
LINK_BPS=$((STREAM_BPS / 2))

# --- campush and the proxy ------------------------------------------------------------------------
if [ -z "${CAMPUSH:-}" ] || [ -z "${THROTTLE:-}" ]; then
    echo "building campush and examples/throttle (release)..."
    cargo build --release --quiet --bin campush --example throttle
fi
CAMPUSH=${CAMPUSH:-$TARGET_DIR/release/campush}
THROTTLE=${THROTTLE:-$TARGET_DIR/release/examples/throttle}
[ -x "$CAMPUSH" ] || die "$CAMPUSH was not built"
[ -x "$THROTTLE" ] || die "$THROTTLE was not built"

WORK=$(mktemp -d)
PUB_PID='' PROXY_PID=''
cleanup() {
    if [ -n "$PROXY_PID" ]; then proc_stop "$PROXY_PID" KILL 2 2>/dev/null; fi
    if [ -n "$PUB_PID" ]; then proc_stop "$PUB_PID" TERM 5; fi
    nginx_stop 5
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK/rec"
nginx_up "$WORK" --record "$WORK/rec" --log info || die "nginx-rtmp did not start: $(nginx_log_tail 5)"

cat >"$WORK/campush.toml" <<EOF
[network]
write_timeout_s = 60

[audio]
source = "none"

[status]
file = "$WORK/status.json"
summary_interval_s = 0
EOF

# Starts a throttling proxy in front of nginx: PROXY_PID, PROXY_PORT.
proxy_up() {
    local i
    : >"$WORK/proxy.port"
    "$THROTTLE" "$NGINX_PORT" "$LINK_BPS" "deep:$DEEP" $((RUN_S + 60)) >"$WORK/proxy.port" &
    PROXY_PID=$!
    for ((i = 0; i < 100; i++)); do
        PROXY_PORT=$(head -n 1 "$WORK/proxy.port")
        [ -n "$PROXY_PORT" ] && return 0
        sleep 0.05
    done
    die "the throttling proxy did not start"
}

# Pushes the clip with publisher $1 ("campush" or "ffmpeg") through a new proxy for RUN_S
# seconds, cuts the link, and appends "name lag frames decodes" to $WORK/results.
push() {
    local name=$1 started ended disconnects rec last errors lag frames decodes
    proxy_up
    local url=rtmp://127.0.0.1:$PROXY_PORT/live/$name
    disconnects=$(nginx_disconnects)
    started=$(date +%s.%N)
    case $name in
    campush) "$CAMPUSH" run --config "$WORK/campush.toml" --url "$url" --source "file:$CLIP" \
        2>"$WORK/$name.log" & ;;
    ffmpeg) ffmpeg -nostdin -v error -re -f h264 -framerate 30 -i "$CLIP" -c copy -f flv "$url" \
        2>"$WORK/$name.log" & ;;
    esac
    PUB_PID=$!
    sleep "$RUN_S"
    # campush's own view just before the end (its status file, written every 5 s).
    if [ "$name" = campush ]; then cp "$WORK/status.json" "$WORK/campush.status.json" 2>/dev/null || true; fi
    # The end: the link is cut; what nginx has now is all a viewer could have seen.
    proc_stop "$PROXY_PID" KILL 2 2>/dev/null # (no "Killed" line from bash)
    ended=$(date +%s.%N)
    PROXY_PID=
    proc_stop "$PUB_PID" TERM 5
    PUB_PID=
    nginx_wait_disconnect "$disconnects"
    rec=$WORK/rec/$name.flv
    [ -s "$rec" ] || die "$name: nothing recorded ($(tail -n 3 "$WORK/$name.log"))"
    last=$(ffprobe -v error -select_streams v:0 -show_entries packet=dts_time -of csv=p=0 "$rec" |
        grep -v '^$' | tail -n 1)
    frames=$(ffprobe -v error -select_streams v:0 -show_entries packet=dts_time -of csv=p=0 "$rec" |
        grep -vc '^$' || true)
    errors=$(ffmpeg -nostdin -v error -i "$rec" -f null - 2>&1 | wc -l)
    decodes=yes
    [ "$errors" -eq 0 ] || decodes="no ($errors error lines)"
    lag=$(awk -v s="$started" -v e="$ended" -v m="$last" 'BEGIN { printf "%.1f", e - s - m }')
    echo "$name $lag $frames $decodes" >>"$WORK/results"
    echo "  $name: lag $lag s, $frames frames recorded, decodes: $decodes"
}

echo "clip: $FRAMES frames, $((STREAM_BPS * 8 / 1000)) kbit/s at 30 fps; link $((LINK_BPS * 8 / 1000)) kbit/s," \
    "buffer $((DEEP >> 20)) MiB; $RUN_S s per push"
push campush
push ffmpeg

field() { awk -v n="$1" -v f="$2" '$1 == n { print $f }' "$WORK/results"; }
echo
echo "Through a link at half the stream's bitrate with a deep buffer, after $RUN_S s"
printf '%-34s %12s %12s\n' "" campush ffmpeg
printf '%-34s %12s %12s\n' "lag at the end (s)" "$(field campush 2)" "$(field ffmpeg 2)"
printf '%-34s %12s %12s\n' "frames recorded" "$(field campush 3)" "$(field ffmpeg 3)"
printf '%-34s %12s %12s\n' "recording decodes" "$(field campush 4)" "$(field ffmpeg 4)"
if [ -s "$WORK/campush.status.json" ]; then
    sed -n 's/.*"frames_dropped":\([0-9]*\).*"backlog_ms":\([0-9a-z]*\),"backlog_estimate":\([^}]*\)}.*/campush status file before the cut: \1 frames dropped, backlog \2 ms measured by \3/p' \
        "$WORK/campush.status.json"
fi
grep -h "backlog measured by" "$WORK/campush.log" | tail -n 1 | sed 's/^.*INFO  /campush log: /' || true
