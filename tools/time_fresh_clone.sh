#!/usr/bin/env bash
# Times the README's commands from a fresh clone of this repository's HEAD (pip's cache as it
# is on this machine) and writes the measurement to docs/results/fresh-clone.json:
#   tools/time_fresh_clone.sh demo    # set-up, then `make demo` until its table is printed
#   tools/time_fresh_clone.sh tests   # `make test`, then `make test-slow` (needs $SHARPEN_TEST_DATA)
# Run it on an idle machine: the numbers are wall-clock seconds.
set -euo pipefail
what="${1:?usage: tools/time_fresh_clone.sh demo|tests}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
load="$(cut -d' ' -f1-3 /proc/loadavg)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git clone -q "$repo" "$work/sharpen"
cd "$work/sharpen"
now() { date +%s.%N; }
case "$what" in
  demo)
    t0=$(now); make -s .venv/bin/sharpen >/dev/null; t1=$(now)
    make -s demo > "$work/demo.log" 2>&1; t2=$(now)
    grep -q "claims" "$work/demo.log" || { cat "$work/demo.log"; exit 1; }
    fields="\"setup_s\": $(echo "$t1 - $t0" | bc), \"run_s\": $(echo "$t2 - $t1" | bc), \"total_s\": $(echo "$t2 - $t0" | bc)" ;;
  tests)
    t0=$(now); make -s .venv/.dev >/dev/null; t1=$(now)
    # a failing step still gets its time and its log's tail (set -e would drop both)
    rc=0; make -s test > "$work/test.log" 2>&1 || rc=$?; t2=$(now)
    [ "$rc" = 0 ] || { echo "make test failed ($rc):"; tail -40 "$work/test.log"; }
    rc2=0; make -s test-slow > "$work/slow.log" 2>&1 || rc2=$?; t3=$(now)
    [ "$rc2" = 0 ] || { echo "make test-slow failed ($rc2):"; tail -40 "$work/slow.log"; }
    fields="\"setup_s\": $(echo "$t1 - $t0" | bc), \"make_test_s\": $(echo "$t2 - $t1" | bc), \"make_test_slow_s\": $(echo "$t3 - $t2" | bc), \"test_summary\": \"$(tail -1 "$work/test.log")\", \"slow_summary\": \"$(tail -1 "$work/slow.log")\", \"rc\": [$rc, $rc2]" ;;
  *) echo "usage: tools/time_fresh_clone.sh demo|tests" >&2; exit 2 ;;
esac
out="$repo/docs/results/fresh-clone.json"
entry="{\"what\": \"$what\", \"commit\": \"$(git rev-parse --short HEAD)\", \"date\": \"$(date -u +%FT%TZ)\", \"cpus\": $(nproc), \"load_before\": \"$load\", $fields}"
python3 - "$out" "$entry" <<'PY'
import json, sys, pathlib
p = pathlib.Path(sys.argv[1]); entry = json.loads(sys.argv[2])
old = json.loads(p.read_text()) if p.exists() else []
old = [e for e in old if e["what"] != entry["what"]] + [entry]
p.write_text(json.dumps(old, indent=1) + "\n")
print(json.dumps(entry, indent=1))
PY
