# shellcheck shell=bash
# Test clips for the benchmarks, made once with ffmpeg + libx264 and kept. Sourced by bash
# scripts (safe under `set -euo pipefail`); defines one function, runs nothing on its own.
#
#   bench_clip PATH WIDTHxHEIGHT SECONDS MBITS
#       an H.264 Annex B clip of ffmpeg's testsrc2 at 30 fps: MBITS Mbit/s (capped, a buffer of
#       two seconds), no B-frames, a keyframe every 2 s; made only when PATH is missing or empty

bench_clip() {
    local path=$1 size=$2 secs=$3 mbits=$4
    [ -s "$path" ] && return 0
    command -v ffmpeg >/dev/null || {
        echo "ffmpeg not found; install it with: apt-get install ffmpeg" >&2
        return 1
    }
    echo "making $path (once)..."
    mkdir -p "$(dirname "$path")"
    ffmpeg -nostdin -v error -y -f lavfi -i "testsrc2=size=$size:rate=30" -t "$secs" \
        -c:v libx264 -b:v "${mbits}M" -maxrate "${mbits}M" -bufsize "$((mbits * 2))M" -bf 0 -g 60 \
        -x264-params scenecut=0 -pix_fmt yuv420p -f h264 "$path.tmp"
    mv "$path.tmp" "$path"
}
