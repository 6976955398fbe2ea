#!/usr/bin/env bash
# Fetches the public sources of the real-audio development set and builds it in DIR: the same 19
# files and labels.json that bench/realaudio.sh reads (16 kHz mono 16-bit FLAC; speech labels
# are the union of the human-labelled turns, all speakers merged).
#   bench/fetch-realaudio.sh DIR
# Sources (licences in the README's quality section):
#   ami/    pyannote-audio's tests/data (AMI Meeting Corpus excerpts) and its debug.*.rttm
#   tel/    pyannote.audio 4.0.7's wheel from PyPI: pyannote/audio/sample/sample.{wav,rttm}
#   music/, animal/   librosa's example data (https://librosa.org/data/audio/)
# Each file's decoded audio is checked against the development set's (the MD5 of the samples that
# FLAC records): a mismatch is reported (another resampler gives other samples; the labels still
# hold) and the script exits 1 after building everything it could.
# Needs internet access (GitHub, PyPI, librosa.org), curl, python3, ffmpeg and metaflac.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: bench/fetch-realaudio.sh DIR" >&2; exit 2; }
dir="$1"
for tool in curl python3 ffmpeg metaflac unzip; do
  command -v "$tool" >/dev/null || { echo "fetch-realaudio: $tool is needed" >&2; exit 2; }
done
mkdir -p "$dir"/{ami,tel,music,animal}
dir="$(cd "$dir" && pwd)"
raw="$dir/.sources"
mkdir -p "$raw"

pyannote=https://raw.githubusercontent.com/pyannote/pyannote-audio/develop/tests/data
librosa=https://librosa.org/data/audio

# name in the set, expected MD5 of its samples
expected="
ami/dev00.flac c85acb6602518e62af36e311dd2616b6
ami/dev01.flac ac604dc5e4011c996c896456ceb9e397
ami/trn00.flac 28a449c798df6393069aa5e8aac09240
ami/trn01.flac 4b7445d104e1caaae0c339a86afae078
ami/trn02.flac 16af854a5111d35f236b10446ba18d29
ami/trn03.flac a3f8685e16c07261cdeae919560d0752
ami/trn04.flac ecb68704b3acc398c57579665db871ad
ami/trn05.flac 255a931a96936bbd6f61bdd2b37b414d
ami/trn06.flac 5f8fca898b86ef0daa5eb7a107073262
ami/trn07.flac 142ee9b3b38ca4accb0d54c145d2e842
ami/trn08.flac 2556bffc0a0e38acd151d9dfadf78758
ami/trn09.flac 5d12c9ae2fd7e53a31833c550d997439
ami/tst00.flac 773da4c3d0e3c1f89e1910517fc86834
ami/tst01.flac 6fec49db135fa5c8db8149cde843d97f
animal/humpback.flac 0b36c42d21d9172d39d74cc96ef2f1ec
animal/robin.flac c4503321e7eb7e343a3c507bd4eefeee
music/Allegro_in_F_sharp_minor_string_orchest.flac 58e0e5cbfde7503c33bec4eeaa9f6437
music/P_I_Tchaikovsky_Dance_of_the_Sugar_Plum_.flac 32e9f4695575ac6ae94e5d49a25ccb0c
tel/pyannote_sample.flac 1ab782481d054bf83f9501ad81f8f0ff
"

get() { # URL FILE: download once
  [ -s "$2" ] && return 0
  curl -fsSL --retry 3 --connect-timeout 20 -o "$2.part" "$1" ||
    { echo "fetch-realaudio: could not download $1" >&2; exit 1; }
  mv -f "$2.part" "$2"
}
to_flac() { # SOURCE NAME: 16 kHz mono 16-bit FLAC
  ffmpeg -nostdin -loglevel error -y -i "$1" -ac 1 -ar 16000 -sample_fmt s16 "$dir/$2"
}

for uri in trn00 trn01 trn02 trn03 trn04 trn05 trn06 trn07 trn08 trn09 dev00 dev01 tst00 tst01; do
  get "$pyannote/$uri.wav" "$raw/$uri.wav"
  to_flac "$raw/$uri.wav" "ami/$uri.flac"
done
for part in train development test; do
  get "$pyannote/debug.$part.rttm" "$raw/debug.$part.rttm"
done
[ -s "$raw/pyannote_audio-4.0.7-py3-none-any.whl" ] ||
  python3 -m pip download --quiet --disable-pip-version-check --no-deps pyannote.audio==4.0.7 -d "$raw"
unzip -o -q -j "$raw/pyannote_audio-4.0.7-py3-none-any.whl" pyannote/audio/sample/sample.wav pyannote/audio/sample/sample.rttm -d "$raw"
to_flac "$raw/sample.wav" tel/pyannote_sample.flac

librosa_file() { # SOURCE NAME
  get "$librosa/$1" "$raw/$1"
  to_flac "$raw/$1" "$2"
}
librosa_file "Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra).ogg" \
  music/Allegro_in_F_sharp_minor_string_orchest.flac
librosa_file "Kevin_MacLeod_-_P_I_Tchaikovsky_Dance_of_the_Sugar_Plum_Fairy.ogg" \
  music/P_I_Tchaikovsky_Dance_of_the_Sugar_Plum_.flac
librosa_file "glacier-bay-humpback.ogg" animal/humpback.flac
librosa_file "456440__inspectorj__bird-whistling-robin-single-13.ogg" animal/robin.flac

# labels.json: the RTTMs' turns merged per file; speech-free files get an empty list.
python3 - "$dir" "$raw" <<'EOF'
import json, subprocess, sys
from pathlib import Path

out, raw = Path(sys.argv[1]), Path(sys.argv[2])
turns = {}
for rttm, prefix in [(raw / f"debug.{p}.rttm", "ami/") for p in ("train", "development", "test")] + [
    (raw / "sample.rttm", "tel/")
]:
    for line in rttm.read_text().splitlines():
        f = line.split()
        if len(f) >= 5 and f[0] == "SPEAKER":
            uri = "pyannote_sample" if prefix == "tel/" else f[1]
            turns.setdefault(f"{prefix}{uri}.flac", []).append((float(f[3]), float(f[3]) + float(f[4])))

def duration(path):
    info = subprocess.run(["metaflac", "--show-total-samples", "--show-sample-rate", str(path)],
                          check=True, capture_output=True, text=True).stdout.split()
    return int(info[0]) / int(info[1])

files = {}
for path in sorted(out.glob("*/*.flac")):
    name = f"{path.parent.name}/{path.name}"
    dur = duration(path)
    merged = []
    for s, e in sorted(turns.get(name, [])):
        s, e = max(0.0, s), min(dur, e)
        if e <= s:
            continue
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    files[name] = {
        "set": path.parent.name,
        "duration": round(dur, 3),
        "speech": [[round(s, 3), round(e, 3)] for s, e in merged],
    }
doc = {"times": "seconds",
       "speech": "union of human-labelled speech intervals; empty list = no speech",
       "files": files}
(out / "labels.json").write_text(json.dumps(doc, indent=1) + "\n")
print(f"fetch-realaudio: {len(files)} files, labels.json written in {out}")
EOF

bad=0
while read -r name md5; do
  [ -n "$name" ] || continue
  got="$(metaflac --show-md5sum "$dir/$name" 2>/dev/null || echo missing)"
  if [ "$got" != "$md5" ]; then
    echo "fetch-realaudio: $name: samples differ from the development set's ($got, expected $md5)" >&2
    bad=1
  fi
done <<<"$expected"
[ "$bad" = 0 ] && echo "fetch-realaudio: every file's samples equal the development set's"
exit "$bad"
