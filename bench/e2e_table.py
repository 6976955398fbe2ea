"""Prints bench/e2e.py's JSON report as a Markdown table, with the ratios the targets are
stated in (throughput in audio-hours per wall-hour, vadflow over each reference)."""

import json
import sys


def main(path):
    r = json.load(open(path))
    print(f"\n### {r['batch']}: {r['files']} files, {r['audio_s'] / 60:.1f} min of audio\n")
    print("| run | wall | files/s | audio-h per wall-h | CPU-s per audio-h (its processes) "
          "| CPU-s per audio-h (whole machine) | job processing p50 / p99 | enqueue to done p50 / p99 |")
    print("|---|---|---|---|---|---|---|---|")
    for x in r["results"]:
        q = (f"{x['queue_to_done_p50_s']:.2f} / {x['queue_to_done_p99_s']:.2f} s"
             if x["queue_to_done_p99_s"] else "-")
        p = (f"{x['processing_p50_s'] * 1000:.0f} / {x['processing_p99_s'] * 1000:.0f} ms"
             if x["processing_p99_s"] else "-")
        print(f"| {x['name']} | {x['wall_s']:.2f} s | {x['files_per_s']:.1f} | "
              f"{x['audio_h_per_wall_h']:.0f} | {x['cpu_s_per_audio_h']:.1f} | "
              f"{x['machine_cpu_s_per_audio_h']:.1f} | {p} | {q} |")
    by = {x["id"]: x for x in r["results"]}
    speed = lambda k: by[k]["audio_h_per_wall_h"]  # noqa: E731
    print()
    for ours, ref in (("vadflow", "a"), ("vadflow", "b"), ("local", "a"), ("vadflow-silero", "b")):
        if ours in by and ref in by:
            print(f"- {by[ours]['name']} / {by[ref]['name']}: **{speed(ours) / speed(ref):.2f}×** "
                  "audio-hours per wall-hour")
    if "vadflow" in by:
        print(f"- vadflow: **{by['vadflow']['files_per_s']:.0f} jobs/s** end to end")


if __name__ == "__main__":
    main(sys.argv[1])
