#!/usr/bin/env bash
# Builds the ffmpeg that the container image carries: one static, decode-only, audio-only
# program (no shared libraries, no network, no encoders but raw PCM), for the formats that
# vadflow's native decoders do not read (#12): telephony WAV (GSM 6.10, G.722, G.726, G.723.1,
# G.729, ADPCM), AMR-NB/WB, HE-AAC, WMA, AC-3/E-AC-3, DTS, the audio of video files, and the rest
# of ffmpeg's audio decoders and demuxers.
#   deploy/ffmpeg/build.sh SRC_DIR OUT_FILE
# SRC_DIR is an unpacked FFmpeg source tree (the Dockerfile takes Debian's, `apt-get source
# ffmpeg`). Needs gcc, make, nasm, pkg-config and libspeex-dev (its static libspeex.a).
# The worker runs it as
#   ffmpeg -i IN -map 0:a:0 -vn -ac 1 -ar RATE -c:a pcm_f32le -f f32le pipe:1
set -euo pipefail
src="$(cd "$1" && pwd)"
out="$2"
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT

# Every audio decoder, every demuxer, parser and bitstream filter this FFmpeg has, without
# external libraries.
list() { "$src/configure" "--list-$1" | tr -s ' \t' '\n' | grep -v '^$'; }
# allcodecs.c lists the audio, PCM, DPCM and ADPCM decoders between these two comments.
audio_decoders="$(sed -n '/^\/\* audio codecs \*\//,/^\/\* subtitles \*\//s/^extern const FFCodec ff_\(.*\)_decoder;$/\1/p' \
  "$src/libavcodec/allcodecs.c" | tr '\n' ' ')"
args=(
  --prefix=/usr/local
  --disable-everything --disable-autodetect --disable-network --disable-doc --disable-debug
  --disable-ffplay --disable-ffprobe --disable-avdevice --disable-swscale --disable-postproc
  --enable-static --disable-shared --extra-ldflags=-static --pkg-config-flags=--static
  --enable-protocol=file,pipe
  --enable-filter=aresample,aformat,anull,abuffer,abuffersink,atrim
  --enable-encoder=pcm_f32le,pcm_s16le --enable-muxer=pcm_f32le,pcm_s16le,wav
  # Speex (old VoIP and Flash recordings) has no native FFmpeg decoder: libspeex, linked statically.
  --enable-libspeex --enable-decoder=libspeex
)
for kind in decoder demuxer parser bsf; do
  for name in $(list "${kind}s"); do
    case "$kind:$name" in
      # external libraries (none are linked) and hardware decoders
      *:lib* | *_cuvid | *_qsv | *_mediacodec | *_mmal | *_rkmpp | *_v4l2m2m | *_at | *_mf | *_crystalhd) ;;
      # video and image decoders and parsers: the audio of a video file needs only its demuxer
      decoder:*) [[ " $audio_decoders " == *" $name "* ]] && args+=("--enable-decoder=$name") ;;
      *) args+=("--enable-$kind=$name") ;;
    esac
  done
done

cd "$build"
"$src/configure" "${args[@]}" >configure.log || { tail -n 30 configure.log >&2; exit 1; }
make -j"$(nproc)" ffmpeg >make.log 2>&1 || { tail -n 30 make.log >&2; exit 1; }
strip ffmpeg
install -D -m 0755 ffmpeg "$out"
echo "ffmpeg: $out, $(du -h "$out" | cut -f1), ${#args[@]} configure arguments" >&2
