"""docs/invariants.md lists every behavioural promise with the test that checks it and a
break planted on purpose (tools/break_promises.py) under which that test was seen to fail.
Here: the document and the tool list the same promises, every planted break still finds its
anchor in the source (so the check can be re-run), every named test exists, and the promises
that had no test of their own before have one."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import torch

from sharpen.training.streams import STREAMS, generator, stream_seed

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("break_promises",
                                                  ROOT / "tools" / "break_promises.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["break_promises"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_the_document_and_the_tool_list_the_same_promises_and_every_anchor_is_in_the_source():
    tool = _tool()
    doc = (ROOT / "docs" / "invariants.md").read_text()
    listed = set(re.findall(r"^\| (P\d\d) \|", doc, flags=re.M))
    assert listed == set(tool.PROMISES), (listed ^ set(tool.PROMISES))
    for pid, b in tool.PROMISES.items():
        assert tool.anchor_problem(b) is None, (pid, tool.anchor_problem(b))
        assert b.old != b.new and b.tests, pid
        for t in b.tests:  # named in the document too, so a reader finds it
            assert t.split("::")[1] in doc, (pid, t)


def test_every_test_a_promise_names_exists():
    tool = _tool()
    nodes = sorted({t for b in tool.PROMISES.values() for t in b.tests})
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                          "-p", "no:cacheprovider", *nodes], cwd=ROOT, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    collected = {ln.split("[")[0] for ln in out.stdout.splitlines() if "::" in ln}
    assert set(nodes) <= collected, set(nodes) - collected


def test_every_stream_of_a_seed_draws_its_own_numbers_from_the_documented_hash():
    """P01: streams are independent of each other: two names of one seed never share their
    numbers, and each stream's seed is blake2b("<seed>/<name>") (stable across versions)."""
    for seed in (0, 1, 7, 123456789):
        draws = {name: torch.rand(32, generator=generator(seed, name)) for name in STREAMS}
        for a, b in combinations(STREAMS, 2):
            assert not torch.equal(draws[a], draws[b]), (seed, a, b)
            # not merely shifted copies of one sequence either
            assert not torch.equal(draws[a][1:], draws[b][:-1]), (seed, a, b)
        for name in STREAMS:
            digest = hashlib.blake2b(f"{seed}/{name}".encode(), digest_size=8).digest()
            assert stream_seed(seed, name) == int.from_bytes(digest, "little") & (2**63 - 1)
    # one name, two seeds: different numbers too
    assert not torch.equal(torch.rand(8, generator=generator(0, "init")),
                           torch.rand(8, generator=generator(1, "init")))
