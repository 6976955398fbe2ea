"""The collector's capacity: N result events wait in the queue, then one `producer collect`
records them all; prints events/s. With --compare BIN_DIR, also for another build's producer
(e.g. one before batching), in the same run.

Usage: python collect.py --bin target/release [--events 5000] [--compare DIR]
Environment: AMQP_URL, DATABASE_URL (deploy/local/env.sh).
"""

import argparse
import os
import signal
import subprocess
import sys
import time

import msgpack
import pika
import psycopg

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e import PREFIX, SCHEMA, stop, vadflow_env, wait_for_line  # noqa: E402


def run(bin_dir, n, env):
    b = bin_dir
    subprocess.run([f"{b}/vadflow-demo", "reset"], env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([f"{b}/producer", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        ids = [r[0] for r in conn.execute(
            f"INSERT INTO {SCHEMA}.audio_files (bucket, key) "
            "SELECT 'b', 'k' || g FROM generate_series(1, %s) g RETURNING id", (n,))]
    log = "/tmp/vadflow-bench-collect.log"
    # The writer declares the topology; stop it before the events are published.
    with open(log, "w") as out:
        p = subprocess.Popen([f"{b}/producer", "collect"], env=env, stdout=out, stderr=out)
    wait_for_line(log, "collector consuming", p)
    stop([p])
    conn = pika.BlockingConnection(pika.URLParameters(os.environ["AMQP_URL"]))
    ch = conn.channel()
    ch.confirm_delivery()
    now = int(time.time() * 1000)
    for i, id_ in enumerate(ids):
        ev = {"v": 1, "job_id": f"j{i}", "file_id": id_, "bucket": "b", "key": f"k{i + 1}",
              "outcome": "done", "attempt": 1, "worker_id": "bench", "finished_at_ms": now,
              "results_bucket": "r", "results_prefix": f"p/{i}/", "duration_s": 1.0,
              "speech_s": 0.5, "segments": 1}
        ch.basic_publish(f"{PREFIX}.results", "result", msgpack.packb(ev),
                         pika.BasicProperties(delivery_mode=2, message_id=f"j{i}"))
    conn.close()
    with open(log, "w") as out:
        t0 = time.perf_counter()
        p = subprocess.Popen([f"{b}/producer", "collect"], env=env, stdout=out, stderr=out)
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as db:
        while True:
            done = db.execute(
                f"SELECT count(*) FROM {SCHEMA}.audio_files WHERE status = 'done'").fetchone()[0]
            if done == n:
                break
            if p.poll() is not None:
                raise SystemExit(f"collect: the writer exited ({log})")
            time.sleep(0.02)
    wall = time.perf_counter() - t0
    p.send_signal(signal.SIGTERM)
    p.wait()
    return wall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--events", type=int, default=5000)
    ap.add_argument("--compare")
    a = ap.parse_args()
    env = vadflow_env("collect")
    print("| collector | events | wall | events/s |")
    print("|---|---|---|---|")
    for label, b in (("this build", a.bin), ("compared build", a.compare)):
        if b:
            wall = run(b, a.events, env)
            print(f"| {label} ({b}) | {a.events} | {wall:.2f} s | {a.events / wall:.0f} |")


if __name__ == "__main__":
    main()
