#!/usr/bin/env bash
# Cross-build campush into static musl binaries for Raspberry Pi boards, without Docker and
# without rustup targets; optionally run them under qemu-user against a loopback nginx-rtmp and
# package them as .debs. CI runs it (`.ci/run`); users on Debian 12 can run it as it is.
#
# The route, and why each piece:
# - Debian's Rust (`rustc-web`, `cargo-web`: 1.96) has no prebuilt std for ARM targets, but
#   `rust-web-src` ships std's sources: `-Zbuild-std=std,panic_abort` compiles std for the
#   target (RUSTC_BOOTSTRAP=1 unlocks that nightly flag on the stable compiler).
# - zig (PyPI `ziglang`, driven by PyPI `cargo-zigbuild`) is the C compiler and the linker, and
#   brings its own musl: no cross gcc, no foreign dpkg architecture.
# - `-Zbuild-std-features=panic-unwind`: std's default features without `backtrace`, whose
#   symbolizer (gimli, addr2line, miniz_oxide, rustc-demangle: about 70 KiB) would only name
#   the functions of a panic's backtrace, in a binary that is stripped anyway. A panic still
#   prints its message and place.
# - `-C link-self-contained=no`: Debian's rustc ships no self-contained musl start files
#   (crt1.o, ...); zig supplies them.
# - A separate target dir, so the host build and this one never invalidate each other.
#
# Targets:
#   aarch64-unknown-linux-musl      64-bit OS: Pi 3, 4, 5, Zero 2 W           (qemu -cpu cortex-a53)
#   arm-unknown-linux-musleabihf    32-bit OS, ARMv6 + VFP: every Pi, Zero/1 too (qemu -cpu arm1176)
#   armv7-unknown-linux-musleabihf  32-bit OS on Pi 2/3/4 only (not needed: the ARMv6 build runs
#                                   there too)                                 (qemu -cpu cortex-a7)
#
# Usage: scripts/cross-build.sh [options]
#   --setup          install missing Debian packages with apt-get (as root, or through sudo)
#   --target T       build T (repeatable); default: aarch64 and ARMv6 (the two shipped binaries)
#   --all            the three targets above
#   --test           run each binary under qemu-user: push the test clip to a private nginx-rtmp
#                    on loopback and check the recording with ffprobe
#   --deb            build .debs (arm64 from aarch64, armhf from ARMv6) with cargo-deb, and check
#                    them with dpkg-deb
#   --out DIR        where binaries, SHA256SUMS and .debs go (default: target/cross/dist)
#   -h, --help
# Environment:
#   CAMPUSH_CROSS_TARGET_DIR  cargo target dir for the cross builds (default: target/cross)
#   CAMPUSH_CROSS_CACHE       tools cache: Python venv, cargo-deb (default: ~/.cache/campush-cross)
#
# Every binary must be static (no program interpreter, no DT_NEEDED), stripped, of the right
# machine and ARM architecture, and at most MAX_KIB (2100 KiB: the microphone's code on top of the
# video-only binary's 1951 KiB, as measured; issue 16 allows up to 2.5 MiB); otherwise it fails.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/nginx.sh
. scripts/lib/nginx.sh

# The budget: measured 2041 KiB for aarch64 with the microphone (ALSA capture, campush's own
# AAC encoder, the resampler), with room for small growth; a larger step is a decision.
MAX_KIB=2100
MAX_BYTES=$((MAX_KIB * 1024))
ZIG_PIP=(ziglang==0.17.1 cargo-zigbuild==0.24.1)
CARGO_DEB_VERSION=3.8.0
DEFAULT_TARGETS=(aarch64-unknown-linux-musl arm-unknown-linux-musleabihf)
ALL_TARGETS=(aarch64-unknown-linux-musl arm-unknown-linux-musleabihf armv7-unknown-linux-musleabihf)
CLIP=tests/fixtures/clip-320x240-30fps.h264

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }

setup=no test=no deb=no
targets=()
out=target/cross/dist
while [ $# -gt 0 ]; do
    case $1 in
    --setup) setup=yes ;;
    --test) test=yes ;;
    --deb) deb=yes ;;
    --all) targets=("${ALL_TARGETS[@]}") ;;
    --target)
        [ $# -ge 2 ] || { echo "--target needs a value" >&2; exit 2; }
        targets+=("$2")
        shift
        ;;
    --target=*) targets+=("${1#--target=}") ;;
    --out)
        [ $# -ge 2 ] || { echo "--out needs a value" >&2; exit 2; }
        out=$2
        shift
        ;;
    --out=*) out=${1#--out=} ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ ${#targets[@]} -gt 0 ] || targets=("${DEFAULT_TARGETS[@]}")
for t in "${targets[@]}"; do
    case $t in
    aarch64-unknown-linux-musl | arm-unknown-linux-musleabihf | armv7-unknown-linux-musleabihf) ;;
    *) echo "unsupported target $t; supported: ${ALL_TARGETS[*]}" >&2; exit 2 ;;
    esac
done

TARGET_DIR=${CAMPUSH_CROSS_TARGET_DIR:-target/cross}
CACHE=${CAMPUSH_CROSS_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/campush-cross}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
mkdir -p "$TARGET_DIR" "$CACHE" "$out"
TARGET_DIR=$(cd "$TARGET_DIR" && pwd)
out=$(cd "$out" && pwd)

t0=$SECONDS
step() { printf '\n---- cross: %s (t=%ss)\n' "$*" "$((SECONDS - t0))"; }
die() { echo "cross: FAIL: $*" >&2; exit 1; }
passed=0 # checks that passed; any failure ends the script

on_terminal=no
if [ -t 0 ]; then on_terminal=yes; fi
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null; then
        # On a terminal sudo may ask for the password; in CI it must not wait for one.
        if [ "$on_terminal" = yes ]; then sudo "$@"; else sudo -n "$@"; fi
    else
        echo "need root (or sudo) to run: $*" >&2
        return 1
    fi
}

# ---------------------------------------------------------------------------------------------
# Tools

step "tools"
packages=(rustc-web cargo-web rust-web-src binutils python3-venv)
[ "$test" = yes ] && packages+=(qemu-user-static nginx libnginx-mod-rtmp ffmpeg)
missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
        missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$setup" = yes ]; then
        echo "installing: ${missing[*]}"
        as_root apt-get update </dev/null || echo "apt-get update failed; trying the install anyway"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
            install -y --no-install-recommends "${missing[@]}" </dev/null
    else
        die "missing Debian packages: ${missing[*]}; install them with
    sudo apt-get install ${missing[*]}
or run this script with --setup"
    fi
fi

# Debian's compiler, not whatever rustup put first on PATH.
DEB_CARGO=/usr/bin/cargo DEB_RUSTC=/usr/bin/rustc
if [ ! -x "$DEB_CARGO" ] || [ ! -x "$DEB_RUSTC" ]; then
    die "Debian's cargo/rustc not found in /usr/bin (packages cargo-web, rustc-web)"
fi
sysroot=$("$DEB_RUSTC" --print sysroot)
[ -f "$sysroot/lib/rustlib/src/rust/library/std/Cargo.toml" ] ||
    die "std sources missing under $sysroot/lib/rustlib/src/rust (package rust-web-src)"
echo "compiler: $("$DEB_RUSTC" --version)"

# zig + cargo-zigbuild in a venv, made once and kept in the cache.
VENV=$CACHE/venv
if [ "$(cat "$VENV/.campush-pins" 2>/dev/null)" != "${ZIG_PIP[*]}" ] ||
    ! "$VENV/bin/python" -m ziglang version >/dev/null 2>&1; then
    echo "creating $VENV with ${ZIG_PIP[*]}"
    rm -rf "$VENV"
    python=python3
    "$python" -m venv --help >/dev/null 2>&1 || python=/usr/bin/python3
    "$python" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --timeout 60 --retries 3 \
        "${ZIG_PIP[@]}"
    echo "${ZIG_PIP[*]}" >"$VENV/.campush-pins"
fi
zig_version=$("$VENV/bin/python" -m ziglang version) || die "zig does not run from $VENV"
echo "zig $zig_version, $("$VENV/bin/cargo-zigbuild" --version)"

# ---------------------------------------------------------------------------------------------
# Build

# The build's PATH: the venv first (cargo-zigbuild finds zig through its python), then Debian's
# cargo and rustc in /usr/bin ahead of any rustup proxies.
BUILD_PATH=$VENV/bin:/usr/bin:/bin
declare -A built=() sizes=()
for t in "${targets[@]}"; do
    step "build $t"
    flags_var=CARGO_TARGET_$(echo "$t" | tr 'a-z-' 'A-Z_')_RUSTFLAGS
    build_start=$SECONDS
    env -u RUSTC -u RUSTDOC -u RUSTUP_TOOLCHAIN -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS \
        -u CARGO_BUILD_RUSTFLAGS -u CARGO_BUILD_TARGET -u CARGO_TARGET_DIR \
        PATH="$BUILD_PATH" RUSTC_BOOTSTRAP=1 "$flags_var=-C link-self-contained=no" \
        cargo zigbuild --release --locked --target "$t" -Zbuild-std=std,panic_abort \
        -Zbuild-std-features=panic-unwind \
        --target-dir "$TARGET_DIR" </dev/null
    echo "built $t in $((SECONDS - build_start)) s"
    built[$t]=$TARGET_DIR/$t/release/campush
done

# ---------------------------------------------------------------------------------------------
# Check: static, stripped, right machine and architecture, within the size budget

step "check binaries"
for t in "${targets[@]}"; do
    bin=${built[$t]}
    [ -f "$bin" ] || die "$t: $bin was not built"
    header=$(readelf -hW "$bin")
    case $t in
    aarch64-*) machine=AArch64 arch= ;;
    arm-*) machine=ARM arch=v6 ;;
    armv7-*) machine=ARM arch=v7 ;;
    esac
    grep -Eq "Machine: +$machine\$" <<<"$header" || die "$t: not an $machine ELF:
$header"
    if readelf -lW "$bin" | grep -q 'INTERP'; then
        die "$t: has a program interpreter (dynamically linked): $(readelf -lW "$bin" | grep -A1 INTERP)"
    fi
    needed=$(readelf -dW "$bin" | grep '(NEEDED)' || true)
    [ -z "$needed" ] || die "$t: needs shared libraries:
$needed"
    if readelf -SW "$bin" | grep -q ' \.symtab '; then die "$t: not stripped (.symtab present)"; fi
    if [ -n "$arch" ]; then
        attrs=$(readelf -AW "$bin")
        grep -Eq "Tag_CPU_arch: $arch\$" <<<"$attrs" ||
            die "$t: expected ARM architecture $arch, the ELF says: $(grep Tag_CPU_arch: <<<"$attrs")"
        grep -q 'Tag_ABI_VFP_args: VFP registers' <<<"$attrs" ||
            die "$t: not hard-float (Tag_ABI_VFP_args), Raspberry Pi OS armhf needs it"
    fi
    size=$(stat -c %s "$bin")
    sizes[$t]=$size
    [ "$size" -le "$MAX_BYTES" ] || die "$t: $size bytes, over the budget of $MAX_BYTES ($MAX_KIB KiB)"
    cp "$bin" "$out/campush-$VERSION-$t"
    passed=$((passed + 1))
    printf 'ok %-32s %8d bytes (%s KiB of %s), static, stripped, %s%s\n' \
        "$t" "$size" "$((size / 1024))" "$MAX_KIB" "$machine" "${arch:+ $arch hard-float}"
done

# ---------------------------------------------------------------------------------------------
# Test under qemu-user: push the clip to a private nginx-rtmp on loopback, probe the recording

qemu_for() {
    case $1 in
    aarch64-*) echo "qemu-aarch64-static -cpu cortex-a53" ;;
    arm-*) echo "qemu-arm-static -cpu arm1176" ;;
    armv7-*) echo "qemu-arm-static -cpu cortex-a7" ;;
    esac
}

declare -A pushed=()
if [ "$test" = yes ]; then
    step "qemu-user push test"
    nginx_find rtmp ||
        die "nginx with the RTMP module is not installed (missing: ${NGINX_MISSING[*]})"
    [ -f "$CLIP" ] || die "$CLIP missing"

    work=$(mktemp -d)
    cleanup() {
        nginx_stop
        rm -rf "$work"
    }
    trap cleanup EXIT
    mkdir "$work/rec"
    nginx_up "$work" --record "$work/rec" || die "nginx-rtmp did not start: $(nginx_log_tail 20)"
    port=$NGINX_PORT
    echo "nginx-rtmp on 127.0.0.1:$port"

    expected_frames=$(timeout 60 ffprobe -v error -count_frames -select_streams v:0 \
        -show_entries stream=nb_read_frames -of csv=p=0 -f h264 "$CLIP" | tr -d ',\n')

    for t in "${targets[@]}"; do
        read -r -a qemu <<<"$(qemu_for "$t")"
        command -v "${qemu[0]}" >/dev/null || die "${qemu[0]} not found (package qemu-user-static)"
        bin=${built[$t]}
        key=cross-$t
        echo "== $t under ${qemu[*]}"
        version=$(timeout 30 "${qemu[@]}" "$bin" --version </dev/null) ||
            die "$t: --version failed under ${qemu[*]}"
        echo "$version"
        # The template as installed: its key file (/etc/campush/stream.key, which the .deb and
        # deploy/remote-install.sh make) stands in $work.
        echo xxxx-xxxx-xxxx-xxxx-xxxx >"$work/stream.key"
        sed "s|\"/etc/campush/stream.key\"|\"$work/stream.key\"|" examples/campush.toml >"$work/campush.toml"
        timeout 30 "${qemu[@]}" "$bin" check-config "$work/campush.toml" </dev/null >/dev/null ||
            die "$t: check-config examples/campush.toml (as installed) failed under ${qemu[*]}"
        before=$(nginx_disconnects)
        push_start=$SECONDS
        set +e
        timeout 120 "${qemu[@]}" "$bin" run --url "rtmp://127.0.0.1:$port/live/$key" \
            --source "file:$CLIP" --no-pace </dev/null 2>"$work/$key.log"
        code=$?
        set -e
        sed 's/^/    /' "$work/$key.log"
        [ "$code" -eq 0 ] || die "$t: campush exited with $code under ${qemu[*]}"
        nginx_wait_disconnect "$before" # nginx closes the recording when the publisher leaves
        rec=$work/rec/$key.flv
        [ -s "$rec" ] || die "$t: no recording $rec; nginx said:
$(nginx_log_tail 20)"
        probe=$(timeout 60 ffprobe -v error -count_frames -select_streams v:0 \
            -show_entries stream=codec_name,width,height,nb_read_frames -of csv=p=0 "$rec" |
            tr -d '\n')
        errors=$(timeout 60 ffmpeg -nostdin -v error -i "$rec" -f null - 2>&1 || echo "(ffmpeg failed)")
        [ "$probe" = "h264,320,240,$expected_frames" ] ||
            die "$t: recording is '$probe', expected 'h264,320,240,$expected_frames'"
        [ -z "$errors" ] || die "$t: the recording does not decode cleanly:
$errors"
        pushed[$t]="$expected_frames frames h264 320x240, decodes cleanly ($((SECONDS - push_start)) s)"
        passed=$((passed + 1))
        echo "ok $t: recording has ${pushed[$t]}"
    done
fi

# ---------------------------------------------------------------------------------------------
# .deb packages

declare -A debs=()
if [ "$deb" = yes ]; then
    step "deb packages"
    CARGO_DEB=$CACHE/cargo-deb/bin/cargo-deb
    if ! "$CARGO_DEB" --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
        host_cargo=$(command -v cargo || echo "$DEB_CARGO")
        echo "installing cargo-deb $CARGO_DEB_VERSION into $CACHE/cargo-deb"
        "$host_cargo" install cargo-deb --version "$CARGO_DEB_VERSION" --locked \
            --root "$CACHE/cargo-deb" </dev/null
    fi
    unit_bin=$(sed -n 's/^ExecStart=.*\(\/usr\/[a-z/]*bin\/campush\).*/\1/p' systemd/campush.service)
    [ "$unit_bin" = /usr/bin/campush ] ||
        die "systemd/campush.service runs '$unit_bin', but the .deb installs /usr/bin/campush"
    for t in "${targets[@]}"; do
        case $t in
        aarch64-*) debarch=arm64 ;;
        arm-*) debarch=armhf ;;
        *) continue ;; # armv7: the armhf package carries the ARMv6 build, which runs everywhere
        esac
        deb=$out/campush_${VERSION}-1_$debarch.deb
        rm -f "$deb"
        CARGO_TARGET_DIR=$TARGET_DIR "$CARGO_DEB" --no-build --no-strip --target "$t" \
            --output "$deb" </dev/null
        [ -s "$deb" ] || die "cargo-deb made no $deb"

        info=$(dpkg-deb --info "$deb")
        contents=$(dpkg-deb --contents "$deb")
        [ "$(dpkg-deb --field "$deb" Architecture)" = "$debarch" ] ||
            die "$deb: Architecture is $(dpkg-deb --field "$deb" Architecture), expected $debarch"
        for path in ./usr/bin/campush ./usr/lib/systemd/system/campush.service \
            ./etc/campush/campush.toml ./usr/share/doc/campush/copyright; do
            grep -q " $path\$" <<<"$contents" || die "$deb lacks $path:
$contents"
        done
        grep -q '^-rwxr-xr-x .* ./usr/bin/campush$' <<<"$contents" || die "$deb: campush not 755"
        ctl=$(mktemp -d)
        dpkg-deb --control "$deb" "$ctl/control"
        [ "$(cat "$ctl/control/conffiles")" = /etc/campush/campush.toml ] ||
            die "$deb: conffiles is '$(cat "$ctl/control/conffiles" 2>/dev/null)'"
        for script in postinst prerm postrm; do
            [ -f "$ctl/control/$script" ] || die "$deb: no $script"
            sh -n "$ctl/control/$script" || die "$deb: $script is not valid sh"
        done
        grep -q 'useradd --system' "$ctl/control/postinst" || die "$deb: postinst creates no user"
        grep -q 'deb-systemd-helper enable campush.service' "$ctl/control/postinst" ||
            die "$deb: postinst does not enable campush.service"
        dpkg-deb --extract "$deb" "$ctl/root"
        cmp -s "$ctl/root/usr/bin/campush" "${built[$t]}" ||
            die "$deb: usr/bin/campush is not the binary built for $t"
        rm -rf "$ctl"
        passed=$((passed + 1))
        debs[$t]="$(basename "$deb") ($(stat -c %s "$deb") bytes)"
        echo "ok $(basename "$deb"): Architecture $debarch, binary, unit, conffile /etc/campush/campush.toml, maintainer scripts"
        echo "$info" | sed -n 's/^ \(Package\|Version\|Architecture\|Installed-Size\|Depends\):/   \1:/p'
    done
fi

# ---------------------------------------------------------------------------------------------

step "summary"
(cd "$out" && find . -maxdepth 1 -type f -name 'campush*' -printf '%f\n' | sort |
    xargs -r sha256sum -- >SHA256SUMS)
for t in "${targets[@]}"; do
    printf '%-32s %8d bytes stripped' "$t" "${sizes[$t]}"
    [ -n "${pushed[$t]:-}" ] && printf '; qemu push: %s' "${pushed[$t]}"
    [ -n "${debs[$t]:-}" ] && printf '; %s' "${debs[$t]}"
    printf '\n'
done
echo "output in $out:"
ls -l "$out"
echo "cross: all done in $((SECONDS - t0)) s"
echo "cross: $passed passed, 0 failed"
