#!/usr/bin/env bash
# Installs the cross-built .debs (target/cross/dist, from `scripts/cross-build.sh --deb`) into a
# throwaway Debian bookworm root and runs each package's life cycle there with dpkg, maintainer
# scripts included: install, reinstall over an edited conffile, remove, purge. Stream keys at
# rest: /etc/campush is root:campush 0750, the conffile and the key file the template names
# (/etc/campush/stream.key) root:campush 0640; the campush user can read them (check-config run
# as campush inside the root, with no warning), nobody else can.
#
# The root is a debootstrap minbase (cached as a tarball next to the cross tools); a fresh copy
# per package. It is amd64 and the packages are arm64/armhf, so dpkg is told to ignore the
# architecture; the maintainer scripts are plain sh and run for real (useradd, usermod,
# deb-systemd-helper). The installed binary runs inside the root, as root and as campush,
# under a copy of the static qemu-user. Needs root (chroot).
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "deb-install-test: FAIL: $*" >&2; exit 1; }
passed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }

if [ "$(id -u)" -ne 0 ] || ! command -v chroot >/dev/null; then
    echo "SKIP: deb-install-test needs root and chroot"
    echo "deb-install-test: 0 passed, 0 failed, 1 skipped"
    exit 0
fi
dist=${1:-target/cross/dist}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
cache=${CAMPUSH_CROSS_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/campush-cross}
base=$cache/bookworm-minbase.tar

if [ ! -s "$base" ]; then
    command -v debootstrap >/dev/null ||
        env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
            install -y --no-install-recommends debootstrap </dev/null
    echo "making $base (debootstrap minbase bookworm)"
    mkdir -p "$cache"
    tmp=$(mktemp -d)
    timeout 900 debootstrap --variant=minbase --include=passwd,init-system-helpers \
        bookworm "$tmp/root" >"$tmp/debootstrap.log" 2>&1 ||
        { tail -n 30 "$tmp/debootstrap.log"; rm -rf "$tmp"; fail "debootstrap failed"; }
    tar -C "$tmp/root" -cf "$base.part" .
    mv "$base.part" "$base"
    rm -rf "$tmp"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for debarch in arm64 armhf; do
    case $debarch in
    arm64) target=aarch64-unknown-linux-musl qemu=(qemu-aarch64-static -cpu cortex-a53) ;;
    armhf) target=arm-unknown-linux-musleabihf qemu=(qemu-arm-static -cpu arm1176) ;;
    esac
    deb=$dist/campush_${version}-1_$debarch.deb
    [ -f "$deb" ] || fail "no $deb: run scripts/cross-build.sh --deb first"
    R=$work/$debarch
    mkdir "$R"
    tar -C "$R" -xf "$base"
    chroot "$R" groupadd --system gpio # as on Raspberry Pi OS
    cp "$deb" "$R/tmp/campush.deb"
    dpkg_in() { chroot "$R" dpkg --force-architecture "$@" >"$work/dpkg.log" 2>&1 ||
        fail "$debarch: dpkg $* failed: $(cat "$work/dpkg.log")"; }
    conf=$R/etc/campush/campush.toml
    key=$R/etc/campush/stream.key
    wants=$R/etc/systemd/system/multi-user.target.wants/campush.service
    # owner:group mode of a path in the root, by the root's names.
    mode_in() { chroot "$R" stat -c '%U:%G %a' "$1"; }
    modes_ok() {
        [ "$(mode_in /etc/campush)" = "root:campush 750" ] ||
            fail "$debarch: /etc/campush is $(mode_in /etc/campush), not root:campush 750"
        for f in /etc/campush/campush.toml /etc/campush/stream.key; do
            [ "$(mode_in "$f")" = "root:campush 640" ] ||
                fail "$debarch: $f is $(mode_in "$f"), not root:campush 640"
        done
    }
    # The installed campush, run inside the root (where /etc/campush/stream.key is) as USER
    # (qemu-user copied in).
    cp "$(command -v "${qemu[0]}")" "$R/usr/local/bin/"
    campush_as() { # USER args...
        local ids
        ids=$(chroot "$R" id -u "$1"):$(chroot "$R" id -g "$1")
        shift
        timeout 30 chroot --userspec="$ids" "$R" "/usr/local/bin/${qemu[0]}" "${qemu[@]:1}" \
            /usr/bin/campush "$@"
    }

    # install
    dpkg_in -i /tmp/campush.deb
    groups=$(chroot "$R" id -nG campush) || fail "$debarch: no campush user after install"
    for g in video gpio; do
        tr ' ' '\n' <<<"$groups" | grep -qx "$g" || fail "$debarch: campush not in $g ($groups)"
    done
    chroot "$R" getent passwd campush | grep -q ':/usr/sbin/nologin$' || fail "$debarch: campush can log in"
    cmp -s "$R/usr/bin/campush" "$dist/campush-$version-$target" ||
        fail "$debarch: /usr/bin/campush is not the $target build"
    [ -f "$conf" ] || fail "$debarch: no /etc/campush/campush.toml"
    [ -L "$wants" ] || fail "$debarch: campush.service not enabled"
    [ -f "$R/usr/lib/systemd/system/campush.service" ] || fail "$debarch: no unit"
    out=$(campush_as root check-config /etc/campush/campush.toml 2>&1) ||
        fail "$debarch: the installed campush rejects the installed configuration: $out"
    ok "$debarch: installed: user campush (groups $groups), binary, conffile, unit enabled, check-config passes"
    modes_ok
    [ "$(cat "$key")" = xxxx-xxxx-xxxx-xxxx-xxxx ] || fail "$debarch: no placeholder key in stream.key"
    out=$(campush_as campush check-config 2>&1) ||
        fail "$debarch: check-config as the campush user (the service's view) fails: $out"
    grep -q '^file = /etc/campush/campush.toml$' <<<"$out" || fail "$debarch: not the conffile: $out"
    ! grep -q 'warning' <<<"$out" || fail "$debarch: the installed files are warned about: $out"
    ok "$debarch: keys at rest: /etc/campush root:campush 0750, conffile and stream.key 0640, readable by campush, no warning"

    # reinstall (dpkg calls postinst configure with the old version) over an edited conffile,
    # left world-readable as an older package made it, and the user's own key
    echo '# edited by the user' >>"$conf"
    chmod 0644 "$conf"
    echo 'sk-the-users-own' >"$key"
    dpkg_in -i /tmp/campush.deb
    tail -n1 "$conf" | grep -q 'edited by the user' || fail "$debarch: reinstall replaced the edited conffile"
    [ "$(cat "$key")" = sk-the-users-own ] || fail "$debarch: reinstall replaced the user's key"
    modes_ok
    [ "$(grep -c '^campush:' "$R/etc/passwd")" = 1 ] || fail "$debarch: reinstall duplicated the user"
    [ -L "$wants" ] || fail "$debarch: reinstall disabled the unit"
    ok "$debarch: reinstalled: edited conffile and key kept (conffile 0640 again), one user, still enabled"

    # remove: the program goes, the configuration stays, the unit is masked
    dpkg_in -r campush
    [ ! -e "$R/usr/bin/campush" ] || fail "$debarch: remove left /usr/bin/campush"
    [ -f "$conf" ] || fail "$debarch: remove deleted the conffile"
    [ -f "$key" ] || fail "$debarch: remove deleted the key file"
    [ "$(readlink "$R/etc/systemd/system/campush.service")" = /dev/null ] ||
        fail "$debarch: remove did not mask campush.service"
    # purge: the configuration and the unit's state go; the user stays (Debian practice)
    dpkg_in -P campush
    [ ! -e "$R/etc/campush" ] || fail "$debarch: purge left /etc/campush"
    if [ -e "$wants" ] || [ -L "$R/etc/systemd/system/campush.service" ]; then
        fail "$debarch: purge left systemd links: $(ls -l "$R/etc/systemd/system")"
    fi
    ok "$debarch: removed (conffile and key kept, unit masked) and purged (configuration, key and links gone)"
    rm -rf "$R"
done
echo "deb-install-test: $passed passed, 0 failed"
