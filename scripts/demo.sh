#!/usr/bin/env bash
# The main job: bring up the reference lab, scan and rate it from the lab's scanner namespace,
# print the table, and write under ./out/: the JSON result, the HTML report, one label per
# device (SVG + PNG) and the observations. The plug is rated with its manufacturer declaration,
# as a test lab would. The lab is torn down afterwards (KEEP_LAB=1 keeps it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
. .venv/bin/activate
rm -rf out/labels
mkdir -p out
if [ "${KEEP_LAB:-0}" != 1 ]; then trap 'iotrate lab down' EXIT; fi
iotrate lab up >/dev/null
read -r subnet plug < <(iotrate lab status --json | python -c '
import json, sys
s = json.load(sys.stdin)
print(s["subnet"], next(d["address"] for d in s["devices"] if d["name"] == "plug"))')
iotrate lab exec -- iotrate scan "$subnet" --output out/lab-scan.json \
  --save-observations out/lab-observations.jsonl >/dev/null
iotrate rate out/lab-scan.json --declaration iotrate/lab/declarations/plug.yaml \
  --device "$plug" --output out/lab-rated.json
# A test lab's run of one device under test: the plug under the lab profile (all TCP ports, the
# UDP IoT list, default credentials), rated with its declaration. Only this profile can earn A.
iotrate lab exec -- iotrate scan "$plug" --profile lab --no-history --output out/plug-lab.json \
  >/dev/null
iotrate rate out/plug-lab.json --declaration iotrate/lab/declarations/plug.yaml \
  --device "$plug" --output out/plug-lab-rated.json
iotrate report out/lab-rated.json -o out/report.html
iotrate label out/lab-rated.json --out out/labels --format svg,png,pdf
echo "wrote out/lab-rated.json, out/plug-lab-rated.json, out/report.html and out/labels/"
