#!/bin/busybox sh
# /init of the GPIO test guest (see run.sh): a gpio-sim chip whose line 17 is named GPIO17, and
# campush driving its status LED on it through the GPIO character device. Prints one
# "CHECK <name>: ok|FAIL ..." line per check and "GPIO-GUEST: PASS|FAIL" on the serial console,
# then powers off. Every wait is bounded.

/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /run /tmp
insmod /lib/modules/configfs.ko
insmod /lib/modules/gpio-sim.ko
mount -t configfs none /sys/kernel/config
mount -t debugfs none /sys/kernel/debug
ifconfig lo 127.0.0.1 up
echo "kernel $(uname -r)"

FAILED=0
check() { # check NAME CONDITION-COMMAND... ; DETAILS in $detail
    name=$1
    shift
    if "$@"; then echo "CHECK $name: ok ($detail)"; else echo "CHECK $name: FAIL ($detail)"; FAILED=1; fi
}

# A simulated chip of 32 lines; line 17 is named like the Pi header pin it stands for.
C=/sys/kernel/config/gpio-sim/campush
mkdir $C $C/bank0
echo 32 >$C/bank0/num_lines
mkdir $C/bank0/line17
echo GPIO17 >$C/bank0/line17/name
echo 1 >$C/live
CHIP=$(cat $C/bank0/chip_name)
VALUE=/sys/devices/platform/$(cat $C/dev_name)/$CHIP/sim_gpio17/value
echo "gpio-sim: $CHIP, GPIO17 value in $VALUE"
ls -l /dev/gpiochip*

# sample N: reads the line N times, 20 ms apart; sets $changes, $ones, $zeros.
sample() {
    changes=0 ones=0 zeros=0 last= i=0
    while [ $i -lt "$1" ]; do
        read -r v <"$VALUE"
        if [ "$v" = 1 ]; then ones=$((ones + 1)); else zeros=$((zeros + 1)); fi
        [ -n "$last" ] && [ "$v" != "$last" ] && changes=$((changes + 1))
        last=$v
        usleep 20000
        i=$((i + 1))
    done
}
# held_by_campush: the line is requested, as an output, by consumer "campush" (gpiolib debugfs).
held_by_campush() { grep -q 'GPIO17.*|campush.*out' /sys/kernel/debug/gpio; }
released() { ! held_by_campush; }
# run_campush CONFIG: starts campush on CONFIG, as systemd would; waits up to 10 s for the line.
run_campush() {
    NOTIFY_SOCKET=/run/no-systemd-here JOURNAL_STREAM=1:1 /campush run --config "$1" \
        </dev/null >/tmp/campush.log 2>&1 &
    pid=$!
    n=100
    while [ $n -gt 0 ] && ! held_by_campush; do usleep 100000; n=$((n - 1)); done
}
# stop_campush: SIGTERM, wait up to 10 s; sets $code.
stop_campush() {
    kill -TERM "$pid"
    n=100
    while [ $n -gt 0 ] && kill -0 "$pid" 2>/dev/null; do usleep 100000; n=$((n - 1)); done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid"
        code=timeout
    else
        wait "$pid"
        code=$?
    fi
    sed 's/^/    campush| /' /tmp/campush.log
}

# 1. By name, active high: a configuration error holds the double blink (mostly dark).
cat >/tmp/c1.toml <<'TOML'
[source]
spec = "stdin"
fsp = 30
[led]
line = "GPIO17"
TOML
run_campush /tmp/c1.toml
detail=$(grep GPIO17 /sys/kernel/debug/gpio)
check named-line-requested-by-campush held_by_campush
sample 150
detail="$changes changes, $ones lit / $zeros dark samples"
check double-blink-on-config-error [ $changes -ge 4 ] && [ $zeros -gt $ones ] && [ $ones -gt 0 ]
stop_campush
detail="exit $code"
check config-error-exits-78 [ "$code" = 78 ]
detail=$(grep GPIO17 /sys/kernel/debug/gpio)
check line-released released

# 2. By chip and offset, active low: the same pattern, inverted on the wire (mostly high).
cat >/tmp/c2.toml <<TOML
[source]
spec = "stdin"
fsp = 30
[led]
chip = "$CHIP"
line = 17
active_low = true
TOML
run_campush /tmp/c2.toml
detail=$(grep GPIO17 /sys/kernel/debug/gpio)
check offset-line-requested-active-low held_by_campush
sample 150
detail="$changes changes, $ones high / $zeros low samples"
check active-low-inverts [ $changes -ge 4 ] && [ $ones -gt $zeros ] && [ $zeros -gt 0 ]
stop_campush
detail="exit $code"
check config-error-exits-78-again [ "$code" = 78 ]

# 3. A valid configuration whose server is unreachable: connecting, slow blink (0.5 s / 0.5 s).
cat >/tmp/c3.toml <<'TOML'
[source]
spec = "file:/clip.h264"
loop = true
[[output]]
url = "rtmp://127.0.0.1:9/live/key"
[led]
line = "GPIO17"
TOML
run_campush /tmp/c3.toml
detail=$(grep GPIO17 /sys/kernel/debug/gpio)
check line-requested-while-connecting held_by_campush
sample 150
detail="$changes changes, $ones lit / $zeros dark samples"
check slow-blink-while-connecting [ $changes -ge 3 ] && [ $ones -gt 20 ] && [ $zeros -gt 20 ]
stop_campush
detail="exit $code"
check stops-cleanly [ "$code" = 0 ]
read -r v <"$VALUE"
detail="value $v"
check dark-after-stop [ "$v" = 0 ]

if [ $FAILED = 0 ]; then echo "GPIO-GUEST: PASS"; else echo "GPIO-GUEST: FAIL"; fi
poweroff -f
