#!/usr/bin/env bash
# Checks the deployment and monitoring files without a cluster, a Docker engine or a
# network connection to either:
#
# - monitoring/: promtool check config, check rules and test rules, and every PromQL
#   query of the Grafana dashboards through promtool.
# - deploy/k8s/: every manifest against the Kubernetes OpenAPI schema with
#   kubernetes-validate --strict (schemas ship inside the package), the kustomization's
#   resource list, and the restricted Pod Security settings of every pod template.
# - deploy/compose.yaml: parsed, with the required services and the files it mounts.
# - deploy/backup/*.sh: bash syntax.
#
# Installs what is missing: promtool from Debian's prometheus package (apt-get, so it
# needs root) and kubernetes-validate from PyPI. Runs every check, then exits 1 if any
# failed.
set -euo pipefail
cd "$(dirname "$0")/.."

# kubernetes-validate 1.37.0 validates against the Kubernetes 1.37 schemas by default.
KUBERNETES_VALIDATE_VERSION=1.37.0

install_promtool() {
    if command -v promtool > /dev/null; then
        return
    fi
    if [[ $(id -u) -ne 0 ]]; then
        echo "check-deploy: promtool not found; install Debian's prometheus package" \
            "(apt-get install prometheus) or put promtool on PATH" >&2
        exit 1
    fi
    echo "check-deploy: installing promtool (Debian package prometheus)"
    # NOTE: on a host that runs systemd, the package also enables and starts a
    # Prometheus server on port 9090. Containers without an init system skip that.
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq --no-install-recommends prometheus > /dev/null; then
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends prometheus > /dev/null
    fi
}

install_kubernetes_validate() {
    if python3 -c "import importlib.metadata as m, sys; \
sys.exit(m.version('kubernetes-validate') != '$KUBERNETES_VALIDATE_VERSION')" 2> /dev/null; then
        return
    fi
    echo "check-deploy: installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
        "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
}

install_promtool
install_kubernetes_validate

failures=()
# Runs one named check and records its failure without stopping the others.
check() {
    local name="$1"
    shift
    echo "== $name"
    if "$@"; then
        echo "   ok"
    else
        echo "   FAILED: $name" >&2
        failures+=("$name")
    fi
}

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

# --- monitoring ---------------------------------------------------------------------

check "promtool check config (compose)" \
    promtool check config monitoring/prometheus.yml
check "promtool check config (kubernetes)" \
    promtool check config monitoring/prometheus-kubernetes.yml
check "promtool check rules" \
    promtool check rules monitoring/rules/gridcast.rules.yml
check "promtool test rules" \
    promtool test rules monitoring/rules/gridcast.rules.test.yml

# Writes every dashboard query as a recording rule, so promtool parses the PromQL.
# Grafana's range variables become fixed durations first.
dashboard_queries_as_rules() {
    python3 - "$scratch/dashboard.rules.yml" monitoring/grafana/*.json <<'PY' || return 1
import json
import sys

import yaml

output, *dashboards = sys.argv[1:]
rules = []
problems = []


def walk(panels, source):
    for panel in panels:
        walk(panel.get("panels", []), source)
        if panel.get("type") == "row":
            continue
        targets = panel.get("targets", [])
        if not targets:
            problems.append(f"{source}: panel {panel.get('title')!r} has no query")
        for target in targets:
            expr = target.get("expr", "")
            if not expr.strip():
                problems.append(f"{source}: panel {panel.get('title')!r} has an empty query")
                continue
            for variable, duration in [
                ("$__rate_interval", "5m"),
                ("$__interval", "1m"),
                ("$__range", "1h"),
            ]:
                expr = expr.replace(variable, duration)
            rules.append({"record": f"dashboard:query_{len(rules)}", "expr": expr})


for path in dashboards:
    with open(path) as file:
        dashboard = json.load(file)
    for key in ("uid", "title", "panels"):
        if key not in dashboard:
            problems.append(f"{path}: missing top-level key {key!r}")
    walk(dashboard.get("panels", []), path)

for problem in problems:
    print(problem, file=sys.stderr)
if not rules:
    print("no dashboard queries found", file=sys.stderr)
    sys.exit(1)
with open(output, "w") as file:
    yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, file)
sys.exit(1 if problems else 0)
PY
    promtool check rules "$scratch/dashboard.rules.yml"
}
check "Grafana dashboard queries" dashboard_queries_as_rules

grafana_provisioning_parses() {
    python3 - monitoring/grafana/provisioning/*/*.yml <<'PY'
import sys

import yaml

for path in sys.argv[1:]:
    with open(path) as file:
        document = yaml.safe_load(file)
    if not isinstance(document, dict) or document.get("apiVersion") != 1:
        sys.exit(f"{path}: expected a mapping with apiVersion: 1")
PY
}
check "Grafana provisioning files" grafana_provisioning_parses

# --- Kubernetes -----------------------------------------------------------------------

# kubernetes-validate exits 0 when it has no schema for a kind, so its warnings count
# as failures here, because every kind in deploy/k8s is a built-in one.
validate_manifests() {
    local output status=0
    output="$(kubernetes-validate --strict --quiet "$@" 2>&1)" || status=$?
    if [[ -n "$output" ]]; then
        echo "$output" >&2
    fi
    [[ $status -eq 0 && "$output" != *WARN* && "$output" != *ERROR* ]]
}

manifests=()
for file in deploy/k8s/*.yaml; do
    [[ "$(basename "$file")" == kustomization.yaml ]] || manifests+=("$file")
done
check "Kubernetes manifests against the schema" validate_manifests "${manifests[@]}"

# Kustomize's own renderer needs kubectl, which Debian does not package; without it
# the resource list is still checked against the directory.
kustomization_lists_manifests() {
    python3 - deploy/k8s <<'PY' || return 1
import pathlib
import sys

import yaml

directory = pathlib.Path(sys.argv[1])
kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
listed = kustomization.get("resources", [])
problems = [f"listed but missing: {name}" for name in listed if not (directory / name).is_file()]
# The secret template contains placeholders and is applied by hand after editing.
unlisted = {"kustomization.yaml", "secret.template.yaml"}
for path in sorted(directory.glob("*.yaml")):
    if path.name not in listed and path.name not in unlisted:
        problems.append(f"not listed in kustomization.yaml: {path.name}")
for problem in problems:
    print(problem, file=sys.stderr)
sys.exit(1 if problems else 0)
PY
    if command -v kubectl > /dev/null; then
        kubectl kustomize deploy/k8s > "$scratch/rendered.yaml" \
            && validate_manifests "$scratch/rendered.yaml"
    else
        echo "   kubectl not found: kustomize rendering skipped"
    fi
}
check "kustomization" kustomization_lists_manifests

# The namespace enforces the restricted Pod Security Standard, and this finds
# violations before a cluster rejects the pods. It also requires resources on every
# container.
pod_security_restricted() {
    python3 - deploy/k8s/*.yaml <<'PY'
import sys

import yaml

problems = []
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"}


def pod_spec(document):
    kind = document["kind"]
    if kind == "Pod":
        return document["spec"]
    if kind == "CronJob":
        return document["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return document["spec"]["template"]["spec"]


for path in sys.argv[1:]:
    with open(path) as file:
        documents = [d for d in yaml.safe_load_all(file) if d]
    for document in documents:
        kind = document.get("kind")
        name = f"{path}: {kind} {document.get('metadata', {}).get('name')}"
        if kind == "Namespace":
            labels = document["metadata"].get("labels", {})
            if labels.get("pod-security.kubernetes.io/enforce") != "restricted":
                problems.append(f"{name}: pod-security.kubernetes.io/enforce is not restricted")
        if kind not in WORKLOADS:
            continue
        spec = pod_spec(document)
        pod_context = spec.get("securityContext", {})
        if pod_context.get("runAsNonRoot") is not True:
            problems.append(f"{name}: securityContext.runAsNonRoot is not true")
        if pod_context.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{name}: seccompProfile is not RuntimeDefault")
        for forbidden in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(forbidden):
                problems.append(f"{name}: {forbidden} is set")
        for volume in spec.get("volumes", []):
            if "hostPath" in volume:
                problems.append(f"{name}: volume {volume['name']} is a hostPath")
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            where = f"{name}, container {container['name']}"
            context = container.get("securityContext", {})
            if context.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if context.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: readOnlyRootFilesystem is not true")
            if context.get("privileged"):
                problems.append(f"{where}: privileged")
            if context.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{where}: capabilities.drop is not [ALL]")
            if context.get("capabilities", {}).get("add"):
                problems.append(f"{where}: adds capabilities")
            resources = container.get("resources", {})
            if not resources.get("requests") or not resources.get("limits"):
                problems.append(f"{where}: resources.requests or resources.limits missing")

for problem in problems:
    print(problem, file=sys.stderr)
sys.exit(1 if problems else 0)
PY
}
check "restricted Pod Security settings" pod_security_restricted

# --- compose --------------------------------------------------------------------------

compose_has_required_services() {
    python3 - deploy/compose.yaml <<'PY' || return 1
import pathlib
import sys

import yaml

path = pathlib.Path(sys.argv[1])
compose = yaml.safe_load(path.read_text())
services = compose.get("services", {})
problems = []
required = ["postgres", "redis", "minio", "migrate", "api", "worker", "scheduler",
            "prometheus", "grafana"]
for name in required:
    if name not in services:
        problems.append(f"missing service {name}")
# Each gridcast process runs the subcommand of its own name.
for name in ["migrate", "api", "worker", "scheduler"]:
    command = services.get(name, {}).get("command")
    if command != [name]:
        problems.append(f"service {name}: command is {command!r}, expected [{name!r}]")
for name, service in services.items():
    depends_on = service.get("depends_on", {})
    for dependency in depends_on:
        if dependency not in services:
            problems.append(f"service {name}: depends on unknown service {dependency}")
    # Bind mounts are relative to the compose file's directory.
    for volume in service.get("volumes", []):
        source = volume.split(":")[0]
        if source.startswith("."):
            if not (path.parent / source).exists():
                problems.append(f"service {name}: mounted path {source} not found")
    build = service.get("build")
    if build:
        dockerfile = path.parent / build["context"] / build["dockerfile"]
        if not dockerfile.is_file():
            problems.append(f"service {name}: Dockerfile {dockerfile} not found")
for problem in problems:
    print(problem, file=sys.stderr)
sys.exit(1 if problems else 0)
PY
    if docker compose version > /dev/null 2>&1; then
        docker compose -f deploy/compose.yaml config --quiet
    else
        echo "   docker compose not found: its own validation skipped"
    fi
}
check "compose services" compose_has_required_services

# --- scripts --------------------------------------------------------------------------

backup_scripts_parse() {
    local script
    for script in deploy/backup/*.sh; do
        bash -n "$script" || return 1
        [[ -x "$script" ]] || {
            echo "$script is not executable" >&2
            return 1
        }
    done
}
check "backup scripts" backup_scripts_parse

echo
if [[ ${#failures[@]} -gt 0 ]]; then
    echo "check-deploy: ${#failures[@]} check(s) failed: ${failures[*]}" >&2
    exit 1
fi
echo "check-deploy: all checks passed"
