"""Resume files are data: a truncated, garbled, crafted file or one of another version is refused
with one line naming the file, before anything it names runs; the CLI shows that line, exit code 1.
Built-in demo data: no ../shared."""

from __future__ import annotations

import io
import json
import pickle
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from pgolf_core import evaluate
from pgolf_core.cli import cli
from pgolf_core.demo import demo_tokenizer_path, demo_tokens
from pgolf_core.errors import PgolfError, ResumeFileError, UsageError

TOKENS = np.asarray(demo_tokens("val")[:1500])
EXPERTS = ["unigram", "bigram"]


def _eval(tokens=TOKENS, **kw):
    return evaluate(EXPERTS, tokens=tokens, tokenizer=demo_tokenizer_path(), chunk_size=500, **kw)


@pytest.fixture(scope="module")
def genuine(tmp_path_factory):
    """(path, whole-run BPB) of a real resume point at target 1001 of this module's run."""
    path = tmp_path_factory.mktemp("resume") / "run.resume"
    whole = _eval(resume=path, checkpoint_every=500)  # saved at 501 and 1001: the file holds 1001
    return path, whole.bpb


def _members(path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _write(path, members: dict) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _crafted(genuine, tmp_path, edit) -> str:
    """A copy of the genuine file whose manifest ``edit(manifest)`` has changed (digests kept: they are no secret)."""
    members = _members(genuine[0])
    manifest = json.loads(members["manifest.json"])
    edit(manifest)
    members["manifest.json"] = json.dumps(manifest)
    path = tmp_path / "crafted.resume"
    _write(path, members)
    return path


def _refused(path, match: str):
    with pytest.raises(ResumeFileError, match=match) as info:
        _eval(resume=path)
    message = str(info.value)
    assert message.startswith(f"resume file {path}") and "\n" not in message
    return message


def test_a_genuine_file_resumes_to_the_uninterrupted_bpb(genuine, tmp_path):
    path = tmp_path / "copy.resume"
    path.write_bytes(genuine[0].read_bytes())
    assert _eval(resume=path).bpb == genuine[1]
    manifest = json.loads(_members(path)["manifest.json"])
    assert manifest["format"] == "pgolf-core/resume" and manifest["version"] == 2 and manifest["position"] == 1001


class Reduce:
    """What a pickle attack looks like: unpickling it creates ``path``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def test_a_pickled_resume_file_is_refused_and_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "old.resume"
    path.write_bytes(pickle.dumps({"format": "pgolf-core/resume", "version": 1, "comps": Reduce(marker)}))
    _refused(path, "a pickled resume point of an earlier version, which is not read")
    assert not marker.exists()


def _object_array_npy(marker) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array([Reduce(marker)], dtype=object), allow_pickle=True)
    return buf.getvalue()


def test_an_object_array_is_refused_and_never_unpickled(genuine, tmp_path):
    marker = tmp_path / "pwned"
    members = _members(genuine[0])
    manifest = json.loads(members["manifest.json"])
    members["arrays/0.npy"] = _object_array_npy(marker)  # the manifest still says int32: the header disagrees
    path = tmp_path / "objects.resume"
    _write(path, members)
    _refused(path, r"arrays/0.npy holds object \[1\], the manifest says int32")
    manifest["arrays"][0] = {"dtype": "|O", "shape": [1]}  # the manifest agreeing does not help
    members["manifest.json"] = json.dumps(manifest)
    _write(path, members)
    _refused(path, r"describes array 0 as object \[1\]")
    assert not marker.exists()


def _retag(manifest, node: dict) -> None:
    """Put ``node`` where the first expert is (the state's experts list is node 0's first item)."""
    objects = manifest["state"]["objects"]
    first = objects[manifest["state"]["roots"]["experts"]["ref"]]["items"][0]["ref"]
    objects[first] = node


@pytest.mark.parametrize("node, match", [
    ({"t": "object", "class": "os:system", "dict": {}, "slots": []}, "experts\\[0\\]: refused: 'os:system' is outside"),
    ({"t": "global", "name": "builtins:eval"}, "'builtins:eval' is outside pgolf_core"),
    ({"t": "object", "class": "subprocess:Popen", "dict": {"args": ["true"]}, "slots": []}, "is outside pgolf_core"),
    ({"t": "reduce", "callable": "os:system", "args": ["true"]}, "unknown type tag 'reduce'"),
    ({"t": "object", "class": "pgolf_core.run.loop:Guards", "dict": {}, "slots": []},
     "experts\\[0\\] is a Guards, this run has a NgramExpert"),
])
def test_a_crafted_manifest_is_refused_with_one_line(genuine, tmp_path, node, match):
    _refused(_crafted(genuine, tmp_path, lambda m: _retag(m, node)), match)


def test_an_array_of_the_wrong_shape_is_refused(genuine, tmp_path):
    def edit(m):
        m["arrays"][0]["shape"] = [m["arrays"][0]["shape"][0] + 1, *m["arrays"][0]["shape"][1:]]

    _refused(_crafted(genuine, tmp_path, edit), r"arrays/0.npy holds int32 \[1025, 5\], the manifest says int32 \[1026, 5\]")


def test_a_state_at_another_position_than_its_manifest_says_is_refused(genuine, tmp_path):
    _refused(_crafted(genuine, tmp_path, lambda m: m.update(position=501)), "the state is at target 1001, the manifest says 501")


@pytest.mark.parametrize("edit, match", [
    (lambda m: m.update(version=1), "of version 1; this version reads version 2"),
    (lambda m: m.update(version=3), "of version 3; this version reads version 2"),
    (lambda m: m.update(format="something/else"), "expected a pgolf-core/resume manifest, found format 'something/else'"),
    (lambda m: m.pop("digest"), "no configuration and stream digests"),
])
def test_another_version_or_format_is_refused(genuine, tmp_path, edit, match):
    _refused(_crafted(genuine, tmp_path, edit), match)


def test_truncated_and_garbled_files_are_refused(genuine, tmp_path):
    data = genuine[0].read_bytes()
    path = tmp_path / "bad.resume"
    for cut in (len(data) // 2, 100, 3):
        path.write_bytes(data[:cut])
        _refused(path, "truncated or corrupt zip archive|expected a pgolf-core/resume v2 file")
    path.write_bytes(b"")
    _refused(path, "expected a pgolf-core/resume v2 file")
    path.write_bytes(b"not a resume file at all\n" * 10)
    _refused(path, r"expected a pgolf-core/resume v2 file \(a zip archive holding manifest.json\), found b'not '")
    with zipfile.ZipFile(genuine[0]) as zf:  # one byte of an array's data flipped: the member's CRC fails
        info = zf.getinfo("arrays/0.npy")
        at = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.compress_size // 2
    flipped = bytearray(data)
    flipped[at] ^= 0xFF
    path.write_bytes(bytes(flipped))
    _refused(path, "arrays/0.npy cannot be read")
    members = _members(genuine[0])
    members["manifest.json"] = members["manifest.json"][:-40]
    _write(path, members)
    _refused(path, "manifest.json cannot be read")
    del members["manifest.json"]
    _write(path, members)
    _refused(path, "no manifest.json")


def test_a_resume_point_of_another_stream_is_refused(genuine):
    other = TOKENS.copy()
    other[700] = (other[700] + 1) % 1024
    with pytest.raises(UsageError, match=r"another configuration or stream \(the stream differs\)"):
        _eval(tokens=other, resume=genuine[0])


def test_the_cli_shows_one_line_and_exits_1_for_a_crafted_file(tmp_path):
    demo = tmp_path / "demo.npy"
    np.save(demo, TOKENS)
    path = tmp_path / "cli.resume"
    args = ["eval", "--experts", ",".join(EXPERTS), "--data", str(demo), "--tokenizer", str(demo_tokenizer_path()),
            "--chunk-size", "500", "--resume", str(path)]
    first = CliRunner().invoke(cli, [*args, "--checkpoint-every", "500"])
    assert first.exit_code == 0 and path.is_file(), first.output
    crafted = _crafted((path, None), tmp_path, lambda m: _retag(m, {"t": "global", "name": "os:system"}))
    res = CliRunner().invoke(cli, [*args[:-1], str(crafted)])
    assert res.exit_code == 1, res.output
    assert res.output.strip().splitlines() == [
        f"Error: resume file {crafted}: experts[0]: refused: 'os:system' is outside pgolf_core, the loaded plugins and "
        f"the allowed torch modules"], res.output


def test_a_component_holding_what_is_not_data_fails_before_scoring(tmp_path):
    import threading

    from sample_plugin import CountingExpert

    class Local(CountingExpert):
        scored = 0

        def score(self, tokens, start, end):
            Local.scored += 1
            return super().score(tokens, start, end)

    expert = CountingExpert(1024)
    expert._lock = threading.Lock()
    path = tmp_path / "run.resume"
    with pytest.raises(PgolfError, match=r"^cannot save a resume point: experts\[0\]._lock is a _thread.lock \("):
        evaluate([expert, "bigram"], tokens=TOKENS, tokenizer=demo_tokenizer_path(), chunk_size=500, resume=path)
    assert not path.exists() and expert.counts.sum() == 0  # refused before the first chunk was scored
    local = Local(1024)  # a class defined in a function has no name to be found by
    with pytest.raises(PgolfError, match=r"experts\[0\] is the class .*Local, which is not found by its name"):
        evaluate([local, "bigram"], tokens=TOKENS, tokenizer=demo_tokenizer_path(), chunk_size=500, resume=path)
    assert Local.scored == 0
