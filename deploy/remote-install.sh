#!/bin/sh
# Installs campush on the board it runs on, as root. deploy/install.sh copies this script, the
# binary (or a .deb), the systemd unit and the configuration template into one directory on the
# board and runs it there with sudo; it can also be run by hand from such a directory:
#
#   sudo sh remote-install.sh [--no-start] [--deb FILE] [--root DIR]
#
# Steps, each safe to repeat (running it twice changes nothing the first run did not):
# 1. the program: campush -> /usr/bin/campush (replaced atomically: a running service keeps its
#    old copy until restarted), or with --deb FILE: `dpkg -i FILE`;
# 2. the unit: campush.service -> /etc/systemd/system/ (not with --deb: the package has it);
# 3. the `campush` system user (no login, no home), added to the groups `video` (camera,
#    encoder) and `gpio` (status LED) where the board has them;
# 4. where stream keys are kept: /etc/campush (owner root, group campush, mode 0750) with the
#    key file the template names, /etc/campush/stream.key (0640, a placeholder key); never
#    touches an existing directory or key file (the .deb's postinst does the same);
# 5. the configuration: campush.toml -> the boot partition (/boot/firmware, or /boot on older
#    systems), where a user can edit it from any PC; never overwrites an existing one. The key
#    stays out of it: every user of the board can read the FAT boot partition;
# 6. `systemctl enable campush`, then `systemctl restart campush` so that a new binary runs now;
#    but not when step 5 just wrote the template (it has no stream key yet), nor with
#    --no-start: the service then starts at the next boot or with `systemctl start campush`.
#
# --root DIR installs into DIR instead of / (for tests): no dpkg, no running systemd.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
start=yes deb='' ROOT=''
while [ $# -gt 0 ]; do
    case $1 in
    --no-start) start=no ;;
    --deb) deb=$2; shift ;;
    --root) ROOT=$2; shift ;;
    *) echo "remote-install.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

say() { echo "campush install: $*"; }

if [ "$(id -u)" -ne 0 ]; then
    echo "campush install: run me as root (sudo sh $0)" >&2
    exit 1
fi

has_user() {
    if [ -n "$ROOT" ]; then grep -q "^$1:" "$ROOT/etc/passwd"; else getent passwd "$1" >/dev/null; fi
}
has_group() {
    if [ -n "$ROOT" ]; then grep -q "^$1:" "$ROOT/etc/group"; else getent group "$1" >/dev/null; fi
}
in_group() { # user group
    if [ -n "$ROOT" ]; then
        grep "^$2:" "$ROOT/etc/group" | cut -d: -f4 | tr ',' '\n' | grep -qx "$1"
    else
        id -nG "$1" | tr ' ' '\n' | grep -qx "$2"
    fi
}
root_opt() { if [ -n "$ROOT" ]; then echo "--root=$ROOT"; fi; }

# 1 + 2: program and unit
if [ -n "$deb" ]; then
    [ -z "$ROOT" ] || { echo "--deb cannot be combined with --root" >&2; exit 2; }
    case $deb in /*) ;; *) deb=$here/$deb ;; esac
    say "installing the package $(basename "$deb")"
    # dpkg, not apt: it also reinstalls a rebuilt package of the same version. Its only
    # dependency (passwd: useradd) is on every Debian system.
    DEBIAN_FRONTEND=noninteractive dpkg -i "$deb"
    if [ -f /etc/systemd/system/campush.service ]; then
        say "note: /etc/systemd/system/campush.service (an install without the .deb) overrides the packaged unit; delete it to use the package's"
    fi
else
    mkdir -p "$ROOT/usr/bin" "$ROOT/etc/systemd/system"
    install -m 0755 "$here/campush" "$ROOT/usr/bin/.campush.new"
    mv -f "$ROOT/usr/bin/.campush.new" "$ROOT/usr/bin/campush"
    say "installed /usr/bin/campush ($("$ROOT/usr/bin/campush" --version 2>/dev/null || echo 'cannot run here'))"
    install -m 0644 "$here/campush.service" "$ROOT/etc/systemd/system/campush.service"
    say "installed /etc/systemd/system/campush.service"
fi

# 3: user
if has_user campush; then
    say "user campush exists"
else
    # shellcheck disable=SC2046 # root_opt is empty or one word
    useradd $(root_opt) --system --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin --comment "campush streamer" campush
    say "created user campush"
fi
# The unit names both groups (SupplementaryGroups=video gpio): create gpio if the board has none.
if ! has_group gpio; then
    # shellcheck disable=SC2046 # root_opt is empty or one word
    groupadd $(root_opt) --system gpio
    say "created group gpio"
fi
for group in video gpio; do
    if ! has_group "$group"; then
        say "no group $group on this system; skipped"
    elif in_group campush "$group"; then
        :
    else
        # shellcheck disable=SC2046
        usermod $(root_opt) --append --groups "$group" campush
        say "added campush to group $group"
    fi
done

# 4: the key directory and its placeholder key file, for root and the service only. Numeric
# owner and group: with --root, the group is the one in DIR's /etc/group, not this system's.
if [ -n "$ROOT" ]; then
    gid=$(grep '^campush:' "$ROOT/etc/group" | cut -d: -f3)
else
    gid=$(getent group campush | cut -d: -f3)
fi
if [ -z "$gid" ]; then
    echo "campush install: there is no group campush (the user campush needs one of its own)" >&2
    exit 1
fi
keys=$ROOT/etc/campush
if [ -d "$keys" ]; then
    say "keeping the existing /etc/campush"
else
    mkdir -p "$keys"
    chown "0:$gid" "$keys"
    chmod 0750 "$keys"
    say "created /etc/campush (owner root, group campush, mode 0750)"
fi
if [ -e "$keys/stream.key" ] || [ -L "$keys/stream.key" ]; then
    say "keeping the existing /etc/campush/stream.key"
else
    (umask 0077 && echo "xxxx-xxxx-xxxx-xxxx-xxxx" >"$keys/stream.key")
    chown "0:$gid" "$keys/stream.key"
    chmod 0640 "$keys/stream.key"
    say "created /etc/campush/stream.key (mode 0640) with a placeholder: put your stream key in it (sudo nano /etc/campush/stream.key)"
fi

# 5: configuration on the boot partition
config=
for f in "$ROOT/boot/firmware/campush.toml" "$ROOT/boot/campush.toml"; do
    if [ -f "$f" ]; then config=$f; break; fi
done
fresh_config=no
if [ -n "$config" ]; then
    say "keeping the existing ${config#"$ROOT"}"
else
    if [ -d "$ROOT/boot/firmware" ]; then config=$ROOT/boot/firmware/campush.toml; else config=$ROOT/boot/campush.toml; fi
    mkdir -p "$(dirname "$config")"
    cp "$here/campush.toml" "$config"
    fresh_config=yes
    say "wrote the template ${config#"$ROOT"}: put your server URL in it (and your stream key in /etc/campush/stream.key)"
fi

# 6: enable, (re)start
if [ -n "$ROOT" ]; then
    systemctl --root="$ROOT" enable campush.service
    say "enabled (in $ROOT; nothing started)"
    exit 0
fi
systemctl daemon-reload
systemctl enable campush.service
if [ "$start" = no ]; then
    say "enabled; it starts at the next boot (or: sudo systemctl start campush)"
elif [ "$fresh_config" = yes ]; then
    say "enabled, not started: edit ${config} and /etc/campush/stream.key first, then: sudo systemctl start campush (or reboot)"
else
    systemctl restart campush.service
    say "started; follow it with: journalctl -u campush -f"
fi
