#!/usr/bin/env bash
# campush in one minute, no camera needed: make a 10 s test clip, start a throwaway
# nginx-rtmp server on loopback that records what it receives, publish the clip to it with
# campush in real time, then show what the server got. Everything lives in a temporary
# directory that is removed at the end. Installs nothing.
#
# Usage: examples/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib/nginx.sh
. scripts/lib/nginx.sh

missing=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || missing+=(ffmpeg)
nginx_find rtmp || missing+=("${NGINX_MISSING[@]}")
if [ ${#missing[@]} -gt 0 ]; then
    echo "missing: ${missing[*]}. On Debian or Ubuntu install them with:" >&2
    echo "    sudo apt-get install nginx libnginx-mod-rtmp ffmpeg" >&2
    exit 1
fi
command -v cargo >/dev/null || {
    echo "cargo not found: install Rust from https://rustup.rs" >&2
    exit 1
}

DEMO=$(mktemp -d)
cleanup() {
    nginx_stop
    rm -rf "$DEMO"
}
trap cleanup EXIT

echo "== 1. a 10 s 720p30 H.264 test clip"
ffmpeg -nostdin -v error -f lavfi -i testsrc2=size=1280x720:rate=30 -t 10 \
    -c:v libx264 -preset veryfast -bf 0 -g 60 -pix_fmt yuv420p -f h264 "$DEMO/clip.h264"
ls -l "$DEMO/clip.h264"

echo "== 2. nginx-rtmp on a free loopback port, recording every publish"
mkdir "$DEMO/rec"
if ! nginx_up "$DEMO" --record "$DEMO/rec"; then
    echo "nginx-rtmp did not start:" >&2
    nginx_log_tail 20 >&2
    exit 1
fi
PORT=$NGINX_PORT
echo "listening on rtmp://127.0.0.1:$PORT/live"

echo "== 3. build campush"
cargo build --release --quiet
CAMPUSH=${CARGO_TARGET_DIR:-target}/release/campush

echo "== 4. publish the clip in real time (about 10 s)"
before=$(nginx_disconnects)
echo "\$ campush run --url rtmp://127.0.0.1:$PORT/live/demo --source file:clip.h264"
"$CAMPUSH" run --url "rtmp://127.0.0.1:$PORT/live/demo" --source "file:$DEMO/clip.h264"

echo "== 5. what the server recorded"
nginx_wait_disconnect "$before" # the server closes the recording when the publisher disconnects
REC=$DEMO/rec/demo.flv
ls -l "$REC"
ffprobe -v error -count_frames -select_streams v:0 \
    -show_entries stream=codec_name,profile,width,height,nb_read_frames:format=duration \
    -of default=noprint_wrappers=1 "$REC"
