#!/usr/bin/env bash
# The main job: bring up the reference lab, scan it from the lab's scanner namespace, print the
# table and write the results under ./out/. The lab is torn down afterwards (KEEP_LAB=1 keeps it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
. .venv/bin/activate
mkdir -p out
if [ "${KEEP_LAB:-0}" != 1 ]; then trap 'iotrate lab down' EXIT; fi
iotrate lab up
subnet=$(iotrate lab status --json | python -c 'import json,sys; print(json.load(sys.stdin)["subnet"])')
iotrate lab exec -- iotrate scan "$subnet" --output out/lab-scan.json
echo "wrote out/lab-scan.json"
