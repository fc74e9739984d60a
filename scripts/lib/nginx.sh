# shellcheck shell=bash
# A throwaway nginx-rtmp on loopback, for the demo, the benchmarks and the cross-build's push
# test. Sourced by bash scripts (safe under `set -euo pipefail`); defines functions and NGINX_*
# variables, runs nothing on its own. Linux only (it reads /proc). Every server listens on
# 127.0.0.1 only, runs in the foreground as a child of the script (no daemon, no master
# process), keeps all its files in one directory of the caller's, and every wait is bounded.
#
#   nginx_find MODULE...       find nginx and its modules (rtmp, stream); NGINX_MISSING lists
#                              the packages to install when one is missing
#   nginx_require MODULE...    nginx_find, or print what to install and return 1
#   nginx_up DIR [--record RECDIR] [--tls CERT KEY] [--log LEVEL]
#                              free port(s), config, start, wait until listening: NGINX_PORT,
#                              NGINX_TLS_PORT (with --tls), NGINX_PID
#   nginx_start / nginx_stop [SECONDS]
#                              start again on the same port(s) / stop (SIGTERM, SIGKILL late)
#   nginx_disconnects, nginx_wait_disconnect COUNT
#                              publishers gone so far (by the log) / wait until more than COUNT
#   nginx_log_tail LINES       the end of the server's log, for error messages
#   proc_alive PID, proc_stop PID SIGNAL SECONDS
#                              for any child of the script (PROC_ENDED says how it ended)

NGINX_MODULE_DIRS=(/usr/lib/nginx/modules /usr/lib64/nginx/modules /usr/local/nginx/modules)
NGINX='' NGINX_RTMP_MODULE='' NGINX_STREAM_MODULE='' NGINX_MISSING=()
NGINX_DIR='' NGINX_PORT='' NGINX_TLS_PORT='' NGINX_PID=''
PROC_ENDED=''

# The path of nginx module $1 (a .so file name), or false.
nginx_module() {
    local dir
    for dir in "${NGINX_MODULE_DIRS[@]}"; do
        if [ -f "$dir/$1" ]; then
            echo "$dir/$1"
            return 0
        fi
    done
    return 1
}

# nginx_find MODULE...: sets NGINX (the binary; /usr/sbin is often not on a user's PATH) and,
# for each MODULE named, NGINX_RTMP_MODULE ("rtmp") or NGINX_STREAM_MODULE ("stream", for TLS in
# front of RTMP). False when one is missing; then NGINX_MISSING holds the Debian packages to
# install.
nginx_find() {
    local m so
    NGINX_MISSING=()
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
    [ -x "$NGINX" ] || NGINX_MISSING+=(nginx)
    for m in "$@"; do
        so=$(nginx_module "ngx_${m}_module.so") || so=
        case $m in
        rtmp) NGINX_RTMP_MODULE=$so ;;
        stream) NGINX_STREAM_MODULE=$so ;;
        *) echo "nginx_find: unknown module $m" >&2; return 2 ;;
        esac
        [ -n "$so" ] || NGINX_MISSING+=("libnginx-mod-$m")
    done
    [ ${#NGINX_MISSING[@]} -eq 0 ]
}

# nginx_require MODULE...: nginx_find, or a message on stderr naming what to install, and false.
nginx_require() {
    nginx_find "$@" && return 0
    echo "$(basename "$0"): needs nginx with the module(s) $*; missing: ${NGINX_MISSING[*]}." \
        "On Debian or Ubuntu install them with:" >&2
    echo "    sudo apt-get install ${NGINX_MISSING[*]}" >&2
    return 1
}

# The inodes of the sockets listening on TCP port $1 on any local address, one a line. From
# /proc: no connection is made (a probe connection would show in the server's log as a client
# that came and went).
nginx_listeners() {
    local hex
    hex=$(printf ':%04X' "$1")
    cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
        awk -v p="$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { print $10 }'
}

# Is something listening on TCP port $1?
nginx_port_listening() { [ -n "$(nginx_listeners "$1")" ]; }

# Does process $1 itself listen on TCP port $2 (not some other process that took the port)?
nginx_pid_listens() {
    local inode fd
    for inode in $(nginx_listeners "$2"); do
        for fd in /proc/"$1"/fd/*; do
            [ "$(readlink "$fd" 2>/dev/null)" = "socket:[$inode]" ] && return 0
        done
    done
    return 1
}

# Runs $1 (a process of ours) still? A zombie, which kill -0 still finds, counts as gone.
proc_alive() {
    local state
    state=$(awk '/^State:/ { print $2 }' "/proc/$1/status" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# Sends signal $2 to child $1, waits up to $3 seconds for it to exit, SIGKILLs it after that,
# and reaps it. Call it outside $(...), so that wait finds the child. Sets PROC_ENDED to
# "exit CODE" or "killed, exit CODE".
proc_stop() {
    local pid=$1 sig=$2 limit=$3 i rc=0
    PROC_ENDED=
    kill "-$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < limit * 20; i++)); do
        proc_alive "$pid" || break
        sleep 0.05
    done
    if proc_alive "$pid"; then
        kill -KILL "$pid" 2>/dev/null || true
        PROC_ENDED="killed, "
    fi
    wait "$pid" 2>/dev/null || rc=$?
    PROC_ENDED="${PROC_ENDED}exit $rc"
}

# Writes $NGINX_DIR/nginx.conf: RTMP application "live" on 127.0.0.1:$NGINX_PORT, recording
# every publish as RECDIR/KEY.flv when $1 is a directory and nothing when it is empty; with a
# certificate $2 and key $3, a TLS front on 127.0.0.1:$NGINX_TLS_PORT passing the plain stream
# on to the RTMP port. $4 is the log level (info logs every connect and disconnect).
nginx_write_conf() {
    local rec=$1 cert=$2 key=$3 level=$4
    {
        echo "load_module \"$NGINX_RTMP_MODULE\";"
        if [ -n "$cert" ]; then echo "load_module \"$NGINX_STREAM_MODULE\";"; fi
        cat <<EOF
daemon off;
master_process off;
error_log "$NGINX_DIR/error.log" $level;
pid "$NGINX_DIR/nginx.pid";
events { worker_connections 64; }
rtmp {
    access_log off;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        chunk_size 4096;
        application live {
            live on;
EOF
        if [ -n "$rec" ]; then
            printf '            record all;\n            record_path "%s";\n' "$rec"
        else
            printf '            record off;\n'
        fi
        printf '        }\n    }\n}\n'
        if [ -n "$cert" ]; then
            cat <<EOF
stream {
    server {
        listen 127.0.0.1:$NGINX_TLS_PORT ssl;
        ssl_certificate "$cert";
        ssl_certificate_key "$key";
        proxy_pass 127.0.0.1:$NGINX_PORT;
    }
}
EOF
        fi
    } >"$NGINX_DIR/nginx.conf"
}

# Starts nginx with $NGINX_DIR/nginx.conf in the background (NGINX_PID) and waits up to 10 s
# until it listens on its port(s). False, with the server stopped, if it exited or never listened.
nginx_start() {
    local i
    "$NGINX" -p "$NGINX_DIR" -c "$NGINX_DIR/nginx.conf" -e "$NGINX_DIR/error.log" \
        </dev/null >>"$NGINX_DIR/nginx.stderr" 2>&1 &
    NGINX_PID=$!
    for ((i = 0; i < 200; i++)); do
        proc_alive "$NGINX_PID" || break
        if nginx_pid_listens "$NGINX_PID" "$NGINX_PORT" &&
            { [ -z "$NGINX_TLS_PORT" ] || nginx_pid_listens "$NGINX_PID" "$NGINX_TLS_PORT"; }; then
            return 0
        fi
        sleep 0.05
    done
    nginx_stop 2
    return 1
}

# Stops the server, if one runs: SIGTERM, SIGKILL after $1 seconds (default 5). Sets PROC_ENDED.
nginx_stop() {
    if [ -n "$NGINX_PID" ]; then
        proc_stop "$NGINX_PID" TERM "${1:-5}"
        NGINX_PID=
    fi
}

# nginx_up DIR [--record RECDIR] [--tls CERT KEY] [--log LEVEL]: an nginx-rtmp on a free
# loopback port (and the TLS front on the next one), with its configuration, pid file and log
# (error.log) in DIR. Tries random ports from 20000 to 59999, up to 20 while they turn out
# taken. Needs nginx_find rtmp (and stream, for --tls) first.
nginx_up() {
    local rec='' cert='' key='' level=info attempt
    NGINX_DIR=$1
    shift
    while [ $# -gt 0 ]; do
        case $1 in
        --record) rec=$2; shift 2 ;;
        --tls) cert=$2 key=$3; shift 3 ;;
        --log) level=$2; shift 2 ;;
        *) echo "nginx_up: unknown option $1" >&2; return 2 ;;
        esac
    done
    for ((attempt = 0; attempt < 20; attempt++)); do
        NGINX_PORT=$((20000 + RANDOM % 40000))
        NGINX_TLS_PORT=
        if [ -n "$cert" ]; then NGINX_TLS_PORT=$((NGINX_PORT + 1)); fi
        nginx_port_listening "$NGINX_PORT" && continue
        if [ -n "$cert" ] && nginx_port_listening "$NGINX_TLS_PORT"; then continue; fi
        nginx_write_conf "$rec" "$cert" "$key" "$level"
        nginx_start && return 0
        # Another port only helps when this one was taken meanwhile; not for a bad certificate.
        # (grep reads all its input: with -q an early exit could fail the pipe under pipefail.)
        tail -n 5 "$NGINX_DIR/error.log" "$NGINX_DIR/nginx.stderr" 2>/dev/null |
            grep 'Address already in use' >/dev/null || return 1
    done
    return 1
}

# The last $1 lines of the server's log, or of what it printed when it has no log.
nginx_log_tail() {
    if [ -s "$NGINX_DIR/error.log" ]; then
        tail -n "$1" "$NGINX_DIR/error.log"
    else
        tail -n "$1" "$NGINX_DIR/nginx.stderr" 2>/dev/null || true
    fi
}

# How many RTMP connections the server has seen end (needs log level info).
nginx_disconnects() {
    if [ -f "$NGINX_DIR/error.log" ]; then
        grep -c ' disconnect' "$NGINX_DIR/error.log" || true
    else
        echo 0
    fi
}

# Waits up to 10 s until more than $1 connections have ended, then 0.2 s more: nginx closes a
# recording when its publisher's connection is torn down.
nginx_wait_disconnect() {
    local i
    for ((i = 0; i < 100; i++)); do
        [ "$(nginx_disconnects)" -gt "$1" ] && break
        sleep 0.1
    done
    sleep 0.2
}
