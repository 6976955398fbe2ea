"""Reference (a), the seed design (../shared/seeds/prepare_audio_module): file references are
read from PostgreSQL, an asyncio queue feeds a pool of 2 processes that decode (soundfile),
resample (soxr) and run py-webrtcvad on local files, and one JSON of segments is written per file.

Usage: python seed_pool.py --dsn DSN --schema SCHEMA --strip PREFIX --root DIR --out DIR [--procs 2]
(a row's key, without PREFIX, is its path under --root). Prints a JSON line with per-file times.
"""

import argparse
import asyncio
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor

import psycopg

import vadcore


def process_audio_sync(path, out_path):
    started = time.perf_counter()
    pcm = vadcore.decode(path)
    segs = vadcore.segments(pcm)
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "wb") as f:
        f.write(vadcore.segments_json(path, pcm, segs))
    return time.perf_counter() - started


def fetch_rows(dsn, schema):
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute(f'SELECT key FROM "{schema}".audio_files ORDER BY id')]


async def main():
    ap = argparse.ArgumentParser()
    for flag in ("--dsn", "--schema", "--strip", "--root", "--out"):
        ap.add_argument(flag, required=True)
    ap.add_argument("--procs", type=int, default=2)
    a = ap.parse_args()
    queue = asyncio.Queue()
    for key in await asyncio.to_thread(fetch_rows, a.dsn, a.schema):
        rel = key[len(a.strip):]
        queue.put_nowait((os.path.join(a.root, rel), os.path.join(a.out, rel + ".json")))
    loop = asyncio.get_running_loop()
    times = []
    with ProcessPoolExecutor(a.procs) as pool:

        async def worker():
            while not queue.empty():
                path, out = queue.get_nowait()
                times.append(await loop.run_in_executor(pool, process_audio_sync, path, out))
                queue.task_done()

        await asyncio.gather(*(worker() for _ in range(a.procs)))
    print(json.dumps({"files": len(times), "latencies_s": times}))


if __name__ == "__main__":
    asyncio.run(main())
