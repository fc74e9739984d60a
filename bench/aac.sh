#!/usr/bin/env bash
# Measures campush's AAC-LC encoder (src/audio/encoder.rs has the table this fills): a speech
# clip (espeak-ng) and a sine sweep 20 Hz -> 20 kHz, mono 64 kbit/s and stereo 96 kbit/s,
# encoded by examples/aac_encode.rs, decoded by ffmpeg, aligned by cross-correlation: SNR,
# log-spectral distance, bit rate made, CPU (task-clock) per second of audio; then callgrind's
# instructions per second of audio on the speech clip.
#
# Needs: espeak-ng ffmpeg python3-numpy linux-perf valgrind (Debian package names).
#   bench/aac.sh                      # or ENCODER=path/to/aac_encode bench/aac.sh
# ENCODER may be any program with the example's interface (RATE CHANNELS KBPS, f32le in, ADTS
# out, "N kbit/s made" on stderr), e.g. the same example built on an older commit.
set -euo pipefail
cd "$(dirname "$0")/.."
work=target/bench-aac
mkdir -p "$work"
if [[ -z ${ENCODER:-} ]]; then
    cargo build --release --example aac_encode
    ENCODER=$PWD/target/release/examples/aac_encode
fi
cd "$work"
if [[ ! -f speech_m.f32 ]]; then
    espeak-ng -w speech22.wav -s 150 "The quick brown fox jumps over the lazy dog. Campush pushes hardware encoded video from a small camera board to a streaming server, and it keeps trying when the network goes away. Audio from a microphone is encoded on the board, one frame at a time, with its own encoder. Peter Piper picked a peck of pickled peppers; she sells sea shells by the sea shore."
    ffmpeg -v error -y -i speech22.wav -ar 48000 -ac 1 -f f32le speech_m.f32
    ffmpeg -v error -y -i speech22.wav -filter_complex \
        "[0:a]aresample=48000,asplit[a][b];[b]adelay=10,volume=0.7[bd];[a][bd]join=inputs=2:channel_layout=stereo" \
        -f f32le speech_s.f32
fi
/usr/bin/python3 - "$ENCODER" <<'PY'
import numpy as np, re, subprocess, sys
enc, r = sys.argv[1], 48000
T = 10.0; t = np.arange(int(r * T)) / r
up = 0.5 * np.sin(2 * np.pi * (20 * t + (20000 - 20) * t * t / (2 * T)))
down = 0.5 * np.sin(2 * np.pi * (20000 * t + (20 - 20000) * t * t / (2 * T)))
up.astype('<f4').tofile('sweep_m.f32')
np.stack([up, down], 1).astype('<f4').tofile('sweep_s.f32')

def run(clip, ch, kbps):
    name = f'{clip}_{"m" if ch == 1 else "s"}.f32'
    ref = np.fromfile(name, '<f4').astype(np.float64).reshape(-1, ch)
    p = subprocess.run(['perf', 'stat', '-x,', '-e', 'task-clock', enc, str(r), str(ch), str(kbps)],
                       stdin=open(name, 'rb'), stdout=open('out.aac', 'wb'), stderr=subprocess.PIPE, text=True)
    made = float(re.search(r'([\d.]+) kbit/s made', p.stderr).group(1))
    ms = float([l for l in p.stderr.splitlines() if 'task-clock' in l][0].split(',')[0])
    d = subprocess.run(['ffmpeg', '-v', 'error', '-f', 'aac', '-i', 'out.aac', '-f', 'f32le', '-'], capture_output=True)
    assert not d.stderr, d.stderr
    dec = np.frombuffer(d.stdout, '<f4').astype(np.float64).reshape(-1, ch)
    a, b = ref[:, 0], dec[:, 0]
    n = 1 << int(np.ceil(np.log2(len(a) + len(b))))
    lag = int(np.argmax(np.fft.irfft(np.fft.rfft(b, n) * np.conj(np.fft.rfft(a, n)), n)[:4097]))
    L = min(len(ref), len(dec) - lag)
    x, y = ref[:L], dec[lag:lag + L]
    snr = lambda x, y: 10 * np.log10((x ** 2).sum() / ((x - y) ** 2).sum())
    w = np.hanning(2048); f = np.fft.rfftfreq(2048, 1 / r); band = (f >= 50) & (f <= 16000)
    lsd = []
    for c in range(ch):
        for s in range(0, L - 2048, 1024):
            fx, fy = x[s:s + 2048, c], y[s:s + 2048, c]
            if np.sqrt((fx ** 2).mean()) < 1e-3:
                continue
            X = np.abs(np.fft.rfft(fx * w)) ** 2 + 1e-12
            Y = np.abs(np.fft.rfft(fy * w)) ** 2 + 1e-12
            lsd.append(np.sqrt(np.mean((10 * np.log10(X[band] / Y[band])) ** 2)))
    h = L // 2
    print(f'{clip} {ch}ch {kbps}k: SNR {snr(x, y):.1f} (first half {snr(x[:h], y[:h]):.1f}) dB, '
          f'LSD {np.mean(lsd):.1f} dB, made {made:.1f} kbit/s, CPU {ms / (len(ref) / r):.2f} ms/s, '
          f'delay {lag} samples')

for clip, ch, kbps in [('speech', 1, 64), ('speech', 2, 96), ('sweep', 1, 64), ('sweep', 2, 96)]:
    run(clip, ch, kbps)
PY
for c in m s; do
    ch=1 kbps=64
    [[ $c == s ]] && ch=2 kbps=96
    seconds=$(/usr/bin/python3 -c "import os; print(os.path.getsize('speech_$c.f32') / 4 / $ch / 48000)")
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$ENCODER" 48000 $ch $kbps \
        <speech_$c.f32 >/dev/null 2>callgrind.log
    ir=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' callgrind.log)
    echo "speech ${ch}ch: $(( ir / 1000000 )) M instructions, $(/usr/bin/python3 -c "print(round($ir / $seconds / 1e6))") M per second of audio"
done
