#!/usr/bin/env bash
# Installs (or upgrades) campush on a Raspberry Pi over ssh, from the machine that built it.
#
# Usage: deploy/install.sh [options] [USER@]HOST
#   --arch arm64|armhf  the board's Debian architecture; default: ask it (dpkg --print-architecture).
#                       arm64 gets the aarch64 binary, armhf the ARMv6 one (runs on every Pi)
#   --binary FILE       install this binary (default: target/cross/dist/campush-VERSION-TARGET,
#                       as scripts/cross-build.sh makes it)
#   --deb FILE          install this .deb instead of a bare binary (dpkg -i on the board)
#   --no-start          enable the service but do not (re)start it now
#   -p, --port N        ssh port
#   -i FILE             ssh identity (private key) file
#   -n, --dry-run       print every command (and what runs on the board); run none of them, touch
#                       no network
#
# What happens: one directory (~/campush-install) is copied to the board with scp: the binary
# (or .deb), systemd/campush.service, examples/campush.toml and deploy/remote-install.sh; then
# `sudo sh remote-install.sh` runs there over ssh (see that file: installs /usr/bin/campush and
# the unit, creates the `campush` user in the groups video and gpio, puts the configuration
# template on the boot partition unless one is there, enables the service and restarts it), and
# the directory is removed. Running it again upgrades in place; an edited configuration is kept.
#
# One ssh connection is shared by every step, so a password is asked for once (better: copy
# your key with ssh-copy-id first). sudo on the board may ask for the user's password.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }

arch='' binary='' deb='' start=yes dry=no host=''
ssh_opts=() scp_opts=()
while [ $# -gt 0 ]; do
    case $1 in
    --arch) arch=${2:?--arch needs a value}; shift ;;
    --binary) binary=${2:?--binary needs a value}; shift ;;
    --deb) deb=${2:?--deb needs a value}; shift ;;
    --no-start) start=no ;;
    -p | --port)
        ssh_opts+=(-p "${2:?--port needs a value}")
        scp_opts+=(-P "$2")
        shift
        ;;
    -i)
        ssh_opts+=(-i "${2:?-i needs a value}")
        scp_opts+=(-i "$2")
        shift
        ;;
    -n | --dry-run) dry=yes ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    *)
        [ -z "$host" ] || { echo "one host only: $host, $1" >&2; exit 2; }
        host=$1
        ;;
    esac
    shift
done
[ -n "$host" ] || { usage >&2; exit 2; }
# The host reaches ssh and scp as an argument: it must not read as an option (-oProxyCommand=...)
# or carry anything but a [USER@]HOST (names, IPv4, IPv6 in brackets with a zone).
case $host in
-* | *[!A-Za-z0-9@._:%+\[\]-]*) echo "not a [USER@]HOST: '$host'" >&2; exit 2 ;;
esac
case $arch in "" | arm64 | armhf) ;; *) echo "--arch must be arm64 or armhf" >&2; exit 2 ;; esac
[ -z "$binary" ] || [ -z "$deb" ] || { echo "--binary and --deb exclude each other" >&2; exit 2; }

# One master connection for every ssh/scp below (ControlPersist closes it a minute after use).
if [ "$dry" = yes ]; then
    control_dir=${TMPDIR:-/tmp}/campush-deploy.XXXXXX # shown, never created
else
    control_dir=$(mktemp -d)
    trap 'ssh -o ControlPath="$control_dir/%C" -O exit "$host" 2>/dev/null || true; rm -rf "$control_dir"' EXIT
fi
shared=(-o ControlMaster=auto -o "ControlPath=$control_dir/%C" -o ControlPersist=60)
ssh_opts+=("${shared[@]}")
scp_opts+=("${shared[@]}")

# Prints a command as one would type it: words with special characters in single quotes.
show() {
    local word out='+'
    for word in "$@"; do
        if [[ $word =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then
            out+=" $word"
        else
            out+=" '${word//\'/\'\\\'\'}'"
        fi
    done
    echo "$out"
}
# Prints a command; runs it unless this is a dry run.
run() {
    show "$@"
    [ "$dry" = yes ] || "$@"
}

if [ "$dry" = yes ]; then
    echo "dry run: printing the commands for $host; nothing is copied, run or connected to"
fi

staging=campush-install
files=(systemd/campush.service examples/campush.toml deploy/remote-install.sh)
remote_args=()
[ "$start" = yes ] || remote_args+=(--no-start)

if [ -n "$deb" ]; then
    [ -f "$deb" ] || [ "$dry" = yes ] || { echo "no such .deb: $deb" >&2; exit 1; }
    files+=("$deb")
    # Copied under a fixed name: the user's file name never reaches the board's shell.
    remote_args+=(--deb campush.deb)
else
    if [ -z "$binary" ]; then
        if [ -z "$arch" ]; then
            if [ "$dry" = yes ]; then
                run ssh "${ssh_opts[@]}" "$host" dpkg --print-architecture
                arch=arm64
                echo "dry run: assuming the board answers $arch (pass --arch to choose)"
            else
                show ssh "${ssh_opts[@]}" "$host" dpkg --print-architecture
                arch=$(ssh "${ssh_opts[@]}" "$host" dpkg --print-architecture </dev/null)
                echo "the board's architecture: $arch"
            fi
        fi
        case $arch in
        arm64) target=aarch64-unknown-linux-musl ;;
        armhf) target=arm-unknown-linux-musleabihf ;;
        *) echo "unsupported architecture '$arch': campush ships for arm64 and armhf" >&2; exit 1 ;;
        esac
        version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
        binary=target/cross/dist/campush-$version-$target
    fi
    if [ ! -f "$binary" ] && [ "$dry" = no ]; then
        echo "no binary at $binary: build it with scripts/cross-build.sh (or pass --binary)" >&2
        exit 1
    fi
    # The board runs whatever is named "campush" in the staging directory.
    files+=("$binary")
fi

run ssh "${ssh_opts[@]}" "$host" "rm -rf $staging && mkdir -p $staging"
# Copy everything under its final name (scp renames the binary to campush on the way).
for f in "${files[@]}"; do
    name=$(basename "$f")
    [ "$f" = "$binary" ] && name=campush
    [ -n "$deb" ] && [ "$f" = "$deb" ] && name=campush.deb
    run scp -q "${scp_opts[@]}" "$f" "$host:$staging/$name"
done
# Every word of the command the board's shell runs is quoted (the words are ours today; the
# quoting keeps it so when one comes from the user).
quote() {
    if [[ $1 =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then printf '%s' "$1"; else printf "'%s'" "${1//\'/\'\\\'\'}"; fi
}
remote="sudo sh $staging/remote-install.sh"
for word in "${remote_args[@]}"; do remote+=" $(quote "$word")"; done
remote+="; rc=\$?; rm -rf $staging; exit \$rc"
run ssh -t "${ssh_opts[@]}" "$host" "$remote"
if [ "$dry" = yes ]; then
    echo "dry run: done, nothing was run"
else
    echo "done. Follow the service with: ssh $host journalctl -u campush -f"
fi
