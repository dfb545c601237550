"""The chart and compose checks of scripts/deploy-check (run in its tools venv)."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import jsonschema
import yaml
from helm_python.chart import Chart, lint

CHART = "deploy/helm/connectors"
VALUES = sorted(Path("deploy/helm/values").glob("*.yaml"))
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule"}
validator = sys.argv[1]


def fail(message: str) -> None:
    print(f"deploy-check: {message}", file=sys.stderr)
    sys.exit(1)


# The JSON Schema the binary prints (`connectors schema`), as an editor or a CI job of a
# user would apply it: every config this repository ships must pass it.
SCHEMA = json.loads(subprocess.run([validator, "schema"], capture_output=True, text=True, check=True).stdout)
SCHEMA_CHECK = jsonschema.validators.validator_for(SCHEMA)
SCHEMA_CHECK.check_schema(SCHEMA)
schema_checked = 0


def schema_accepts(what: str, doc: dict) -> None:
    global schema_checked
    errors = list(SCHEMA_CHECK(SCHEMA, format_checker=SCHEMA_CHECK.FORMAT_CHECKER).iter_errors(doc))
    if errors:
        listed = "; ".join(f"{e.json_path}: {e.message[:200]}" for e in errors[:5])
        fail(f"the JSON Schema of `connectors schema` rejects {what}: {listed}")
    schema_checked += 1


schema_accepts("connectors.json", json.loads(Path("connectors.json").read_text()))
if json.loads(Path("connectors.schema.json").read_text()) != SCHEMA:
    fail("connectors.schema.json is not what `connectors schema` prints: run `just schema`")


def render(values: dict) -> list[dict]:
    out = Chart.load(CHART).render(values, name="check", namespace="connectors")
    docs = []
    for path, text in out.items():
        if path.endswith(".yaml"):
            docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def everything_on(values: dict) -> dict:
    values = json.loads(json.dumps(values))
    for key in ("serviceMonitor", "prometheusRule", "dashboard"):
        values.setdefault(key, {})["enabled"] = True
    return values


checked = 0
with tempfile.TemporaryDirectory() as tmp:
    cases = [("defaults", {})] + [(p.name, yaml.safe_load(p.read_text())) for p in VALUES]
    for name, values in cases:
        for variant, vals in ((name, values), (f"{name} with monitoring", everything_on(values))):
            report = lint(CHART, vals, strict=True)
            problems = report.get("errors", []) + [
                m for m in report.get("messages", []) if m.get("severity", 0) >= 2
            ]
            if problems:
                fail(f"helm lint --strict ({variant}): {problems}")
            docs = render(vals)
            for i, doc in enumerate(docs):
                kind = doc.get("kind")
                if kind in CUSTOM_KINDS:
                    if kind == "PrometheusRule":
                        groups = doc["spec"]["groups"]
                        for group in groups:
                            for rule in group["rules"]:
                                if not rule.get("alert") or not rule.get("expr"):
                                    fail(f"a PrometheusRule rule without alert or expr: {rule}")
                    continue
                f = Path(tmp) / f"{checked}-{i}.yaml"
                f.write_text(yaml.safe_dump(doc))
                result = subprocess.run(
                    ["kubernetes-validate", "--strict", "--quiet", str(f)],
                    capture_output=True,
                    text=True,
                )
                if result.returncode != 0:
                    fail(f"kubernetes-validate ({variant}, {kind}): {result.stdout}{result.stderr}")
                if kind == "Deployment":
                    spec = doc["spec"]["template"]["spec"]
                    container = spec["containers"][0]
                    grace = int(next(e["value"] for e in container["env"] if e["name"] == "SHUTDOWN_GRACE_SECONDS"))
                    if spec["terminationGracePeriodSeconds"] <= grace:
                        fail(f"terminationGracePeriodSeconds must exceed SHUTDOWN_GRACE_SECONDS ({variant})")
                    sc = container["securityContext"]
                    if sc.get("readOnlyRootFilesystem") is not True or sc["capabilities"]["drop"] != ["ALL"]:
                        fail(f"the container is not hardened ({variant})")
                if kind == "ConfigMap" and "connectors.json" in doc.get("data", {}):
                    # The rendered connector config passes the product's own validation.
                    cfg = Path(tmp) / f"{checked}-{i}.json"
                    cfg.write_text(doc["data"]["connectors.json"])
                    schema_accepts(f"the rendered connectors.json of {variant}", json.loads(doc["data"]["connectors.json"]))
                    env = dict(os.environ, CONNECTORS_CONFIG_PATH=str(cfg), HTTP_PORT="off", RUST_LOG="error")
                    text = cfg.read_text()
                    while "${" in text:
                        start = text.index("${")
                        var = text[start + 2 : text.index("}", start)].split(":-")[0]
                        env[var] = "check-value-0123456789"
                        text = text[text.index("}", start) :]
                    env.pop("REDIS_URL", None)
                    result = subprocess.run([validator, "validate"], env=env, capture_output=True, text=True)
                    if result.returncode != 0:
                        fail(f"the rendered connectors.json of {variant} does not validate: {result.stderr}")
            checked += 1
    # A value that breaks the schema fails the install.
    broken = {"connectors": {"x": {"enabled": True, "binary": "connector-nope", "config": {"type": "JIRA"}}}}
    try:
        render(broken)
    except Exception as e:  # helm_python raises its own error type
        if "binary" not in str(e):
            fail(f"the schema error does not name the field: {e}")
    else:
        fail("values that break values.schema.json rendered without an error")
    try:
        render({"shutdownGraceSeconds": "soon"})
    except Exception:
        pass
    else:
        fail("a string grace period rendered without an error")
print(f"deploy-check: chart ok ({checked} renders, each resource validated)")
print(f"deploy-check: JSON Schema ok ({schema_checked} shipped configs accepted)")

# The compose file: parses, and runs Redis plus the connectors reading connectors.json.
compose = yaml.safe_load(Path("deploy/compose.yaml").read_text())
services = compose.get("services", {})
if set(services) != {"redis", "connectors"}:
    fail(f"compose services: {sorted(services)}")
mounts = services["connectors"].get("volumes", [])
if not any("connectors.json:/etc/connectors/connectors.json" in m for m in mounts):
    fail("compose: the connectors service does not mount connectors.json")
if services["connectors"]["environment"].get("REDIS_URL") != "redis://redis:6379":
    fail("compose: the connectors service is not pointed at the redis service")
print("deploy-check: compose ok")
