#!/usr/bin/env bash
# Boots a Debian 6.1 kernel under qemu (TCG) with real V4L2 drivers and runs campush against
# them. Called by tests/v4l2_guest.rs, which builds the static binaries and checks the results.
#
#   run.sh ARCH CAMPUSH TESTBED OUTDIR
#
# ARCH: x86_64 (scenario "full": probe, M2M through vicodec, capture from v4l2loopback with a
# device loss) or aarch64 (scenario "capture": capture from v4l2loopback only;
# both: sound captured from snd-aloop, see init.sh's alsa_scenario; qemu virt with a
# cortex-a57, v4l2loopback cross-built with gcc-aarch64-linux-gnu, no exit device: the guest
# powers off and the result comes back on the share).
# CAMPUSH_GUEST_SCENARIO=alsa runs the sound scenario alone, =mic the microphone pushed with
# the video by campush run (init.sh's mic_push_scenario; part of x86_64's "full"), while
# working on them.
# CAMPUSH / TESTBED: static binaries for ARCH. OUTDIR: results (share/ is the guest's 9p share).
#
# Downloads (Debian packages) and what is built from them are cached in $CAMPUSH_GUEST_CACHE
# (default ~/.cache/campush-guest, shared with tests/gpio_guest/run.sh); a fresh machine fetches
# them with apt-get. Every wait is bounded; the guest has no network
# device at all (its RTMP server runs on its own loopback).
set -euo pipefail

ARCH=$1
CAMPUSH=$(realpath "$2")
TESTBED=$(realpath "$3")
OUT=$(realpath -m "$4")
HERE=$(cd "$(dirname "$0")" && pwd)
CLIP=${CAMPUSH_GUEST_CLIP:-$HERE/../fixtures/clip-320x240-30fps.h264}
# The same default as tests/gpio_guest/run.sh (see there why a per-user cache).
CACHE=${CAMPUSH_GUEST_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/campush-guest}
DEBS=$CACHE/debs
mkdir -p "$DEBS" "$OUT"
t0=$SECONDS
note() { printf '[guest %3ss] %s\n' "$((SECONDS - t0))" "$*" >&2; }

case $ARCH in
x86_64) DARCH=amd64 ;;
aarch64) DARCH=arm64 ;;
*)
    echo "unknown ARCH $ARCH" >&2
    exit 2
    ;;
esac

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi; }

# --- Debian packages ------------------------------------------------------------------------

# The kernel ABI name (6.1.0-NN) apt currently offers, else the newest one in the cache.
kernel_abi() {
    local abi
    abi=$(apt-cache depends linux-image-amd64 2>/dev/null |
        sed -n 's/.*Depends: linux-image-\(6\.1\.0-[0-9]*\)-amd64.*/\1/p' | head -n1)
    if [ -z "$abi" ]; then
        abi=$(ls "$DEBS" 2>/dev/null | sed -n 's/^linux-image-\(6\.1\.0-[0-9]*\)-amd64_.*/\1/p' |
            sort -V | tail -n1)
    fi
    if [ -z "$abi" ] && [ "$(id -u)" -eq 0 ]; then
        apt-get update >/dev/null 2>&1 || true
        abi=$(apt-cache depends linux-image-amd64 2>/dev/null |
            sed -n 's/.*Depends: linux-image-\(6\.1\.0-[0-9]*\)-amd64.*/\1/p' | head -n1)
    fi
    [ -n "$abi" ] || {
        echo "cannot tell which Debian 6.1 kernel to use (apt-cache knows none, cache empty)" >&2
        exit 3
    }
    echo "$abi"
}

# deb PACKAGE [APT_OPTIONS...]: path of the cached .deb, downloading it when missing.
deb() {
    local pkg=$1
    shift
    local name=${pkg%%:*} glob
    # PKG:ARCH only matches that architecture's .deb (amd64 and arm64 busybox share a stem).
    glob="${name}_*.deb"
    [ "$name" != "$pkg" ] && glob="${name}_*_${pkg#*:}.deb"
    local f
    # shellcheck disable=SC2086 # $glob is a pattern
    f=$(ls "$DEBS"/$glob 2>/dev/null | head -n1 || true)
    if [ -z "$f" ]; then
        note "downloading $pkg"
        (cd "$DEBS" && apt-get "$@" download "$pkg" >/dev/null 2>&1) ||
            (as_root apt-get update >/dev/null 2>&1 && cd "$DEBS" && apt-get "$@" download "$pkg" >/dev/null) || {
            echo "cannot download $pkg" >&2
            exit 3
        }
        # shellcheck disable=SC2086
        f=$(ls "$DEBS"/$glob | head -n1)
    fi
    echo "$f"
}

# apt options for arm64 packages: a private package list, so the system's apt (and dpkg's
# architecture list) stay untouched.
arm64_apt() {
    local d=$CACHE/apt-arm64
    mkdir -p "$d/lists/partial" "$d/cache/archives/partial"
    echo -o APT::Architecture=arm64 -o APT::Architectures::=arm64 \
        -o Dir::State::Lists="$d/lists" -o Dir::Cache="$d/cache" -o Dir::State::Status=/dev/null
}

ABI=$(kernel_abi)
KREL=$ABI-$DARCH
note "kernel $KREL"
WORK=$CACHE/$ARCH-$KREL
mkdir -p "$WORK"

if [ "$ARCH" = aarch64 ]; then
    # shellcheck disable=SC2046
    if [ ! -e "$WORK/.arm64-lists" ]; then
        note "fetching the arm64 package list (private apt state)"
        apt-get $(arm64_apt) update >/dev/null 2>&1 || {
            echo "apt-get update for arm64 failed" >&2
            exit 3
        }
        touch "$WORK/.arm64-lists"
    fi
    IMG_DEB=$(deb "linux-image-$KREL" $(arm64_apt))
    HDR_DEB=$(deb "linux-headers-$KREL" $(arm64_apt))
    BB_DEB=$(deb "busybox-static:arm64" $(arm64_apt))
else
    IMG_DEB=$(deb "linux-image-$KREL")
    HDR_DEB=$(deb "linux-headers-$KREL")
    BB_DEB=$(deb busybox-static:amd64)
fi
# The host's own busybox packs the initramfs (the guest's may be another architecture).
HOSTBB_DEB=$(deb busybox-static:amd64)
COMMON_DEB=$(deb "linux-headers-$ABI-common")
KBUILD_DEB=$(deb linux-kbuild-6.1)
LOOP_DEB=$(deb v4l2loopback-dkms)
[ "$ARCH" = x86_64 ] && SRC_DEB=$(deb linux-source-6.1)

# --- unpack and build the out-of-tree modules -------------------------------------------------

ROOT=$WORK/root
if [ ! -e "$ROOT/.done" ] || [ ! -e "$ROOT/hostbb/bin/busybox" ]; then
    note "unpacking"
    rm -rf "$ROOT"
    mkdir -p "$ROOT"
    for d in "$IMG_DEB" "$HDR_DEB" "$COMMON_DEB" "$KBUILD_DEB" "$LOOP_DEB"; do dpkg-deb -x "$d" "$ROOT"; done
    mkdir -p "$ROOT/bb"
    dpkg-deb -x "$BB_DEB" "$ROOT/bb"
    mkdir -p "$ROOT/hostbb"
    dpkg-deb -x "$HOSTBB_DEB" "$ROOT/hostbb"
    # The headers' Makefile includes the common headers by absolute path.
    sed -i "s|/usr/src/linux-headers-$ABI-common|$ROOT/usr/src/linux-headers-$ABI-common|g" \
        "$ROOT/usr/src/linux-headers-$KREL/Makefile"
    touch "$ROOT/.done"
fi
KDIR=$ROOT/usr/src/linux-headers-$KREL
MODDIR=$ROOT/lib/modules/$KREL/kernel

if [ "$ARCH" = aarch64 ]; then
    CROSS=(ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-)
    command -v aarch64-linux-gnu-gcc >/dev/null || {
        echo "aarch64-linux-gnu-gcc is missing (apt-get install gcc-aarch64-linux-gnu)" >&2
        exit 4
    }
else
    CROSS=()
fi

build_modules() { # dir
    make -s -C "$KDIR" M="$1" "${CROSS[@]}" -j2 modules >"$1/build.log" 2>&1 || {
        cat "$1/build.log" >&2
        exit 5
    }
}

LB=$WORK/v4l2loopback
if [ ! -e "$LB/v4l2loopback.ko" ]; then
    note "building v4l2loopback"
    rm -rf "$LB"
    cp -r "$ROOT"/usr/src/v4l2loopback-* "$LB"
    build_modules "$LB"
fi
if [ "$ARCH" = x86_64 ]; then
    VC=$WORK/vicodec
    if [ ! -e "$VC/vicodec.ko" ]; then
        note "building vicodec and v4l2-mem2mem"
        rm -rf "$VC"
        mkdir -p "$VC"
        src=linux-source-6.1
        dpkg-deb --fsys-tarfile "$SRC_DEB" | tar -x -C "$VC" --wildcards "./usr/src/$src.tar.xz"
        tar -xJf "$VC/usr/src/$src.tar.xz" -C "$VC" \
            "$src/drivers/media/test-drivers/vicodec" "$src/drivers/media/v4l2-core/v4l2-mem2mem.c"
        cp "$VC/$src"/drivers/media/test-drivers/vicodec/*.[ch] "$VC/$src/drivers/media/v4l2-core/v4l2-mem2mem.c" "$VC/"
        rm -rf "$VC/usr" "$VC/$src"
        cat >"$VC/Kbuild" <<'EOF'
obj-m += v4l2-mem2mem.o vicodec.o
vicodec-objs := codec-fwht.o codec-v4l2-fwht.o vicodec-core.o
EOF
        build_modules "$VC"
    fi
fi

# --- initramfs --------------------------------------------------------------------------------

STAGE=$OUT/initramfs
rm -rf "$STAGE" "$OUT/share"
mkdir -p "$STAGE"/{bin,lib/modules,proc,sys,dev,tmp,out} "$OUT/share"
cp "$ROOT/bb/bin/busybox" "$STAGE/bin/busybox"
cp "$CAMPUSH" "$STAGE/campush"
cp "$TESTBED" "$STAGE/testbed"
cp "$CLIP" "$STAGE/clip.h264"
cp "$HERE/init.sh" "$STAGE/init"
chmod +x "$STAGE/init"

# Modules with their dependencies, in load order (dependencies first), from .modinfo.
declare -A MODPATH=() LOADED=()
while IFS= read -r f; do
    n=$(basename "$f" .ko)
    MODPATH[${n//-/_}]=$f
done < <(find "$MODDIR" -name '*.ko')
ORDER=()
add_module() { # name
    local key=${1//-/_} deps d
    [ -n "${LOADED[$key]:-}" ] && return 0
    local f=${MODPATH[$key]:-}
    [ -n "$f" ] || {
        echo "module $1 not found" >&2
        exit 6
    }
    LOADED[$key]=1
    deps=$(grep -ao 'depends=[^[:cntrl:]]*' "$f" | head -n1 | cut -d= -f2)
    for d in ${deps//,/ }; do add_module "$d"; done
    ORDER+=("$key")
    cp "$f" "$STAGE/lib/modules/$key.ko"
}
MODPATH[v4l2loopback]=$LB/v4l2loopback.ko
# virtio_rng: without an entropy source getrandom() blocks for minutes in a fresh TCG guest.
NEED=(virtio_pci virtio_rng 9pnet_virtio 9p vivid v4l2loopback snd_aloop)
if [ "$ARCH" = x86_64 ]; then
    MODPATH[v4l2_mem2mem]=$VC/v4l2-mem2mem.ko
    MODPATH[vicodec]=$VC/vicodec.ko
    NEED+=(vicodec)
    # vicodec's .modinfo names v4l2-mem2mem, which the resolver finds in MODPATH.
    echo "${CAMPUSH_GUEST_SCENARIO:-full}" >"$STAGE/scenario"
else
    NEED=(virtio_mmio virtio_pci virtio_rng 9pnet_virtio 9p videodev v4l2loopback snd_aloop)
    echo "${CAMPUSH_GUEST_SCENARIO:-capture}" >"$STAGE/scenario"
fi
for m in "${NEED[@]}"; do
    [ "$m" = virtio_mmio ] && [ -z "${MODPATH[virtio_mmio]:-}" ] && continue
    add_module "$m"
done
printf '%s\n' "${ORDER[@]}" >"$STAGE/modules.list"
note "modules: ${ORDER[*]}"
(cd "$STAGE" && find . | LC_ALL=C sort | "$ROOT/hostbb/bin/busybox" cpio -o -H newc 2>/dev/null) >"$OUT/initramfs.cpio"
note "initramfs $(du -h "$OUT/initramfs.cpio" | cut -f1)"

# --- boot -------------------------------------------------------------------------------------

KERNEL=$ROOT/boot/vmlinuz-$KREL
SHARE=(-fsdev "local,id=share,path=$OUT/share,security_model=none"
    -device "virtio-9p-pci,fsdev=share,mount_tag=host" -device virtio-rng-pci)
COMMON=(-m 768 -smp 1 -nographic -no-reboot -nic none -kernel "$KERNEL" -initrd "$OUT/initramfs.cpio")
if [ "$ARCH" = x86_64 ]; then
    QEMU=(qemu-system-x86_64 -accel tcg "${COMMON[@]}" "${SHARE[@]}"
        -device isa-debug-exit,iobase=0xf4,iosize=0x04
        -append "console=ttyS0 panic=-1 rdinit=/init")
else
    QEMU=(qemu-system-aarch64 -M virt -cpu cortex-a57 "${COMMON[@]}" "${SHARE[@]}"
        -append "console=ttyAMA0 quiet panic=-1 rdinit=/init")
fi
note "booting: ${QEMU[0]}"
set +e
timeout "${CAMPUSH_GUEST_TIMEOUT:-360}" "${QEMU[@]}" </dev/null >"$OUT/console.log" 2>&1
qemu_rc=$?
set -e
note "qemu exited with $qemu_rc"
if [ ! -s "$OUT/share/result" ]; then
    echo "the guest left no result (qemu exit $qemu_rc); console:" >&2
    tail -n 60 "$OUT/console.log" >&2
    exit 7
fi
note "guest result: $(cat "$OUT/share/result")"
echo "guest-seconds $((SECONDS - t0))" >"$OUT/timing"
exit 0
