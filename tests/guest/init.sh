#!/bin/busybox sh
# /init of the test guest (see run.sh): loads the drivers, runs the scenario named in
# /scenario, writes logs and a result line to the 9p share, and powers off. Every wait bounded.

/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
params() {
    case $1 in
    vivid) echo "n_devs=1 node_types=0x1" ;;
    v4l2loopback) echo "devices=1 video_nr=10 exclusive_caps=1 max_buffers=8 card_label=campush-loopback" ;;
    vicodec) echo "multiplanar=1" ;;
    esac
}
for m in $(cat /modules.list); do
    # shellcheck disable=SC2046
    insmod "/lib/modules/$m.ko" $(params "$m") || echo "insmod $m failed"
done
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 host /out || {
    echo "cannot mount the 9p share"
    /testbed exit 3
}
ifconfig lo 127.0.0.1 up
exec >/out/guest.log 2>&1
echo "kernel $(uname -r) $(uname -m); scenario $(cat /scenario)"
ls -l /dev/video* || true

FAILED=""
fail() {
    echo "FAIL: $*"
    FAILED="$FAILED; $*"
}
# wait_for SECONDS CMD...: polls CMD every 0.1 s for at most SECONDS.
wait_for() {
    n=$(($1 * 10))
    shift
    while [ $n -gt 0 ]; do
        "$@" && return 0
        sleep 0.1
        n=$((n - 1))
    done
    return 1
}
alive() { kill -0 "$1" 2>/dev/null; }
dead() { ! kill -0 "$1" 2>/dev/null; }
node_named() { # prefix of /sys/class/video4linux/*/name
    for d in /sys/class/video4linux/video*; do
        case "$(cat "$d/name")" in "$1"*) echo "/dev/${d##*/}" && return 0 ;; esac
    done
    return 1
}
loopback_in() {
    insmod /lib/modules/v4l2loopback.ko $(params v4l2loopback)
}

LOOP=/dev/video10

capture_scenario() { # with_loss
    /testbed record 127.0.0.1:1935 /out/capture /tmp/published 2>/out/record.log &
    REC=$!
    /testbed feed $LOOP /clip.h264 30 /tmp/go1 1000 2>/out/feed1.log &
    FEED=$!
    # CAMPUSH_ALLOC_STATS: campush prints at exit how many heap allocations it made per frame
    # after its warm-up (the test holds the capture-only scenario to zero).
    CAMPUSH_ALLOC_STATS=1 /campush run -v --url rtmp://127.0.0.1:1935/live/cam --source v4l2:$LOOP \
        >/out/campush.log 2>&1 &
    CP=$!
    wait_for 30 grep -q "streaming H264" /out/campush.log || fail "campush did not start streaming"
    wait_for 30 test -e /tmp/published.1 || fail "the recorder saw no publish"
    sleep 1
    touch /tmp/go1
    wait_for 30 dead $FEED || fail "feeder 1 did not finish"
    if [ "$1" = with_loss ]; then
        # The writer is gone: campush must notice the silence, let go of the device, survive
        # its removal (the node disappears), and resume when it is back.
        wait_for 15 grep -q "no frame for" /out/campush.log || fail "silence not detected"
        n=0
        until rmmod v4l2loopback 2>/dev/null; do
            n=$((n + 1))
            [ $n -gt 50 ] && fail "v4l2loopback stays in use: campush did not release it" && break
            sleep 0.2
        done
        test -e $LOOP && fail "$LOOP still exists after rmmod"
        sleep 1.5
        loopback_in
        /testbed feed $LOOP /clip.h264 30 /tmp/go2 1000 2>/out/feed2.log &
        FEED=$!
        wait_for 40 grep -q "delivers again" /out/campush.log || fail "campush did not resume"
        # scuffle-rtmp dropped the idle publisher during the outage; campush reconnects.
        wait_for 40 test -e /tmp/published.2 || fail "campush did not publish again"
        sleep 1
        touch /tmp/go2
        wait_for 30 dead $FEED || fail "feeder 2 did not finish"
    fi
    sleep 2
    kill -TERM $CP
    wait_for 15 dead $CP || {
        fail "campush did not stop on SIGTERM"
        kill -KILL $CP
    }
    wait $CP
    echo "campush exit code $?" >>/out/campush.log
    # The recorder waits for more sessions; campush's ended when it closed (it waits for the
    # server's side to close), and every tag was written as it came.
    kill $REC
    wait_for 5 dead $REC || kill -KILL $REC
    true
}

# The README's file, a board and one output, with no camera app on PATH (busybox only): the
# board's "auto" must find the H.264 capture device among vivid (raw), vicodec (not H.264) and
# v4l2loopback, ask it for the board's 1920x1080 at 30 fps, take the nearest it offers, stream.
auto_scenario() {
    printf 'board = "rpi-4"\n\n[[output]]\nurl = "rtmp://127.0.0.1:1936/live/auto"\n' >/tmp/auto.toml
    rmmod v4l2loopback 2>/dev/null
    test -e $LOOP || loopback_in
    /testbed record 127.0.0.1:1936 /out/auto /tmp/published-auto 2>/out/record-auto.log &
    REC=$!
    /testbed feed $LOOP /clip.h264 30 /tmp/go3 1000 2>/out/feed3.log &
    FEED=$!
    /campush run -v --config /tmp/auto.toml >/out/campush-auto.log 2>&1 &
    CP=$!
    wait_for 30 grep -q "auto: using v4l2:$LOOP" /out/campush-auto.log || fail "auto did not pick $LOOP"
    wait_for 30 test -e /tmp/published-auto.1 || fail "auto: the recorder saw no publish"
    sleep 1
    touch /tmp/go3
    wait_for 30 dead $FEED || fail "feeder 3 did not finish"
    sleep 2
    kill -TERM $CP
    wait_for 15 dead $CP || {
        fail "campush (auto) did not stop on SIGTERM"
        kill -KILL $CP
    }
    wait $CP
    echo "campush exit code $?" >>/out/campush-auto.log
    # The recorder waits for more sessions; campush's ended when it closed (it waits for the
    # server's side to close), and every tag was written as it came.
    kill $REC
    wait_for 5 dead $REC || kill -KILL $REC
    true
}

# Sound through snd-aloop: the testbed plays a 1 kHz tone with a click every second into the
# loopback's playback side (hw:Loopback,0) while campush's ALSA capture code reads the other
# side (hw:Loopback,1): S16 mono, S32 stereo, and S16 mono with the loopback's clock 1000 ppm
# slow ("PCM Rate Shift 100000" = 100100). Then the card goes away under a running capture
# (the driver unbound: rmmod is refused while a PCM is open) and comes back.
alsa_scenario() {
    ls -l /dev/snd >/out/alsa-dev.txt 2>&1
    cat /proc/asound/cards /proc/asound/pcm >>/out/alsa-dev.txt 2>&1
    for run in S16_LE:1 S32_LE:2; do
        f=${run%:*}
        c=${run#*:}
        /testbed alsa-play hw:Loopback,0 "$f" "$c" 4.5 2>"/out/alsa-play-$f-$c.log" &
        PLAY=$!
        sleep 0.3
        /testbed alsa-capture hw:Loopback,1 "$f" "$c" 3 "/out/alsa-$f-$c" >"/out/alsa-capture-$f-$c.log" 2>&1 ||
            fail "alsa capture $f $c"
        wait $PLAY || fail "alsa play $f $c"
    done
    /testbed alsa-rate-shift Loopback 100100 >/out/alsa-rate-shift.log 2>&1 || fail "alsa rate shift"
    /testbed alsa-play hw:Loopback,0 S16_LE 1 7.5 2>/out/alsa-play-drift.log &
    PLAY=$!
    sleep 0.3
    /testbed alsa-capture hw:Loopback,1 S16_LE 1 6 /out/alsa-drift >/out/alsa-capture-drift.log 2>&1 ||
        fail "alsa capture with drift"
    wait $PLAY || fail "alsa play with drift"
    /testbed alsa-rate-shift Loopback 100000 >>/out/alsa-rate-shift.log 2>&1

    /testbed alsa-capture hw:Loopback,1 S16_LE 1 30 /out/alsa-unplug reopen >/out/alsa-capture-unplug.log 2>&1 &
    CAP=$!
    sleep 1.5
    if rmmod snd_aloop 2>/out/alsa-rmmod.log; then
        echo "rmmod succeeded with a PCM open" >>/out/alsa-rmmod.log
    fi
    echo snd_aloop.0 >/sys/bus/platform/drivers/snd_aloop/unbind &
    UNBIND=$!
    wait_for 10 grep -q "gone after" /out/alsa-capture-unplug.log || fail "alsa capture did not see the card go"
    wait_for 10 dead $UNBIND || fail "the unbind did not finish: the capture kept the card"
    rmmod snd_aloop || fail "rmmod snd_aloop after the unbind"
    sleep 0.5
    insmod /lib/modules/snd_aloop.ko || fail "insmod snd_aloop again"
    wait_for 25 dead $CAP || {
        fail "alsa capture did not finish after the card came back"
        kill $CAP
    }
    wait $CAP || fail "alsa capture did not reopen"
}

# A microphone end to end, as a user runs it: `campush run --audio alsa:hw:Loopback,1` captures
# the real driver while the testbed plays a tone with a click every second into the other side,
# with the loopback's clock off by RATE_SHIFT ("PCM Rate Shift 100000": 100010 runs 100 ppm
# slow, 99990 100 ppm fast) for the whole run, and pushes it with H.264 from v4l2loopback
# (VIDEO_LOOPS of the 3 s clip) to the in-guest recorder on PORT; every file is named after
# NAME. The player logs its hardware pointer with CLOCK_MONOTONIC times, the feeder each access
# unit's write time: the host (tests/alsa_check) puts each click and each video frame on that
# one clock and compares where the recording put them. The player starts before campush and is
# told to stop once the video has been written (it writes its log when done, so it is waited
# for, not killed): however long campush takes to start, the clicks span the whole video.
# With "drift": campush's drift measurement warms up over 60 s of samples (see
# src/audio/drift.rs), so the run lasts just over that and the status file is kept once it
# shows a drift; without, it is kept as it is (its offset is checked, not its drift).
# x86_64 only: see tests/v4l2_guest.rs.
mic_push() { # NAME RATE_SHIFT VIDEO_LOOPS PORT [drift|unplug]
    name=$1
    status=/tmp/$name-status.json
    printf '[audio]\nchannels = 1\nrate = 48000\n\n[status]\nfile = "%s"\n' "$status" >"/tmp/$name.toml"
    rmmod v4l2loopback 2>/dev/null
    test -e $LOOP || loopback_in
    /testbed alsa-rate-shift Loopback "$2" >"/out/$name-rate-shift.log" 2>&1 || fail "$name: rate shift"
    /testbed record "127.0.0.1:$4" "/out/$name" "/tmp/published-$name" 2>"/out/record-$name.log" &
    REC=$!
    # Up to 30 s for campush to publish, the video, and some slack; stopped when the video is done.
    /testbed alsa-play hw:Loopback,0 S16_LE 1 $(($3 * 3 + 40)) "/out/$name-play.positions" \
        "/tmp/stop-$name" 2>"/out/$name-play.log" &
    PLAY=$!
    /testbed feed $LOOP /clip.h264 30 "/tmp/go-$name" 500 "$3" "/out/$name-feed.times" 2>"/out/$name-feed.log" &
    FEED=$!
    sleep 0.3
    /campush run -v --config "/tmp/$name.toml" --url "rtmp://127.0.0.1:$4/live/$name" \
        --source v4l2:$LOOP --audio alsa:hw:Loopback,1 >"/out/campush-$name.log" 2>&1 &
    CP=$!
    wait_for 30 grep -q "streaming H264" "/out/campush-$name.log" || fail "$name: campush did not start streaming"
    wait_for 30 test -e "/tmp/published-$name.1" || fail "$name: the recorder saw no publish"
    touch "/tmp/go-$name"
    PLAY2=""
    if [ "$5" = unplug ]; then
        mic_unplug "$name" "$2"
    fi
    wait_for $(($3 * 3 + 17)) dead $FEED || fail "$name: the feeder did not finish"
    touch "/tmp/stop-$name" "/tmp/stop2-$name"
    if [ "$5" = drift ]; then
        # drift_ppm stays 0.0 until the measurement has warmed up.
        wait_for 10 sh -c 'grep -q "\"drift_ppm\":" "$0" && ! grep -q "\"drift_ppm\":0.0," "$0"' "$status" ||
            fail "$name: the status file shows no drift"
    fi
    if [ -e "$status" ]; then cp "$status" "/out/$name-status.json"; fi
    kill -TERM $CP
    wait_for 15 dead $CP || {
        fail "$name: campush did not stop on SIGTERM"
        kill -KILL $CP
    }
    wait $CP
    echo "campush exit code $?" >>"/out/campush-$name.log"
    wait_for 15 dead $PLAY || {
        fail "$name: the player did not finish"
        kill $PLAY
    }
    wait $PLAY || fail "$name: alsa play"
    if [ -n "$PLAY2" ]; then
        wait_for 15 dead $PLAY2 || {
            fail "$name: the second player did not finish"
            kill $PLAY2
        }
        wait $PLAY2 || fail "$name: alsa play after the unplug"
    fi
    /testbed alsa-rate-shift Loopback 100000 >>"/out/$name-rate-shift.log" 2>&1
    # The recorder waits for more sessions; the one it had ended with campush's unpublish, and
    # every tag was flushed as it came.
    kill $REC
    wait_for 5 dead $REC || kill -KILL $REC
    true
}

# The microphone pulled out under `campush run` and put back (in mic_push, NAME RATE_SHIFT,
# while the video streams): the player stops (it would lose its device too) and the card is
# unbound as in alsa_scenario; campush must say it lost the device and sends silence, the
# card comes back (rmmod, insmod, its rate shift again), campush must say the microphone is
# back, and a second player starts (its pointer in NAME-play2.positions). Every wait bounded;
# when each step happened goes to NAME-unplug.log (the guest's uptime).
mic_unplug() { # NAME RATE_SHIFT
    ulog=/out/$1-unplug.log
    sleep 6
    touch "/tmp/stop-$1"
    wait_for 5 dead $PLAY || fail "$1: the player did not stop before the unplug"
    echo "unbind at $(cut -d' ' -f1 /proc/uptime) s uptime" >"$ulog"
    echo snd_aloop.0 >/sys/bus/platform/drivers/snd_aloop/unbind &
    UNBIND=$!
    wait_for 10 grep -q "audio: alsa:hw:Loopback,1: .*sending silence and opening it again" \
        "/out/campush-$1.log" || fail "$1: campush did not say it lost the microphone"
    wait_for 10 dead $UNBIND || fail "$1: the unbind did not finish: campush kept the card"
    echo "campush let go at $(cut -d' ' -f1 /proc/uptime) s uptime" >>"$ulog"
    rmmod snd_aloop || fail "$1: rmmod snd_aloop after the unbind"
    # Away long enough for campush's first attempt (0.5 s after the loss) to fail.
    sleep 1
    insmod /lib/modules/snd_aloop.ko || fail "$1: insmod snd_aloop again"
    echo "card back at $(cut -d' ' -f1 /proc/uptime) s uptime" >>"$ulog"
    /testbed alsa-rate-shift Loopback "$2" >>"/out/$1-rate-shift.log" 2>&1 || fail "$1: rate shift again"
    # campush opens the card first (it tries again 1.5 s and 3.5 s after the loss), so every
    # click of the second player reaches it; the player takes the format campush set.
    wait_for 15 grep -q "audio: alsa:hw:Loopback,1 is back" "/out/campush-$1.log" ||
        fail "$1: campush did not say the microphone is back"
    echo "campush has it back at $(cut -d' ' -f1 /proc/uptime) s uptime" >>"$ulog"
    /testbed alsa-play hw:Loopback,0 S16_LE 1 60 "/out/$1-play2.positions" "/tmp/stop2-$1" \
        2>"/out/$1-play2.log" &
    PLAY2=$!
}

# The microphone's clock 100 ppm slow for a minute (the status file's drift warms up), then
# 100 ppm fast for 24 s of video (enough to hold the offset; the drift is not shown yet), the
# microphone pulled out and put back 6 s into it (mic_unplug).
mic_push_scenario() {
    mic_push mic 100010 21 1937 drift
    mic_push mic2 99990 8 1938 unplug
}

case $(cat /scenario) in
full)
    CAM=$(node_named vivid) || fail "no vivid node"
    ENC=$(node_named stateful-encoder) || fail "no vicodec encoder node"
    echo "camera $CAM encoder $ENC loopback $LOOP"
    /campush probe >/out/probe.txt 2>&1 || fail "campush probe failed"
    /testbed m2m "$CAM" "$ENC" 50 10 20 >/out/m2m-dmabuf.txt 2>&1 || fail "m2m (default transfer)"
    CAMPUSH_V4L2_NO_DMABUF=1 /testbed m2m "$CAM" "$ENC" 30 10 >/out/m2m-copy.txt 2>&1 ||
        fail "m2m (copy)"
    M2M_SIZE=640x360@30 /testbed m2m "$CAM" "$ENC" 30 8 >/out/m2m-padded.txt 2>&1 ||
        fail "m2m (encoder pads the frame)"
    capture_scenario with_loss
    auto_scenario
    alsa_scenario
    mic_push_scenario
    ;;
capture)
    /campush probe >/out/probe.txt 2>&1 || fail "campush probe failed"
    capture_scenario no_loss
    alsa_scenario
    ;;
alsa)
    /campush probe >/out/probe.txt 2>&1 || fail "campush probe failed"
    alsa_scenario
    ;;
mic)
    mic_push_scenario
    ;;
esac

if [ -z "$FAILED" ]; then
    echo "PASS" >/out/result
    rc=0
else
    echo "FAIL$FAILED" >/out/result
    rc=1
fi
cat /out/result
sync
/testbed exit $rc
