"""Chart checks: lint, render with KEDA and the ServiceMonitor on and off, validate every manifest
against the Kubernetes 1.29-1.31 schemas (strict), and assert the properties the chart promises.
Run by helm/test/run.sh (and so by tests/run.sh)."""

import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import yaml

HELM = sys.argv[1]
CHART = str(Path(__file__).resolve().parent.parent / "vadflow")
VERSIONS = ["1.29.0", "1.30.0", "1.31.0"]
CRD_GROUPS = ("keda.sh/", "monitoring.coreos.com/")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def render(*args):
    out = subprocess.run([HELM, "template", "t", CHART, *args], check=True,
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
    shutdown = int(find(docs, "ConfigMap")[0]["data"]["VADFLOW_SHUTDOWN_TIMEOUT"].rstrip("s"))
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
engines = {e: find(render("--set", f"worker.engine={e}") if e != "default" else render(), "ConfigMap")[0]
           ["data"].get("VADFLOW_ENGINE") for e in ("default", "silero")}
check(engines == {"default": "webrtc", "silero": "silero"}, f"VADFLOW_ENGINE from worker.engine: {engines}")
decoders = {d: find(render("--set", f"worker.decoder={d}") if d != "default" else render(), "ConfigMap")[0]
            ["data"]["VADFLOW_DECODER"] for d in ("default", "native", "ffmpeg")}
check(decoders == {"default": "auto", "native": "native", "ffmpeg": "ffmpeg"},
      f"VADFLOW_DECODER from worker.decoder: {decoders}")
chans = {c: find(render("--set", f"worker.channels={c}") if c != "default" else render(), "ConfigMap")[0]
         ["data"]["VADFLOW_CHANNELS"] for c in ("default", "separate", "auto")}
check(chans == {"default": "mix", "separate": "separate", "auto": "auto"},
      f"VADFLOW_CHANNELS from worker.channels: {chans}")
bad = subprocess.run([HELM, "template", "t", CHART, "--set", "worker.decoder=gstreamer"], capture_output=True, text=True)
check(bad.returncode != 0, "values.schema.json refuses an unknown decoder")
# Concurrency is explicit by default: without a CPU limit, "per CPU" would mean the node's CPUs.
conc = find(render(), "ConfigMap")[0]["data"].get("VADFLOW_CONCURRENCY")
check(conc == "4", f"VADFLOW_CONCURRENCY defaults to 4: {conc}")
chart = yaml.safe_load(Path(CHART, "Chart.yaml").read_text())
check("kubeVersion" in chart, "Chart.yaml kubeVersion")
check(Path(CHART, "values.schema.json").exists() and Path(CHART, "templates", "NOTES.txt").exists(),
      "values.schema.json and NOTES.txt")

total = sum(len(d) for d in combos.values())
if failures:
    print("chart checks FAILED:")
    for f in failures:
        print("  -", f)
    sys.exit(1)
print(f"chart checks: ok ({len(combos)} renderings, {total} manifests, Kubernetes {', '.join(VERSIONS)} strict)")
