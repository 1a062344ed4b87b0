"""Paper 004's protocol (bench/train.py pairs_protocol, the full profile: 20 seeds x 3 models,
5 epochs, 1000 pairs), the code of two src folders interleaved, twice each:

    python benchmarks/pairs_repeat.py OLD_SRC NEW_SRC OUT.json
"""
import json
import subprocess
import sys

res = []
for rep in range(2):
    for label, src in (("old", sys.argv[1]), ("new", sys.argv[2])):
        code = ("import json,sys,time; from pathlib import Path; from sharpen.bench.train import "
                "pairs_protocol; r = pairs_protocol(Path(sys.argv[1]), 20, 5, 1000, 'cpu', "
                "lambda s: None); print(json.dumps(r))")
        out = subprocess.run([sys.executable, "-c", code, f"/tmp/pairs-repeat-{label}-{rep}"],
                             env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"},
                             capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        row = {"code": label, "rep": rep, "ratio": r["ratio"],
               **{s["setup"]: round(s["seconds"], 2) for s in r["setups"]}}
        print(json.dumps(row), flush=True)
        res.append(row)
json.dump(res, open(sys.argv[3], "w"), indent=1)
