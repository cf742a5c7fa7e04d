#!/usr/bin/env bash
# Checks the monitoring assets: Prometheus rules/config (promtool, from Debian's
# prometheus package, installed when missing), the Grafana dashboard JSON (its
# variables, and every query filtered by them), and, against a live gate, that
# every metric the dashboard and the rules name is one jumpgate exports.
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

# Metrics of the README table that carry an `upstream` label.
with_upstream = {m for m in known
                 if re.search(r"^\| `%s` \|[^|]*\|[^|]*`upstream`" % re.escape(m), readme, re.M)}
for m in list(with_upstream):
    if m in hist:
        with_upstream |= {m + "_bucket", m + "_sum", m + "_count"}

# The three filter variables: query variables on the dashboard's data source,
# so that several daemons (job, instance) and upstreams are never summed.
by_name = {v.get("name"): v for v in tvars}
for name in ("job", "instance", "upstream"):
    v = by_name.get(name)
    if v is None:
        errors.append(f"no '{name}' template variable")
    elif v.get("type") != "query" or v.get("datasource") != want_ds:
        errors.append(f"variable {name!r}: not a query variable on ${{datasource}}")

# A metric name in PromQL: jumpgate_*, process_* or up, not a function call.
name_re = re.compile(r"\b(jumpgate_[a-z0-9_]+|process_[a-z0-9_]+|up)\b(?!\s*\()")
def selectors(expr):
    """(metric, matchers text) for each metric named in expr."""
    for m in name_re.finditer(expr):
        # Label names in by (...) / without (...) never start with these
        # prefixes, but "up" could be a label value or part of a string:
        # skip what sits inside quotes.
        if expr[:m.start()].count('"') % 2:
            continue
        rest = expr[m.end():]
        yield m.group(1), (rest[1:rest.index("}")] if rest.startswith("{") else None)

n = 0
n_sel = 0
names_used = set()
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
        ref = t.get("refId")
        expr = t.get("expr", "")
        if t.get("datasource", want_ds) != want_ds:
            errors.append(f"panel {title!r} target {ref}: datasource {t.get('datasource')!r}")
        sels = list(selectors(expr))
        if not sels:
            errors.append(f"panel {title!r} target {ref}: names no metric: {expr!r}")
        for metric, matchers in sels:
            n_sel += 1
            names_used.add(metric)
            if metric.startswith("jumpgate_") and metric not in known:
                errors.append(f"panel {title!r}: metric {metric} is not in the README table")
            need = ['job=~"$job"', 'instance=~"$instance"']
            if metric in with_upstream:
                need.append('upstream=~"$upstream"')
            missing = [w for w in need if matchers is None or w not in matchers]
            if missing:
                errors.append(f"panel {title!r} target {ref}: {metric} lacks {', '.join(missing)}")
if n == 0:
    errors.append("dashboard has no panels")
# The panels the operator needs: readiness, the process, the relay.
for must in ("up", "process_resident_memory_bytes", "process_cpu_seconds_total",
             "process_open_fds", "process_max_fds", "jumpgate_relay_buffered_bytes",
             "jumpgate_relay_spilled_bytes_total", "jumpgate_relay_cap_reached_total"):
    if must not in names_used:
        errors.append(f"no panel shows {must}")
if not with_upstream:
    errors.append("no metric with an upstream label found in the README table")

if errors:
    print("\n".join("dashboard: " + e for e in errors), file=sys.stderr)
    sys.exit(1)
print(f"dashboard: {dash_path} OK ({n} panels, {n_sel} selectors filtered by $job/$instance (and $upstream on {len(with_upstream & names_used)} upstream metrics), metrics in README)")
PY
# Names checked against what the code really exports, so they cannot drift: a
# real gate against a real sshd is scraped, and a real Prometheus runs every
# panel query (tests/observability.rs).
cargo test --release --test tests -- --exact \
    observability::dashboard_and_rules_use_what_the_gate_exports
echo "check-monitoring: OK"
