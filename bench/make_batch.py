"""Makes a benchmark batch: COUNT files of about SECONDS of espeak-ng speech with pauses
(deterministic for a seed), in the formats given, round robin:
  wav  16 kHz mono PCM    flac 16 kHz mono    mp3 44.1 kHz stereo 128 kb/s
  ogg  Vorbis 44.1 kHz stereo q4             opus 48 kHz mono 32 kb/s

Usage: python make_batch.py --out DIR --count N --seconds S [--formats wav,flac,mp3,ogg,opus]
"""

import argparse
import os
import random
import subprocess
import tempfile

import numpy as np
import soundfile

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Voice activity detection finds where the speech is.",
    "Please leave a message after the tone.",
    "The meeting has been moved to Thursday afternoon.",
    "Our records show that your payment was received.",
    "Could you repeat the last part of the address?",
    "Thank you for calling, have a wonderful day.",
    "The train to the airport leaves every twenty minutes.",
    "I will send you the figures before the end of the week.",
    "Yes.", "No, not at all.", "Okay, thanks.", "Hello? Can you hear me?",
]
VOICES = ["en-us", "en-gb", "en-us+f3", "en-gb-scotland"]
ENCODE = {
    "wav": [],
    "flac": ["-c:a", "flac"],
    "mp3": ["-ar", "44100", "-ac", "2", "-c:a", "libmp3lame", "-b:a", "128k"],
    "ogg": ["-ar", "44100", "-ac", "2", "-c:a", "libvorbis", "-q:a", "4"],
    "opus": ["-ar", "48000", "-ac", "1", "-c:a", "libopus", "-b:a", "32k"],
}


def pool(tmp):
    clips = []
    for i, text in enumerate(SENTENCES):
        for j, voice in enumerate(VOICES):
            wav = os.path.join(tmp, f"s{i}-{j}.wav")
            subprocess.run(["espeak-ng", "-v", voice, "-w", wav, text], check=True)
            raw = os.path.join(tmp, f"s{i}-{j}-16k.wav")
            subprocess.run(["sox", wav, "-r", "16000", "-c", "1", "-b", "16", raw], check=True)
            clips.append(soundfile.read(raw, dtype="int16")[0])
    return clips


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--formats", default="wav,flac,mp3,ogg,opus")
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    formats = a.formats.split(",")
    rng = random.Random(a.seed)
    os.makedirs(a.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        clips = pool(tmp)
        want = int(a.seconds * 16000)
        for n in range(a.count):
            parts, length = [], 0
            while length < want:
                gap = np.zeros(int(rng.uniform(0.3, 1.5) * 16000), dtype=np.int16)
                clip = clips[rng.randrange(len(clips))]
                parts += [gap, clip]
                length += len(gap) + len(clip)
            audio = np.concatenate(parts)[:want]
            fmt = formats[n % len(formats)]
            name = os.path.join(a.out, f"f{n:04d}.{fmt}")
            if fmt == "wav":
                soundfile.write(name, audio, 16000, subtype="PCM_16")
                continue
            src = os.path.join(tmp, "src.wav")
            soundfile.write(src, audio, 16000, subtype="PCM_16")
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", src, *ENCODE[fmt], name], check=True)
    print(f"make_batch: {a.count} files of {a.seconds} s in {a.out}")


if __name__ == "__main__":
    main()
