#!/usr/bin/env bash
# Tests deploy/install.sh and deploy/remote-install.sh without a board and without a network:
# 1. `install.sh --dry-run` prints the whole scp/ssh sequence and runs none of it: ssh and scp
#    are replaced by stubs that record any call, and (as root) it runs in a network namespace
#    of its own with no interfaces but loopback.
# 2. remote-install.sh installs into a scratch root twice (as root only: useradd needs it):
#    binary, unit, user and groups, the key directory /etc/campush (root:campush 0750) with its
#    placeholder key file (0640), configuration template, enable symlink; the second run
#    changes nothing and keeps the user's edited configuration and key.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "deploy-test: FAIL: $*" >&2; exit 1; }
# The key directory and key file below root $1: owner root, group campush (by its id in $1's
# /etc/group), modes 0750 and 0640.
check_keys() {
    local gid
    gid=$(grep '^campush:' "$1/etc/group" | cut -d: -f3)
    [ -n "$gid" ] || fail "no campush group in $1/etc/group"
    [ "$(stat -c '%u:%g %a' "$1/etc/campush")" = "0:$gid 750" ] ||
        fail "/etc/campush is $(stat -c '%u:%g %a' "$1/etc/campush"), not root:campush 750"
    [ "$(stat -c '%u:%g %a' "$1/etc/campush/stream.key")" = "0:$gid 640" ] ||
        fail "/etc/campush/stream.key is $(stat -c '%u:%g %a' "$1/etc/campush/stream.key"), not root:campush 640"
}
passed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# ---------------------------------------------------------------------------------------------
# 1. dry run

mkdir "$work/stubs"
for tool in ssh scp; do
    printf '#!/bin/sh\necho "%s $*" >>"%s/called"\nexit 97\n' "$tool" "$work" >"$work/stubs/$tool"
    chmod +x "$work/stubs/$tool"
done
isolate=()
if [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null && unshare --net true 2>/dev/null; then
    isolate=(unshare --net)
fi

dry() { # expected-lines... -- install.sh args...
    local expected=() arg
    while [ "$1" != -- ]; do expected+=("$1"); shift; done
    shift
    local out
    out=$(env PATH="$work/stubs:$PATH" "${isolate[@]}" deploy/install.sh --dry-run "$@" 2>&1) ||
        fail "install.sh --dry-run $* exited non-zero:
$out"
    for arg in "${expected[@]}"; do
        grep -qF -- "$arg" <<<"$out" || fail "install.sh --dry-run $*: no line with '$arg' in:
$out"
    done
    [ ! -e "$work/called" ] || fail "install.sh --dry-run $* ran: $(cat "$work/called")"
    ok "install.sh --dry-run $*"
}

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
dry "pi@campi.local dpkg --print-architecture" \
    "scp -q " "systemd/campush.service pi@campi.local:campush-install/campush.service" \
    "examples/campush.toml pi@campi.local:campush-install/campush.toml" \
    "deploy/remote-install.sh pi@campi.local:campush-install/remote-install.sh" \
    "target/cross/dist/campush-$version-aarch64-unknown-linux-musl pi@campi.local:campush-install/campush" \
    "+ ssh -t " "'sudo sh campush-install/remote-install.sh; rc=\$?; rm -rf campush-install; exit \$rc'" \
    "nothing was run" -- pi@campi.local
dry "+ scp -q -P 2222 " "campush-$version-arm-unknown-linux-musleabihf pi@10.0.0.9:campush-install/campush" \
    "sudo sh campush-install/remote-install.sh --no-start;" -- \
    --arch armhf --no-start -p 2222 pi@10.0.0.9
dry "some/campush_${version}-1_armhf.deb pi@campi:campush-install/campush.deb" \
    "remote-install.sh --deb campush.deb;" -- \
    --deb "some/campush_${version}-1_armhf.deb" pi@campi
# A hostile file name never reaches the board's shell: the .deb travels under a fixed name.
dry "pi@campi:campush-install/campush.deb" "remote-install.sh --deb campush.deb;" -- \
    --deb 'some dir/campush $(id) `id`;id.deb' pi@campi
for host in '-oProxyCommand=id' 'pi@campi;id' 'pi@campi $(id)' 'pi@`id`'; do
    if out=$(env PATH="$work/stubs:$PATH" deploy/install.sh --dry-run --arch arm64 "$host" 2>&1); then
        fail "install.sh accepted the host '$host': $out"
    fi
    [ ! -e "$work/called" ] || fail "install.sh with host '$host' ran: $(cat "$work/called")"
done
ok "install.sh refuses host names that are options or carry shell syntax"
if out=$(env PATH="$work/stubs:$PATH" deploy/install.sh --dry-run --arch i386 pi@campi 2>&1); then
    fail "install.sh accepted --arch i386: $out"
fi
ok "install.sh refuses an unknown architecture"

# ---------------------------------------------------------------------------------------------
# 2. remote-install.sh into a scratch root, twice

if [ "$(id -u)" -ne 0 ] || ! command -v useradd >/dev/null || ! command -v systemctl >/dev/null; then
    echo "SKIP: remote-install.sh in a scratch root needs root, useradd and systemctl"
    echo "deploy-test: $passed passed, 0 failed, 2 skipped"
    exit 0
fi
root=$work/root stage=$work/stage
mkdir -p "$root/etc" "$root/boot/firmware" "$stage"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:*:19000:0:99999:7:::\n' >"$root/etc/shadow"
printf 'root:x:0:\nvideo:x:44:\ngpio:x:997:pi\n' >"$root/etc/group"
printf 'root:*::\nvideo:!::\ngpio:!::pi\n' >"$root/etc/gshadow"
cp systemd/campush.service "$stage/campush.service"
cp examples/campush.toml "$stage/campush.toml"
cp deploy/remote-install.sh "$stage/remote-install.sh"
printf '#!/bin/sh\necho "campush 0.0.0-test"\n' >"$stage/campush"
chmod +x "$stage/campush"

sh "$stage/remote-install.sh" --root "$root" >"$work/run1.log" 2>&1 ||
    fail "remote-install.sh (first run) failed: $(cat "$work/run1.log")"
sed 's/^/    /' "$work/run1.log"
[ -x "$root/usr/bin/campush" ] || fail "no /usr/bin/campush"
cmp -s "$root/etc/systemd/system/campush.service" systemd/campush.service || fail "unit not installed"
[ "$(grep -c '^campush:' "$root/etc/passwd")" = 1 ] || fail "no campush user: $(cat "$root/etc/passwd")"
grep '^campush:' "$root/etc/passwd" | grep -q ':/usr/sbin/nologin$' || fail "campush can log in"
grep -q '^video:x:44:campush$' "$root/etc/group" || fail "campush not in video: $(cat "$root/etc/group")"
grep -q '^gpio:x:997:pi,campush$' "$root/etc/group" || fail "campush not in gpio: $(cat "$root/etc/group")"
cmp -s "$root/boot/firmware/campush.toml" examples/campush.toml || fail "no configuration template"
grep -qx 'key_file = "/etc/campush/stream.key"' "$root/boot/firmware/campush.toml" ||
    fail "the template does not name /etc/campush/stream.key"
check_keys "$root"
[ "$(cat "$root/etc/campush/stream.key")" = xxxx-xxxx-xxxx-xxxx-xxxx ] || fail "no placeholder key"
grep -q 'put your stream key in it' "$work/run1.log" || fail "no word on where the key goes"
[ -L "$root/etc/systemd/system/multi-user.target.wants/campush.service" ] || fail "not enabled"
ok "remote-install.sh installs binary, unit, user in video and gpio, key file root:campush 0640 in a 0750 /etc/campush, template, enable link"

echo '# edited by the user' >>"$root/boot/firmware/campush.toml"
echo 'sk-the-users-own' >"$root/etc/campush/stream.key"
cp "$root/etc/passwd" "$work/passwd.1"
cp "$root/etc/group" "$work/group.1"
sh "$stage/remote-install.sh" --root "$root" >"$work/run2.log" 2>&1 ||
    fail "remote-install.sh (second run) failed: $(cat "$work/run2.log")"
sed 's/^/    /' "$work/run2.log"
cmp -s "$root/etc/passwd" "$work/passwd.1" || fail "second run changed /etc/passwd"
cmp -s "$root/etc/group" "$work/group.1" || fail "second run changed /etc/group"
tail -n1 "$root/boot/firmware/campush.toml" | grep -q 'edited by the user' ||
    fail "second run overwrote the user's configuration"
grep -q 'keeping the existing /boot/firmware/campush.toml' "$work/run2.log" || fail "no 'keeping' note"
[ "$(cat "$root/etc/campush/stream.key")" = sk-the-users-own ] || fail "second run replaced the user's key"
check_keys "$root"
grep -q 'keeping the existing /etc/campush/stream.key' "$work/run2.log" || fail "no 'keeping' note for the key"
ok "remote-install.sh again: nothing changed, edited configuration and key kept"

# ---------------------------------------------------------------------------------------------
# 3. install.sh for real, with ssh, scp and sudo replaced by a fake board: a home directory and
#    a scratch root on this machine. Checks that the whole sequence (the architecture question,
#    the copies, the remote command line, the clean-up) does what the dry run says.

board=$work/board
mkdir -p "$work/fake" "$board/home" "$board/root/etc" "$board/root/boot/firmware"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$board/root/etc/passwd"
printf 'root:*:19000:0:99999:7:::\n' >"$board/root/etc/shadow"
printf 'root:x:0:\nvideo:x:44:\n' >"$board/root/etc/group"
printf 'root:*::\nvideo:!::\n' >"$board/root/etc/gshadow"
cat >"$work/fake/ssh" <<FAKE
#!/bin/sh
while [ \$# -gt 0 ]; do
    case \$1 in -o | -p | -i | -O) shift 2 ;; -t | -q) shift ;; *) break ;; esac
done
host=\$1
shift
echo "ssh \$host \$*" >>"$work/fake.log"
[ "\$*" = "dpkg --print-architecture" ] && { echo armhf; exit 0; }
cd "$board/home" && exec sh -c "\$*"
FAKE
cat >"$work/fake/scp" <<FAKE
#!/bin/sh
while [ \$# -gt 0 ]; do
    case \$1 in -o | -P | -i) shift 2 ;; -q) shift ;; *) break ;; esac
done
echo "scp \$1 \$2" >>"$work/fake.log"
cp "\$1" "$board/home/\${2#*:}"
FAKE
cat >"$work/fake/sudo" <<FAKE
#!/bin/sh
echo "sudo \$*" >>"$work/fake.log"
exec "\$@" --root "$board/root"
FAKE
chmod +x "$work/fake/ssh" "$work/fake/scp" "$work/fake/sudo"
binary=target/cross/dist/campush-$version-arm-unknown-linux-musleabihf
binary_opt=()
if [ ! -f "$binary" ]; then # no cross build here: any file will do
    binary=$stage/campush
    binary_opt=(--binary "$binary")
fi
env PATH="$work/fake:$PATH" deploy/install.sh "${binary_opt[@]}" pi@fakeboard \
    >"$work/run3.log" 2>&1 </dev/null ||
    fail "install.sh against the fake board failed: $(cat "$work/run3.log")"
sed 's/^/    /' "$work/run3.log"
cmp -s "$board/root/usr/bin/campush" "$binary" || fail "the board did not get $binary"
grep -q '^campush:' "$board/root/etc/passwd" || fail "no campush user on the board"
grep -q '^video:x:44:campush$' "$board/root/etc/group" || fail "campush not in video on the board"
grep -q 'created group gpio' "$work/run3.log" || fail "the missing gpio group was not created"
grep -q '^gpio:x:[0-9]*:campush$' "$board/root/etc/group" || fail "campush not in the new gpio group"
[ -f "$board/root/boot/firmware/campush.toml" ] || fail "no configuration on the board"
check_keys "$board/root"
[ -L "$board/root/etc/systemd/system/multi-user.target.wants/campush.service" ] || fail "not enabled"
[ -z "$(ls -A "$board/home")" ] || fail "staging directory left behind: $(ls -A "$board/home")"
if [ ${#binary_opt[@]} -eq 0 ]; then
    grep -q '^ssh pi@fakeboard dpkg --print-architecture$' "$work/fake.log" ||
        fail "the board's architecture was not asked: $(cat "$work/fake.log")"
fi
grep -q '^sudo sh campush-install/remote-install.sh$' "$work/fake.log" ||
    fail "the remote install did not run: $(cat "$work/fake.log")"
ok "install.sh against a fake board: binary for armhf, user, key file, template, enabled, staging removed"

# The same fake board, a .deb with a hostile name: the board's shell (the fake ssh runs the
# remote command with sh -c, as sshd does) must see no part of the name. sudo only records here
# (remote-install.sh --deb needs dpkg on a real system).
hostile="$work/campush \$(touch pwned) \`touch pwned2\`;touch pwned3.deb"
cp "$stage/campush" "$hostile"
printf '#!/bin/sh\necho "sudo $*" >>"%s/fake.log"\n' "$work" >"$work/fake/sudo"
: >"$work/fake.log"
env PATH="$work/fake:$PATH" deploy/install.sh --deb "$hostile" pi@fakeboard \
    >"$work/run4.log" 2>&1 </dev/null ||
    fail "install.sh --deb (hostile name) against the fake board failed: $(cat "$work/run4.log")"
for f in pwned pwned2 pwned3.deb; do
    [ ! -e "$board/home/$f" ] || fail "the .deb's name ran on the board: $f exists"
done
grep -q '^sudo sh campush-install/remote-install.sh --deb campush.deb$' "$work/fake.log" ||
    fail "the remote install did not get the .deb: $(cat "$work/fake.log")"
ok "install.sh --deb with a hostile file name: nothing of the name runs on the board"
echo "deploy-test: $passed passed, 0 failed"
