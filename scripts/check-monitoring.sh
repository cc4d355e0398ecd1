#!/usr/bin/env bash
# Checks monitoring/ with promtool (scripts/promtool.sh installs it):
#   - prometheus.yml is a valid configuration (promtool check config);
#   - alerts.yml is valid (promtool check rules) and its alerts fire when and
#     only when they should (promtool test rules alerts_test.yml);
#   - every PromQL expression of the Grafana dashboards parses (they are
#     checked as recording rules, Grafana's variables replaced).
# That every metric they name is exported by a binary is e2e's
# TestMonitoringNamesExportedMetrics.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MON="$ROOT/monitoring"
command -v promtool >/dev/null || { echo "check-monitoring: promtool missing: run scripts/promtool.sh" >&2; exit 1; }

promtool check config "$MON/prometheus.yml"
promtool check rules "$MON/alerts.yml"
(cd "$MON" && promtool test rules alerts_test.yml)

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for d in "$MON"/grafana/*.json; do
	python3 - "$d" >"$tmp/dashboard.rules.yml" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
exprs = []
def walk(panels):
    for p in panels:
        exprs.extend(t["expr"] for t in p.get("targets", []) if t.get("expr"))
        walk(p.get("panels", []))
walk(d["panels"])
exprs += [a["expr"] for a in d.get("annotations", {}).get("list", []) if a.get("expr")]
if not exprs:
    sys.exit(f"{sys.argv[1]}: no PromQL expressions")
subst = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "${datasource}": "", "$pool": ".*", "$service": ".*"}
print("groups:\n  - name: dashboard\n    rules:")
for i, e in enumerate(exprs):
    for k, v in subst.items():
        e = e.replace(k, v)
    print(f"      - record: dashboard:expr{i}\n        expr: {json.dumps(e)}")
PY
	echo "Checking the PromQL of ${d#"$ROOT"/}"
	promtool check rules "$tmp/dashboard.rules.yml" | sed 's/dashboard.rules.yml/&, the panels'"'"' queries/'
done
