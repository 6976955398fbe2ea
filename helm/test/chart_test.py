"""Chart checks: lint, render with KEDA and the ServiceMonitor on and off, validate every manifest
against the Kubernetes 1.29-1.31 schemas (strict), and assert the properties the chart promises.
Run by helm/test/run.sh (and so by tests/run.sh)."""

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import kubernetes_validate
import yaml

HELM = sys.argv[1]
PROMTOOL = str(Path(HELM).parent / "promtool")
HERE = Path(__file__).resolve().parent
CHART = str(HERE.parent / "vadflow")
OPERATIONS = HERE.parent.parent / "docs" / "operations.md"
VERSIONS = ["1.29.0", "1.30.0", "1.31.0"]
CRD_GROUPS = ("keda.sh/", "monitoring.coreos.com/")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def render(*args):
    out = subprocess.run([HELM, "template", "t", CHART, "--namespace", "vadflow", *args], check=True,
                         capture_output=True, text=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def find(docs, kind, suffix=""):
    return [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]


def pod_specs(docs):
    for d in docs:
        if d["kind"] in ("Deployment", "Job"):
            yield d["metadata"]["name"], d["spec"]["template"]["spec"]
        elif d["kind"] == "CronJob":
            yield d["metadata"]["name"], d["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def validate(docs, label):
    for d in docs:
        if d["apiVersion"].startswith(CRD_GROUPS):
            continue
        for v in VERSIONS:
            try:
                kubernetes_validate.validate(d, v, strict=True)
            except Exception as e:  # noqa: BLE001 - any validation problem fails the check
                failures.append(f"{label}: {d['kind']}/{d['metadata']['name']} invalid for {v}: {e}")


lint = subprocess.run([HELM, "lint", "--strict", CHART], capture_output=True, text=True)
check(lint.returncode == 0, f"helm lint --strict: {lint.stdout}{lint.stderr}")

combos = {
    "replicas": render(),
    "keda": render("--set", "keda.enabled=true"),
    "monitoring": render("--api-versions", "monitoring.coreos.com/v1"),
    "monitoring-off": render("--api-versions", "monitoring.coreos.com/v1",
                             "--set", "serviceMonitor.enabled=false"),
    "keda+monitoring": render("--set", "keda.enabled=true",
                              "--api-versions", "monitoring.coreos.com/v1"),
}
for label, docs in combos.items():
    validate(docs, label)

    # Secrets come only from Secrets: no Secret rendered, no literal credentials anywhere.
    check(not find(docs, "Secret"), f"{label}: the chart renders a Secret")
    for cm in find(docs, "ConfigMap"):
        for k in cm["data"]:
            check(not any(s in k for s in ("URL", "SECRET", "PASSWORD", "ACCESS_KEY"))
                  or k == "AWS_ENDPOINT_URL", f"{label}: ConfigMap carries {k}")
    for name, spec in pod_specs(docs):
        sc = spec.get("securityContext", {})
        check(sc.get("runAsNonRoot") is True, f"{label}: {name} pod runAsNonRoot")
        check(sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{label}: {name} seccomp")
        vols = {v["name"]: v for v in spec.get("volumes", [])}
        check("emptyDir" in vols.get("tmp", {}), f"{label}: {name} /tmp emptyDir")
        for c in spec["containers"]:
            csc = c.get("securityContext", {})
            check(csc.get("readOnlyRootFilesystem") is True, f"{label}: {name} readOnlyRootFilesystem")
            check(csc.get("allowPrivilegeEscalation") is False, f"{label}: {name} privilege escalation")
            check(csc.get("capabilities", {}).get("drop") == ["ALL"], f"{label}: {name} drop ALL")
            check(any(m["mountPath"] == "/tmp" for m in c.get("volumeMounts", [])), f"{label}: {name} mounts /tmp")
            check(bool(c.get("resources", {}).get("requests")), f"{label}: {name} resources")
            for e in c.get("env", []):
                secretish = any(s in e["name"] for s in ("URL", "SECRET", "PASSWORD", "KEY"))
                if secretish:
                    check("secretKeyRef" in e.get("valueFrom", {}),
                          f"{label}: {name} env {e['name']} is not from a Secret")

    worker = find(docs, "Deployment", "-worker")[0]
    wspec = worker["spec"]["template"]["spec"]
    wc = wspec["containers"][0]
    check(wc["livenessProbe"]["httpGet"]["path"] == "/healthz", f"{label}: worker liveness")
    check(wc["readinessProbe"]["httpGet"]["path"] == "/readyz", f"{label}: worker readiness")
    shutdown = int(find(docs, "ConfigMap", "t-vadflow")[0]["data"]["VADFLOW_SHUTDOWN_TIMEOUT"].rstrip("s"))
    check(wspec["terminationGracePeriodSeconds"] > shutdown, f"{label}: grace period above shutdown timeout")
    collector = find(docs, "Deployment", "-collector")[0]
    cc = collector["spec"]["template"]["spec"]["containers"][0]
    check(cc["args"] == ["collect"] and collector["spec"]["replicas"] == 1, f"{label}: one collector")
    check(cc["readinessProbe"]["httpGet"]["path"] == "/readyz", f"{label}: collector readiness")
    check(len(find(docs, "PodDisruptionBudget")) == 1, f"{label}: PodDisruptionBudget")

    cron = find(docs, "CronJob")[0]["spec"]
    ec = cron["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    check(ec["args"] == ["enqueue", "--since", "yesterday", "--stale-after", "24h"], f"{label}: CronJob runs enqueue --since yesterday --stale-after 24h")
    check(cron["concurrencyPolicy"] == "Forbid", f"{label}: CronJob Forbid")
    check(cron["schedule"] == "15 0 * * *", f"{label}: CronJob schedule from values")
    check("startingDeadlineSeconds" in cron and "successfulJobsHistoryLimit" in cron
          and "failedJobsHistoryLimit" in cron, f"{label}: CronJob deadlines and history limits")

    migrate = find(docs, "Job", "-migrate")
    check(len(migrate) == 1 and migrate[0]["metadata"]["annotations"]["helm.sh/hook"]
          == "pre-install,pre-upgrade", f"{label}: migration hook")

    keda = "keda" in label
    scaled = find(docs, "ScaledObject")
    check(("replicas" in worker["spec"]) != keda, f"{label}: replicas only without KEDA")
    check(len(scaled) == int(keda), f"{label}: ScaledObject only with KEDA")
    check(len(find(docs, "TriggerAuthentication")) == int(keda), f"{label}: TriggerAuthentication only with KEDA")
    if keda:
        trig = scaled[0]["spec"]["triggers"][0]
        check(trig["type"] == "rabbitmq" and trig["metadata"]["mode"] == "QueueLength"
              and trig["metadata"]["queueName"] == "vadflow.jobs"
              and trig["metadata"]["value"] == "20" and trig["metadata"]["activationValue"] == "1",
              f"{label}: rabbitmq trigger on the work queue: {trig}")
        auth = find(docs, "TriggerAuthentication")[0]["spec"]["secretTargetRef"][0]
        check(auth["parameter"] == "host" and auth["name"] == "vadflow-amqp", f"{label}: AMQP URL from a Secret")
        check(scaled[0]["spec"]["scaleTargetRef"]["name"] == worker["metadata"]["name"], f"{label}: scales the worker")
    monitors = find(docs, "ServiceMonitor")
    want_monitor = label in ("monitoring", "keda+monitoring")
    check(len(monitors) == int(want_monitor), f"{label}: ServiceMonitor {'present' if want_monitor else 'absent'}")
    want_rules = label in ("monitoring", "monitoring-off", "keda+monitoring")
    check(len(find(docs, "PrometheusRule")) == int(want_rules),
          f"{label}: PrometheusRule {'present' if want_rules else 'absent'}")

    # Identity: one ServiceAccount, used by every long-running pod; no API token mounted.
    accounts = find(docs, "ServiceAccount")
    check(len(accounts) == 1 and accounts[0]["automountServiceAccountToken"] is False,
          f"{label}: one ServiceAccount without an API token")
    for name, spec in pod_specs(docs):
        if name.endswith("-migrate"):
            continue  # a pre-install hook: it runs before the ServiceAccount exists
        check(spec.get("serviceAccountName") == accounts[0]["metadata"]["name"],
              f"{label}: {name} runs as the chart's ServiceAccount")
        check(spec.get("automountServiceAccountToken") is False, f"{label}: {name} mounts no API token")
    # The dashboard, for Grafana's sidecar.
    dash = find(docs, "ConfigMap", "-dashboard")
    check(len(dash) == 1 and dash[0]["metadata"]["labels"].get("grafana_dashboard") == "1",
          f"{label}: dashboard ConfigMap with the sidecar's label")

# A grace period at or below the drain time is refused.
bad = subprocess.run([HELM, "template", "t", CHART, "--set", "worker.terminationGracePeriodSeconds=25"],
                     capture_output=True, text=True)
check(bad.returncode != 0 and "must exceed" in bad.stderr, "grace period <= shutdown timeout is refused")
# The schema refuses nonsense.
bad = subprocess.run([HELM, "template", "t", CHART, "--set", "keda.queueLength=0"], capture_output=True, text=True)
check(bad.returncode != 0, "values.schema.json refuses keda.queueLength=0")
bad = subprocess.run([HELM, "template", "t", CHART, "--set", "worker.engine=vosk"], capture_output=True, text=True)
check(bad.returncode != 0, "values.schema.json refuses an unknown engine")
# The engine is a value: webrtc by default, silero when asked.
engines = {e: find(render("--set", f"worker.engine={e}") if e != "default" else render(), "ConfigMap", "t-vadflow")[0]
           ["data"].get("VADFLOW_ENGINE") for e in ("default", "silero")}
check(engines == {"default": "webrtc", "silero": "silero"}, f"VADFLOW_ENGINE from worker.engine: {engines}")
precisions = {p: find(render("--set", f"worker.autoPrecision={p}") if p != "default" else render(), "ConfigMap",
                      "t-vadflow")[0]["data"]["VADFLOW_AUTO_PRECISION"] for p in ("default", "f32")}
check(precisions == {"default": "int8", "f32": "f32"}, f"VADFLOW_AUTO_PRECISION from worker.autoPrecision: {precisions}")
bad = subprocess.run([HELM, "template", "t", CHART, "--set", "worker.autoPrecision=f16"], capture_output=True, text=True)
check(bad.returncode != 0, "values.schema.json refuses an unknown precision")
decoders = {d: find(render("--set", f"worker.decoder={d}") if d != "default" else render(), "ConfigMap", "t-vadflow")[0]
            ["data"]["VADFLOW_DECODER"] for d in ("default", "native", "ffmpeg")}
check(decoders == {"default": "auto", "native": "native", "ffmpeg": "ffmpeg"},
      f"VADFLOW_DECODER from worker.decoder: {decoders}")
chans = {c: find(render("--set", f"worker.channels={c}") if c != "default" else render(), "ConfigMap", "t-vadflow")[0]
         ["data"]["VADFLOW_CHANNELS"] for c in ("default", "separate", "auto")}
check(chans == {"default": "mix", "separate": "separate", "auto": "auto"},
      f"VADFLOW_CHANNELS from worker.channels: {chans}")
chunked = find(render("--set", "worker.chunkMax=30s", "--set", "worker.chunkMin=2s"), "ConfigMap", "t-vadflow")[0]["data"]
check(chunked.get("VADFLOW_CHUNK_MAX") == "30s" and chunked.get("VADFLOW_CHUNK_MIN") == "2s",
      f"worker.chunkMax/chunkMin: {chunked}")
check("VADFLOW_CHUNK_MAX" not in find(render(), "ConfigMap", "t-vadflow")[0]["data"], "no chunks by default")
scored = {v: find(render("--set", f"worker.segmentScores={v}"), "ConfigMap", "t-vadflow")[0]["data"]
          ["VADFLOW_SEGMENT_SCORES"] for v in ("true", "false")}
check(scored == {"true": "true", "false": "false"}, f"worker.segmentScores: {scored}")
bad = subprocess.run([HELM, "template", "t", CHART, "--set", "worker.decoder=gstreamer"], capture_output=True, text=True)
check(bad.returncode != 0, "values.schema.json refuses an unknown decoder")
# Concurrency is explicit by default: without a CPU limit, "per CPU" would mean the node's CPUs.
conc = find(render(), "ConfigMap", "t-vadflow")[0]["data"].get("VADFLOW_CONCURRENCY")
check(conc == "4", f"VADFLOW_CONCURRENCY defaults to 4: {conc}")
chart = yaml.safe_load(Path(CHART, "Chart.yaml").read_text())
check("kubeVersion" in chart, "Chart.yaml kubeVersion")
check(Path(CHART, "values.schema.json").exists() and Path(CHART, "templates", "NOTES.txt").exists(),
      "values.schema.json and NOTES.txt")

# --- Identity and S3 settings -------------------------------------------------------------
def env_of(docs, suffix):
    c = find(docs, "Deployment", suffix)[0]["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e for e in c.get("env", [])}


irsa = render("--set", "secrets.s3.existingSecret=",
              "--set", "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::111122223333:role/vadflow")
validate(irsa, "irsa")
check("AWS_ACCESS_KEY_ID" not in env_of(irsa, "-worker") and "AWS_SECRET_ACCESS_KEY" not in env_of(irsa, "-worker"),
      "irsa: no static keys without the S3 Secret")
check(find(irsa, "ServiceAccount")[0]["metadata"].get("annotations", {}).get("eks.amazonaws.com/role-arn")
      == "arn:aws:iam::111122223333:role/vadflow", "irsa: the role annotation on the ServiceAccount")
check("secretKeyRef" in env_of(render(), "-worker")["AWS_ACCESS_KEY_ID"]["valueFrom"], "static keys by default, from the Secret")
existing = render("--set", "serviceAccount.create=false", "--set", "serviceAccount.name=team-s3-reader")
validate(existing, "existing-sa")
check(not find(existing, "ServiceAccount"), "existing-sa: no ServiceAccount rendered")
check(all(spec.get("serviceAccountName") == "team-s3-reader"
          for name, spec in pod_specs(existing) if not name.endswith("-migrate")), "existing-sa: pods use it")
cm = find(render("--set", "s3.sse=aws:kms", "--set", "s3.sseKmsKeyId=alias/vadflow", "--set", "s3.addressing=path"),
          "ConfigMap", "t-vadflow")[0]["data"]
check(cm.get("VADFLOW_S3_SSE") == "aws:kms" and cm.get("VADFLOW_S3_SSE_KMS_KEY_ID") == "alias/vadflow"
      and cm.get("VADFLOW_S3_ADDRESSING") == "path", f"S3 encryption and addressing from values: {cm}")
check(find(render(), "ConfigMap", "t-vadflow")[0]["data"]["AWS_EC2_METADATA_DISABLED"] == "true",
      "instance metadata off by default")
bad = subprocess.run([HELM, "template", "t", CHART, "--set", "s3.sse=DES"], capture_output=True, text=True)
check(bad.returncode != 0, "values.schema.json refuses an unknown encryption")
stored = env_of(render("--set", "collector.storeSegments=true"), "-collector")
check(stored.get("VADFLOW_STORE_SEGMENTS", {}).get("value") == "true" and "AWS_ACCESS_KEY_ID" in stored,
      "collector.storeSegments: the flag and S3 access for the collector")
check("VADFLOW_STORE_SEGMENTS" not in env_of(render(), "-collector"), "segments are not stored by default")
check(not find(render("--set", "grafanaDashboard.enabled=false"), "ConfigMap", "-dashboard"), "dashboard can be off")
check(not find(render("--api-versions", "monitoring.coreos.com/v1", "--set", "prometheusRule.enabled=false"),
               "PrometheusRule"), "alerts can be off")

catalog = render("--set", "producer.registerSql=SELECT s3_uri AS uri FROM calls",
                 "--set", "secrets.sourceDatabase.existingSecret=catalog-db")
validate(catalog, "register-sql")
job = find(catalog, "CronJob")[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
init = job.get("initContainers", [{}])[0]
check(init.get("args") == ["register", "--sql", "SELECT s3_uri AS uri FROM calls"]
      and job["containers"][0]["args"][0] == "enqueue", "registerSql: register --sql, then enqueue")
init_env = {e["name"]: e for e in init.get("env", [])}
check(init_env.get("VADFLOW_SOURCE_DATABASE_URL", {}).get("valueFrom", {}).get("secretKeyRef", {}).get("name")
      == "catalog-db", "registerSql: the source database URL from its Secret")
check("initContainers" not in find(render(), "CronJob")[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"],
      "no register step by default")

# --- The dashboard ------------------------------------------------------------------------
board = json.loads(find(render(), "ConfigMap", "-dashboard")[0]["data"]["vadflow.json"])
titles = " | ".join(p["title"] for p in board["panels"])
for want in ("audio-hours per hour", "by outcome", "by reason", "Queue depths", "percentiles",
             "Stage duration", "Workers ready", "Collector lag"):
    check(want in titles, f"dashboard has a panel for {want!r}: {titles}")
check(all(t.get("expr") for p in board["panels"] for t in p["targets"]), "every dashboard panel has a query")

# --- The alerts: promtool check rules, then the unit tests --------------------------------
rule = find(render("--api-versions", "monitoring.coreos.com/v1"), "PrometheusRule")[0]
alerts = [r for g in rule["spec"]["groups"] for r in g["rules"]]
runbook = OPERATIONS.read_text()
anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
           for h in re.findall(r"^#+ (.+)$", runbook, re.M)}
for a in alerts:
    url = a["annotations"].get("runbook_url", "")
    check(url.startswith("https://") and "#" in url and url.split("#")[1] in anchors,
          f"alert {a['alert']}: runbook_url {url!r} names a section of docs/operations.md")
with tempfile.TemporaryDirectory() as tmp:
    Path(tmp, "full.yaml").write_text(yaml.safe_dump(rule["spec"]))
    checked = subprocess.run([PROMTOOL, "check", "rules", str(Path(tmp, "full.yaml"))], capture_output=True, text=True)
    check(checked.returncode == 0, f"promtool check rules: {checked.stdout}{checked.stderr}")
    # The unit tests test expressions, labels and timing; annotations are checked above.
    for g in rule["spec"]["groups"]:
        for r in g["rules"]:
            r.pop("annotations", None)
    Path(tmp, "rules.yaml").write_text(yaml.safe_dump(rule["spec"]))
    shutil.copy(HERE / "alerts_test.yaml", tmp)
    tested = subprocess.run([PROMTOOL, "test", "rules", str(Path(tmp, "alerts_test.yaml"))],
                            capture_output=True, text=True)
    check(tested.returncode == 0, f"promtool test rules: {tested.stdout}{tested.stderr}")
    units = len(yaml.safe_load((HERE / "alerts_test.yaml").read_text())["tests"])
    fired = {t["alertname"] for u in yaml.safe_load((HERE / "alerts_test.yaml").read_text())["tests"]
             for t in u["alert_rule_test"] if t["exp_alerts"]}
    check(fired == {a["alert"] for a in alerts}, f"every alert has a unit test where it fires: {fired}")

total = sum(len(d) for d in combos.values())
if failures:
    print("chart checks FAILED:")
    for f in failures:
        print("  -", f)
    sys.exit(1)
print(f"chart checks: ok ({len(combos)} renderings, {total} manifests, Kubernetes {', '.join(VERSIONS)} strict; "
      f"{len(alerts)} alerts: promtool check and {units} unit tests)")
