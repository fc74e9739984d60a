#!/usr/bin/env bash
# campush in one minute, no camera needed: make a 10 s test clip, start a throwaway
# nginx-rtmp server on loopback that records what it receives, publish the clip to it with
# campush in real time, then show what the server got. Everything lives in a temporary
# directory that is removed at the end. Installs nothing.
#
# Usage: examples/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || missing+=(ffmpeg)
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || missing+=(nginx)
RTMP_MODULE=/usr/lib/nginx/modules/ngx_rtmp_module.so
[ -f "$RTMP_MODULE" ] || missing+=(libnginx-mod-rtmp)
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
NGINX_PID=
cleanup() {
    if [ -n "$NGINX_PID" ]; then kill "$NGINX_PID" 2>/dev/null || true; fi
    rm -rf "$DEMO"
}
trap cleanup EXIT

echo "== 1. a 10 s 720p30 H.264 test clip"
ffmpeg -nostdin -v error -f lavfi -i testsrc2=size=1280x720:rate=30 -t 10 \
    -c:v libx264 -preset veryfast -bf 0 -g 60 -pix_fmt yuv420p -f h264 "$DEMO/clip.h264"
ls -l "$DEMO/clip.h264"

echo "== 2. nginx-rtmp on a free loopback port, recording every publish"
mkdir "$DEMO/rec"
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for _ in $(seq 20); do
    PORT=$((20000 + RANDOM % 40000))
    port_in_use "$PORT" && continue
    cat >"$DEMO/nginx.conf" <<EOF
load_module $RTMP_MODULE;
daemon off;
master_process off;
error_log $DEMO/error.log info;
pid $DEMO/nginx.pid;
events { worker_connections 64; }
rtmp {
    access_log off;
    server {
        listen 127.0.0.1:$PORT;
        chunk_size 4096;
        application live {
            live on;
            record all;
            record_path $DEMO/rec;
        }
    }
}
EOF
    "$NGINX" -p "$DEMO" -c "$DEMO/nginx.conf" -e "$DEMO/error.log" </dev/null &
    NGINX_PID=$!
    for _ in $(seq 100); do
        port_in_use "$PORT" && break
        kill -0 "$NGINX_PID" 2>/dev/null || break
        sleep 0.05
    done
    kill -0 "$NGINX_PID" 2>/dev/null && port_in_use "$PORT" && break
    NGINX_PID=
done
if [ -z "$NGINX_PID" ]; then
    echo "nginx-rtmp did not start:" >&2
    cat "$DEMO/error.log" >&2 || true
    exit 1
fi
echo "listening on rtmp://127.0.0.1:$PORT/live"

echo "== 3. build campush"
cargo build --release --quiet
CAMPUSH=${CARGO_TARGET_DIR:-target}/release/campush

echo "== 4. publish the clip in real time (about 10 s)"
disconnects() { grep -c 'disconnect' "$DEMO/error.log" || true; }
before=$(disconnects)
echo "\$ campush run --url rtmp://127.0.0.1:$PORT/live/demo --source file:clip.h264"
"$CAMPUSH" run --url "rtmp://127.0.0.1:$PORT/live/demo" --source "file:$DEMO/clip.h264"

echo "== 5. what the server recorded"
for _ in $(seq 50); do # the server closes the recording when the publisher disconnects
    [ "$(disconnects)" -gt "$before" ] && break
    sleep 0.1
done
sleep 0.2
REC=$DEMO/rec/demo.flv
ls -l "$REC"
ffprobe -v error -count_frames -select_streams v:0 \
    -show_entries stream=codec_name,profile,width,height,nb_read_frames:format=duration \
    -of default=noprint_wrappers=1 "$REC"
