#!/usr/bin/env bash
# Boots a Debian 6.1 kernel under qemu (TCG; no KVM needed) with a simulated GPIO chip and runs
# campush's GPIO status LED against it (init.sh has the scenarios). Called by tests/gpio_guest.rs.
#
#   run.sh --fetch              download the Debian packages and build gpio-sim.ko (network)
#   run.sh CAMPUSH OUTDIR       boot and test (no network; exits 77 if --fetch was not run)
#
# CAMPUSH: a static x86_64 campush. OUTDIR: the initramfs and the guest's console log.
#
# Debian's kernel does not build gpio-sim (nor gpio-mockup, nor the irq_sim they need), so this
# builds gpio-sim out of tree, from linux-source-6.1's drivers/gpio/gpio-sim.c with
# kernel/irq/irq_sim.c linked into the same module, against the unpacked linux-headers and
# linux-kbuild packages of the same kernel. irq_sim.c calls irq_to_desc(), which 6.1 does not
# export; generic_handle_irq() does the same for it (and no interrupt is used here anyway).
#
# Debian packages and the built module are cached in $CAMPUSH_GUEST_CACHE (default
# ~/.cache/campush-guest, shared with tests/guest/run.sh), fetched with apt-get by --fetch
# (.ci/run does it with the other installs). Every wait is bounded; the guest has no network device.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# One per-user cache for both qemu guests (tests/guest/run.sh uses the same default), next to
# the cross tools' ~/.cache/campush-cross: the kernel packages are the same for both guests,
# depend on neither the checkout nor the build, and are hundreds of MB, so every clone and
# worktree shares one download and `cargo clean` does not throw it away.
CACHE=${CAMPUSH_GUEST_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/campush-guest}
DEBS=$CACHE/debs
FETCH=no
if [ "${1:-}" = --fetch ]; then
    FETCH=yes
else
    [ $# -eq 2 ] || { echo "usage: run.sh --fetch | run.sh CAMPUSH OUTDIR" >&2; exit 2; }
    CAMPUSH=$(realpath "$1")
    OUT=$(realpath -m "$2")
    mkdir -p "$OUT"
fi
mkdir -p "$DEBS"
t0=$SECONDS
note() { printf '[gpio-guest %3ss] %s\n' "$((SECONDS - t0))" "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi; }

# --- Debian packages ------------------------------------------------------------------------

abi_from_apt() {
    apt-cache depends linux-image-amd64 2>/dev/null |
        sed -n 's/.*Depends: linux-image-\(6\.1\.0-[0-9]*\)-amd64.*/\1/p' | head -n1
}
ABI=$(abi_from_apt)
if [ -z "$ABI" ]; then
    ABI=$(find "$DEBS" -name 'linux-image-6.1.0-*-amd64_*.deb' -printf '%f\n' 2>/dev/null |
        sed -n 's/^linux-image-\(6\.1\.0-[0-9]*\)-amd64_.*/\1/p' | sort -V | tail -n1)
fi
if [ -z "$ABI" ] && [ $FETCH = yes ]; then
    note "no package lists: apt-get update"
    as_root apt-get update -qq </dev/null >&2
    ABI=$(abi_from_apt)
fi
if [ -z "$ABI" ]; then
    echo "no Debian 6.1 kernel package cached in $DEBS: run $0 --fetch first" >&2
    [ $FETCH = yes ] && exit 2
    exit 77
fi
PKGS=("linux-image-$ABI-amd64" "linux-headers-$ABI-amd64" "linux-headers-$ABI-common"
    linux-kbuild-6.1 linux-source-6.1 busybox-static)
# The cache is shared with tests/guest/run.sh, which keeps arm64 packages there too (busybox-static
# of both architectures): only amd64 and architecture-independent packages count here.
debs_of() {
    compgen -G "$DEBS/${1}_*_amd64.deb" || true
    compgen -G "$DEBS/${1}_*_all.deb" || true
}
have() { [ -n "$(debs_of "$1")" ]; }
missing=()
for p in "${PKGS[@]}"; do have "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ] && [ $FETCH = no ]; then
    echo "not cached in $DEBS: ${missing[*]}; run $0 --fetch first" >&2
    exit 77
fi
if [ ${#missing[@]} -gt 0 ]; then
    note "downloading ${missing[*]}"
    (cd "$DEBS" && timeout 600 apt-get download "${missing[@]}" </dev/null >&2)
fi
deb() { debs_of "$1" | sort -V | tail -n1; }

# --- kernel, busybox, gpio-sim.ko -----------------------------------------------------------

X=$CACHE/gpio-$ABI # next to tests/guest/run.sh's ARCH-KERNEL directories
if [ ! -f "$X/gpio-sim.ko" ]; then
    rm -rf "$X"
    mkdir -p "$X/root" "$X/mod"
    for p in "${PKGS[@]}"; do
        [ "$p" = linux-source-6.1 ] || dpkg-deb -x "$(deb "$p")" "$X/root"
    done
    note "unpacking gpio-sim.c, gpiolib.h and irq_sim.c from linux-source-6.1"
    dpkg-deb --fsys-tarfile "$(deb linux-source-6.1)" |
        tar -xO --wildcards './usr/src/linux-source-6.1.tar.xz' |
        tar -xJ -C "$X" --wildcards 'linux-source-6.1/drivers/gpio/gpio-sim.c' \
            'linux-source-6.1/drivers/gpio/gpiolib.h' 'linux-source-6.1/kernel/irq/irq_sim.c'
    S=$X/linux-source-6.1
    cp "$S/drivers/gpio/gpio-sim.c" "$X/mod/gpio-sim-main.c"
    cp "$S/drivers/gpio/gpiolib.h" "$S/kernel/irq/irq_sim.c" "$X/mod/"
    sed -i 's/handle_simple_irq(irq_to_desc(irqnum));/generic_handle_irq(irqnum);/' "$X/mod/irq_sim.c"
    printf 'obj-m := gpio-sim.o\ngpio-sim-y := gpio-sim-main.o irq_sim.o\n' >"$X/mod/Kbuild"
    # The headers' Makefile includes the common headers by their installed path: point it here.
    H=$X/root/usr/src/linux-headers-$ABI-amd64
    sed -i "s#^include .*#include $X/root/usr/src/linux-headers-$ABI-common/Makefile#" "$H/Makefile"
    note "building gpio-sim.ko"
    timeout 300 make -s -C "$H" M="$X/mod" modules >&2
    # Keep what the guest needs; the unpacked packages are half a gigabyte.
    cp "$X/root/boot/vmlinuz-$ABI-amd64" "$X/vmlinuz"
    cp "$X/root/lib/modules/$ABI-amd64/kernel/fs/configfs/configfs.ko" "$X/configfs.ko"
    cp "$X/root/bin/busybox" "$X/busybox"
    cp "$X/mod/gpio-sim.ko" "$X/gpio-sim.ko"
    rm -rf "$X/root" "$X/mod" "$X/linux-source-6.1"
fi
if [ $FETCH = yes ]; then
    note "ready: $X/gpio-sim.ko"
    exit 0
fi

# --- initramfs and boot ---------------------------------------------------------------------

I=$OUT/initramfs
rm -rf "$I"
mkdir -p "$I/bin" "$I/lib/modules" "$I/proc" "$I/sys" "$I/dev"
cp "$X/busybox" "$I/bin/busybox"
cp "$HERE/init.sh" "$I/init"
cp "$CAMPUSH" "$I/campush"
cp "$HERE/../fixtures/clip-320x240-30fps.h264" "$I/clip.h264"
cp "$X/configfs.ko" "$X/gpio-sim.ko" "$I/lib/modules/"
chmod +x "$I/init" "$I/campush"
(cd "$I" && find . | "$X/busybox" cpio -o -H newc 2>/dev/null) >"$OUT/initrd"

note "booting $ABI under qemu (TCG)"
set +e
timeout 300 qemu-system-x86_64 -accel tcg -m 512 -smp 1 -nographic -no-reboot -nic none \
    -kernel "$X/vmlinuz" -initrd "$OUT/initrd" \
    -append "console=ttyS0 panic=-1 quiet loglevel=3" </dev/null >"$OUT/console.log" 2>&1
qemu=$?
set -e
note "qemu exited ($qemu)"
tr -d '\r' <"$OUT/console.log" | grep -E '^(CHECK|GPIO-GUEST|    campush)' >&2 || true
grep -q '^GPIO-GUEST: PASS' <(tr -d '\r' <"$OUT/console.log")
