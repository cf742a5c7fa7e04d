#!/usr/bin/env bash
# Checks the monitoring assets: Prometheus rules/config (promtool, from Debian's
# prometheus package, installed when missing) and the Grafana dashboard JSON.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    echo "installing: prometheus (for promtool)"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus
fi

promtool check rules deploy/prometheus/jumpgate.rules.yml
# rule_files in prometheus.yml is relative to that file's directory.
promtool check config deploy/prometheus/prometheus.yml
promtool test rules deploy/prometheus/jumpgate.rules.test.yml

python3 - dashboards/jumpgate.json README.md <<'PY'
import json, re, sys

dash_path, readme_path = sys.argv[1], sys.argv[2]
with open(dash_path) as f:
    dash = json.load(f)
errors = []

if "__inputs" in dash:
    errors.append("dashboard has __inputs (not importable as is)")
tvars = dash.get("templating", {}).get("list", [])
if not any(v.get("name") == "datasource" and v.get("type") == "datasource"
           and v.get("query") == "prometheus" for v in tvars):
    errors.append("no 'datasource' template variable of type datasource (query prometheus)")

want_ds = {"type": "prometheus", "uid": "${datasource}"}
def panels(ps):
    for p in ps:
        yield p
        yield from panels(p.get("panels", []))

# Metric names the README's Metrics table documents.
readme = open(readme_path).read()
known = set(re.findall(r"^\| `(jumpgate_[a-z0-9_]+)`", readme, re.M))
if not known:
    errors.append("no jumpgate_* metrics found in the README table")
hist = {m for m in known if re.search(r"^\| `%s` \| histogram" % m, readme, re.M)}
for m in hist:
    known |= {m + "_bucket", m + "_sum", m + "_count"}

n = 0
for p in panels(dash.get("panels", [])):
    if p.get("type") == "row":
        continue
    n += 1
    title = p.get("title", "?")
    if p.get("datasource") != want_ds:
        errors.append(f"panel {title!r}: datasource {p.get('datasource')!r}")
    targets = p.get("targets", [])
    if not targets:
        errors.append(f"panel {title!r}: no targets")
    for t in targets:
        if t.get("datasource", want_ds) != want_ds:
            errors.append(f"panel {title!r} target {t.get('refId')}: datasource {t.get('datasource')!r}")
        for m in re.findall(r"\bjumpgate_[a-z0-9_]+", t.get("expr", "")):
            if m not in known:
                errors.append(f"panel {title!r}: metric {m} is not in the README table")
if n == 0:
    errors.append("dashboard has no panels")

if errors:
    print("\n".join("dashboard: " + e for e in errors), file=sys.stderr)
    sys.exit(1)
print(f"dashboard: {dash_path} OK ({n} panels, datasource ${{datasource}}, metrics in README)")
PY
echo "check-monitoring: OK"
