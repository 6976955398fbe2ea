"""Where the CPU goes, per format: one thread's CPU seconds to find the speech in the files of
each format of a batch (bench/e2e.sh's 200 mixed files), vadflow's local mode (`worker vad -j 1
--outputs segments.json`) against reference (a)'s per-file work (soundfile + soxr decode, then
py-webrtcvad and example.py's segmentation), in the same run.

Usage: python per_format.py --bin target/release --batch DIR
"""

import argparse
import glob
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference"))
import vadcore  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--batch", required=True)
    a = ap.parse_args()
    print("| format | files | audio | vadflow CPU | reference (a) CPU: decode + VAD | ratio |")
    print("|---|---|---|---|---|---|")
    for fmt in ("wav", "flac", "mp3", "ogg", "opus"):
        files = sorted(glob.glob(os.path.join(a.batch, f"*.{fmt}")))
        if not files:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "in")
            os.makedirs(src)
            for f in files:
                shutil.copy(f, src)
            p = subprocess.Popen([f"{a.bin}/worker", "vad", "-j", "1", "--no-progress",
                                  "--outputs", "segments.json", "--out", os.path.join(tmp, "out"),
                                  src], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _, status, usage = os.wait4(p.pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
        ours = usage.ru_utime + usage.ru_stime
        audio = dec = vad = 0.0
        for f in files:
            t0 = time.process_time()
            pcm = vadcore.decode(f)
            t1 = time.process_time()
            vadcore.segments(pcm)
            dec += t1 - t0
            vad += time.process_time() - t1
            audio += len(pcm) / vadcore.RATE
        theirs = dec + vad
        print(f"| {fmt} | {len(files)} | {audio / 60:.0f} min | {ours:.2f} s | {theirs:.2f} s "
              f"({dec:.2f} + {vad:.2f}) | {theirs / ours:.2f}× |")


if __name__ == "__main__":
    main()
