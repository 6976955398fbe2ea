"""End-to-end benchmark driver (run by bench/e2e.sh): vadflow through the real RabbitMQ, S3 server
and PostgreSQL with 2 worker processes, against the Python references on the same files in the
same run:
  (a) the seed design: PostgreSQL listing, asyncio queue, 2-process pool, local files;
  (b) the same distributed: 2 pika + boto3 worker processes, RabbitMQ and the same S3 server;
and vadflow's local mode (`worker vad -j 2`) on the local files.

Usage: python e2e.py --bin target/release --batch DIR --name NAME
           [--runs vadflow,vadflow-all,vadflow-silero,a,b,local,local-all] [--repeat N]
Environment: AMQP_URL, DATABASE_URL, AWS_* (deploy/local/env.sh). Prints a JSON report.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import pika
import psycopg
import soundfile

HERE = os.path.dirname(os.path.abspath(__file__))
CLK = os.sysconf("SC_CLK_TCK")
BUCKET = "vadflow-bench"
PREFIX = "vadflow-bench-e2e"
SCHEMA = "vadflow_bench_e2e"


def proc_cpu_s(pid):
    """User + system CPU seconds of a live process and its waited-for children."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / CLK


def cpu_by_command():
    """CPU seconds so far of every process on the machine, summed by command name."""
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                head, rest = f.read().rsplit(")", 1)
        except OSError:
            continue
        name = head.split("(", 1)[1]
        name = "postgres" if name.startswith("postgres") else name
        out[name] = out.get(name, 0.0) + sum(int(x) for x in rest.split()[11:13]) / CLK
    return out


def machine_cpu_s():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    busy = sum(v) - v[3] - v[4]  # all but idle and iowait
    return busy / CLK


def pct(values, q):
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def wait_for_line(path, needle, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"e2e: {path}: process exited with {proc.returncode}")
        with open(path, errors="replace") as f:
            if needle in f.read():
                return
        time.sleep(0.05)
    raise SystemExit(f"e2e: {path}: no {needle!r} within {timeout} s")


def scrape_stages(log_path):
    """Mean seconds per stage from a worker's /metrics (address from its log)."""
    import urllib.request

    with open(log_path, errors="replace") as f:
        addr = next(json.loads(line)["addr"] for line in f if "serving /healthz" in line)
    text = urllib.request.urlopen(f"http://{addr}/metrics", timeout=10).read().decode()
    sums, counts = {}, {}
    for line in text.splitlines():
        m = re.match(r'vadflow_stage_duration_seconds_(sum|count)\{stage="(\w+)"\} (\S+)', line)
        if m:
            (sums if m[1] == "sum" else counts)[m[2]] = float(m[3])
    return sums, counts


def stop(procs):
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()


def vadflow_env(name):
    env = dict(os.environ)
    env.update(
        VADFLOW_QUEUE_PREFIX=PREFIX,
        VADFLOW_DB_SCHEMA=SCHEMA,
        VADFLOW_RESULTS_BUCKET=BUCKET,
        VADFLOW_RESULTS_PREFIX=f"results-{name}/",
        VADFLOW_HTTP_ADDR="127.0.0.1:0",
        LOG_FORMAT="json",
        RUST_LOG="info",
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def prepare(args, env, logs):
    """Fresh schema, queues and bucket; the batch uploaded and registered (not timed)."""
    b = args.bin
    subprocess.run([f"{b}/vadflow-demo", "reset"], env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([f"{b}/producer", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(logs, "register.log"), "w") as log:
        subprocess.run([f"{b}/producer", "register", "--from", args.batch,
                        f"s3://{BUCKET}/{args.name}/"], env=env, check=True, stdout=log, stderr=log)


def run_vadflow(args, env, logs, files, audio_s, outputs, engine="webrtc"):
    """vadflow end to end; `outputs` None means its default outputs."""
    b = args.bin
    env = dict(env, VADFLOW_ENGINE=engine)
    if outputs:
        env["VADFLOW_OUTPUTS"] = outputs
    procs = []
    collect_log = os.path.join(logs, "collect.log")
    with open(collect_log, "w") as out:
        collector = subprocess.Popen([f"{b}/producer", "collect"], env=env, stdout=out, stderr=out)
    procs.append(collector)
    worker_logs = []
    for i in range(2):
        path = os.path.join(logs, f"worker-{i}.log")
        worker_logs.append(path)
        with open(path, "w") as out:
            procs.append(subprocess.Popen([f"{b}/worker"], env=env, stdout=out, stderr=out))
    try:
        wait_for_line(collect_log, "collector consuming", collector)
        for path, p in zip(worker_logs, procs[1:]):
            wait_for_line(path, "consuming jobs", p)
        cpu0 = [proc_cpu_s(p.pid) for p in procs]
        by0 = cpu_by_command()
        m0 = machine_cpu_s()
        t0 = time.perf_counter()
        enqueue = subprocess.run([f"{b}/producer", "enqueue", "--since", "1h"], env=env,
                                 check=True, capture_output=True, text=True)
        subprocess.run([f"{b}/vadflow-demo", "wait", "--timeout-s", "3600"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        m1 = machine_cpu_s()
        cpu = sum(proc_cpu_s(p.pid) - c for p, c in zip(procs, cpu0))
        by1 = cpu_by_command()
        busy = sorted(((by1[k] - by0.get(k, 0.0), k) for k in by1), reverse=True)[:6]
        print("e2e: vadflow CPU by process: "
              + ", ".join(f"{k} {v:.2f} s" for v, k in busy if v > 0.01), file=sys.stderr)
        sums, counts = {}, {}
        for path in worker_logs:
            s, c = scrape_stages(path)
            for k in s:
                sums[k] = sums.get(k, 0) + s[k]
                counts[k] = counts.get(k, 0) + c.get(k, 0)
        stages = {k: sums[k] / counts[k] for k in sums if counts.get(k)}
        print(f"e2e: vadflow mean stage times: "
              + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in stages.items()), file=sys.stderr)
    finally:
        stop(procs)
    processing = []
    for path in worker_logs:
        with open(path, errors="replace") as f:
            for line in f:
                if '"job done"' in line:
                    processing.append(json.loads(line)["elapsed_ms"] / 1000)
    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        rows = conn.execute(
            f"SELECT status, extract(epoch FROM finished_at - queued_at) FROM {SCHEMA}.audio_files"
        ).fetchall()
    done = sum(1 for s, _ in rows if s == "done")
    assert done == files, f"vadflow: {done} of {files} files done: {enqueue.stdout}"
    name = f"vadflow, outputs {outputs}" if outputs else "vadflow, default outputs (4 per file)"
    id_ = "vadflow" if outputs else "vadflow-all"
    if engine != "webrtc":
        name, id_ = f"vadflow --engine {engine}, outputs {outputs}", f"vadflow-{engine}"
    return report(id_, name, files, audio_s, wall, cpu, m1 - m0,
                  processing,
                  [float(x) for _, x in rows if x is not None])


def run_reference_b(args, files, audio_s, keys, logs):
    amqp = os.environ["AMQP_URL"]
    jobs_q, results_q = f"{PREFIX}.ref.jobs", f"{PREFIX}.ref.results"
    conn = pika.BlockingConnection(pika.URLParameters(amqp))
    ch = conn.channel()
    for q in (jobs_q, results_q):
        ch.queue_delete(q)
        ch.queue_declare(q, durable=True)
    procs = []
    for i in range(2):
        with open(os.path.join(logs, f"ref-worker-{i}.log"), "w") as out:
            procs.append(subprocess.Popen(
                [sys.executable, os.path.join(HERE, "reference", "pika_worker.py"), "--amqp", amqp,
                 "--queue", jobs_q, "--results", results_q, "--bucket", BUCKET],
                stdout=out, stderr=out))
    try:
        deadline = time.time() + 60
        while ch.queue_declare(jobs_q, passive=True).method.consumer_count < 2:
            if time.time() > deadline or any(p.poll() is not None for p in procs):
                raise SystemExit("e2e: the reference workers did not start (see ref-worker-*.log)")
            time.sleep(0.05)
        ch.confirm_delivery()
        cpu0 = [proc_cpu_s(p.pid) for p in procs]
        m0 = machine_cpu_s()
        t0 = time.perf_counter()
        for key in keys:
            ch.basic_publish("", jobs_q, json.dumps({"bucket": BUCKET, "key": key}).encode(),
                             pika.BasicProperties(delivery_mode=2))
        processing, queue_to_done = [], []
        for _method, _props, body in ch.consume(results_q, auto_ack=True, inactivity_timeout=600):
            if body is None:
                raise SystemExit("e2e: reference (b) stalled")
            processing.append(json.loads(body)["elapsed_s"])
            queue_to_done.append(time.perf_counter() - t0)
            if len(processing) == files:
                break
        wall = time.perf_counter() - t0
        m1 = machine_cpu_s()
        cpu = sum(proc_cpu_s(p.pid) - c for p, c in zip(procs, cpu0))
        ch.cancel()
    finally:
        stop(procs)
        conn.close()
    return report("b", "reference (b): 2 pika + boto3 workers", files, audio_s, wall, cpu, m1 - m0,
                  processing, queue_to_done)


def run_reference_a(args, files, audio_s):
    out = tempfile.mkdtemp(prefix="vadflow-bench-a-")
    m0 = machine_cpu_s()
    t0 = time.perf_counter()
    p = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "reference", "seed_pool.py"), "--dsn",
         os.environ["DATABASE_URL"], "--schema", SCHEMA, "--strip", f"{args.name}/",
         "--root", args.batch, "--out", out], stdout=subprocess.PIPE, text=True)
    stdout = p.stdout.read()
    # wait4, not wait: its resource usage covers the pool's processes too.
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    m1 = machine_cpu_s()
    assert p.returncode == 0, "reference (a) failed"
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["files"] == files, result
    cpu = usage.ru_utime + usage.ru_stime
    return report("a", "reference (a): seed design, 2-process pool, local files", files, audio_s,
                  wall, cpu, m1 - m0, result["latencies_s"], [])


def run_local(args, files, audio_s, outputs):
    out = tempfile.mkdtemp(prefix="vadflow-bench-local-")
    m0 = machine_cpu_s()
    t0 = time.perf_counter()
    extra = ["--outputs", outputs] if outputs else []
    p = subprocess.Popen([f"{args.bin}/worker", "vad", "-j", "2", "--no-progress", *extra,
                          "--out", out, args.batch], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env=dict(os.environ, RUST_LOG="warn"))
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    m1 = machine_cpu_s()
    assert p.returncode == 0, "worker vad failed"
    name = (f"vadflow local mode (worker vad -j 2), outputs {outputs}" if outputs
            else "vadflow local mode (worker vad -j 2), default outputs")
    return report("local" if outputs else "local-all", name, files, audio_s, wall,
                  usage.ru_utime + usage.ru_stime, m1 - m0, [], [])


def report(id_, name, files, audio_s, wall, cpu, machine_cpu, processing, queue_to_done):
    hours = audio_s / 3600
    return {
        "id": id_,
        "name": name,
        "files": files,
        "audio_h": hours,
        "wall_s": wall,
        "files_per_s": files / wall,
        "audio_h_per_wall_h": hours / (wall / 3600),
        "cpu_s_per_audio_h": cpu / hours,
        "machine_cpu_s_per_audio_h": machine_cpu / hours,
        "processing_p50_s": pct(processing, 0.5),
        "processing_p99_s": pct(processing, 0.99),
        "queue_to_done_p50_s": pct(queue_to_done, 0.5),
        "queue_to_done_p99_s": pct(queue_to_done, 0.99),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--batch", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--runs", default="vadflow,vadflow-all,a,b,local,local-all")
    ap.add_argument("--logs", default=None)
    ap.add_argument("--repeat", type=int, default=3, help="rounds; the median round is reported")
    args = ap.parse_args()
    runs = args.runs.split(",")
    names = sorted(n for n in os.listdir(args.batch) if re.search(r"\.(wav|flac|mp3|ogg|opus)$", n))
    files = len(names)
    audio_s = sum(soundfile.info(os.path.join(args.batch, n)).duration for n in names)
    logs = args.logs or tempfile.mkdtemp(prefix="vadflow-bench-logs-")
    os.makedirs(logs, exist_ok=True)
    env = vadflow_env(args.name)
    prepare(args, env, logs)
    keys = [f"{args.name}/{n}" for n in names]
    runs_by_id = {}
    for rep in range(args.repeat):
        for run in runs:
            if run in ("vadflow", "vadflow-all", "vadflow-silero"):
                # The same outputs as reference (b): segments and the speech-only audio.
                outputs = None if run == "vadflow-all" else "segments.json,speech.wav"
                engine = "silero" if run == "vadflow-silero" else "webrtc"
                r = run_vadflow(args, env, logs, files, audio_s, outputs, engine)
                # Another vadflow run needs the rows pending again: re-register from scratch.
                prepare(args, env, logs)
            elif run == "a":
                r = run_reference_a(args, files, audio_s)
            elif run == "b":
                r = run_reference_b(args, files, audio_s, keys, logs)
            elif run in ("local", "local-all"):
                # The same outputs as reference (a): one JSON of segments per file.
                r = run_local(args, files, audio_s, "segments.json" if run == "local" else None)
            else:
                raise SystemExit(f"e2e: unknown run {run}")
            runs_by_id.setdefault(r["id"], []).append(r)
            print(f"e2e: round {rep + 1}: {r['name']}: {r['wall_s']:.2f} s", file=sys.stderr)
    # Each run's median round (by wall time), with every round's wall time.
    results = []
    for rounds in runs_by_id.values():
        median = sorted(rounds, key=lambda r: r["wall_s"])[len(rounds) // 2]
        median["rounds_wall_s"] = [r["wall_s"] for r in rounds]
        results.append(median)
    print(json.dumps({"batch": args.name, "files": files, "audio_s": audio_s,
                      "results": results}, indent=1))


if __name__ == "__main__":
    main()
