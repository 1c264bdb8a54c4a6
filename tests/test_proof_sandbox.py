"""The decoder's confinement itself: what a process confined by the read plan can and cannot do."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from helpers.proof import needs_sandbox
from pgolf_core.proof import plan as plan_mod

PROBE = r'''
import json, os, socket, sys
from pgolf_core.proof.plan import decoder_plan
from pgolf_core.proof import landlock, seccomp
targets = json.loads(sys.argv[1])
plan = decoder_plan([], [])
landlock.restrict(plan.read, [targets["scratch"]], plan.listing)
seccomp.install()
out = {}
for name, p in targets["read"].items():
    try:
        open(p, "rb").read(1)
        out[name] = "read"
    except OSError:
        out[name] = "denied"
try:
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    out["udp socket"] = "made"
except OSError:
    out["udp socket"] = "denied"
try:
    open(os.path.join(targets["scratch"], "x"), "w").write("ok")
    out["scratch write"] = "written"
except OSError:
    out["scratch write"] = "denied"
print(json.dumps(out))
'''


@needs_sandbox
def test_a_confined_process_reads_its_code_and_nothing_of_the_data(tmp_path):
    import pgolf_core
    import pydoc_data

    data = tmp_path / "data.npy"
    np.save(data, np.arange(10))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    targets = {"scratch": str(scratch), "read": {
        "data": str(data), "data via /proc/self/root": f"/proc/self/root{data}", "parent's cmdline": "/proc/1/cmdline",
        "home": str(Path.home()), "/etc/passwd": "/etc/passwd", "the demo's text": pydoc_data.__file__,
        "core code": pgolf_core.__file__, "numpy": np.__file__}}
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(targets)], capture_output=True, text=True, timeout=300)
    seen = json.loads(out.stdout)
    assert seen == {"data": "denied", "data via /proc/self/root": "denied", "parent's cmdline": "denied",
                    "home": "denied", "/etc/passwd": "denied", "the demo's text": "denied", "core code": "read",
                    "numpy": "read", "udp socket": "denied", "scratch write": "written"}, out.stderr


def test_a_data_file_inside_a_readable_folder_is_refused(tmp_path):
    import pytest

    from pgolf_core.errors import DataError
    from pgolf_core.proof.prove import check_out_of_reach

    plan = plan_mod.ReadPlan(read=[str(tmp_path / "plugin_pkg")])
    (tmp_path / "plugin_pkg").mkdir()
    check_out_of_reach(plan, [str(tmp_path / "elsewhere.npy")])
    with pytest.raises(DataError, match="lies inside"):
        check_out_of_reach(plan, [str(tmp_path / "plugin_pkg" / "val.npy")])


def test_a_recorded_file_changed_after_installation_is_refused(tmp_path):
    import pytest
    from importlib.metadata import PackagePath

    (tmp_path / "fake-1.0.dist-info").mkdir()
    (tmp_path / "fake-1.0.dist-info" / "RECORD").write_text("")
    (tmp_path / "fake.py").write_text("x = 1\n")
    record, lib = PackagePath("fake-1.0.dist-info/RECORD"), PackagePath("fake.py")
    record.size, lib.size = None, 6

    class Dist:  # what importlib.metadata gives, for one installed module
        metadata = {"Name": "fake"}
        files = [record, lib]

        def locate_file(self, f):
            return tmp_path / f

    assert str(tmp_path / "fake.py") in plan_mod._recorded_files(Dist())
    (tmp_path / "fake.py").write_text("x = 1  # and a copy of the data\n")
    with pytest.raises(plan_mod.PlanError, match="installed it with 6"):
        plan_mod._recorded_files(Dist())
