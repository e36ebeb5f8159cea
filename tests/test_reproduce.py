"""The main job end to end (quick mode), its report, determinism and atomic writes."""

import re

import numpy as np
import pytest

from hiergrammar.artifacts import atomic_open, save_json
from hiergrammar.cli import main
from hiergrammar.reproduce import reproduce


@pytest.mark.slow
def test_reproduce_quick_writes_a_report_whose_links_all_resolve(tmp_path, capsys):
    assert main(["reproduce", "--quick", "--out", str(tmp_path), "--seed", "3"]) == 0
    assert "report.md" in capsys.readouterr().out
    report = (tmp_path / "report.md").read_text()
    links = re.findall(r"\]\(([^)]+)\)", report)
    pngs = [link for link in links if link.endswith(".png")]
    assert len(pngs) >= 7  # phase transition (2), theory (4), CNN probe (1)
    for link in links:
        assert (tmp_path / link).is_file(), link
        assert (tmp_path / link).stat().st_size > 0
    for png in pngs:
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.rglob("*.tmp")), "a temporary file was left behind"


@pytest.mark.slow
def test_same_seed_same_data(tmp_path):
    runs = []
    for name in ("a", "b"):
        reproduce(tmp_path / name, seed=1, quick=True, only=["phase_transition"])
        runs.append(np.load(tmp_path / name / "phase_transition.npz"))
    assert runs[0].files == runs[1].files
    for key in runs[0].files:
        np.testing.assert_array_equal(runs[0][key], runs[1][key])
    other = tmp_path / "c"
    reproduce(other, seed=2, quick=True, only=["phase_transition"])
    differs = np.load(other / "phase_transition.npz")["eps_L3_p"]
    assert not np.array_equal(differs, runs[0]["eps_L3_p"])


def test_unknown_step_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"unknown step\(s\) \['nope'\]"):
        reproduce(tmp_path, only=["nope"])


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    target = save_json(tmp_path / "data.json", {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_open(target, "w") as handle:
            handle.write('{"half": ')
            raise RuntimeError("interrupted")
    assert target.read_text().strip().startswith("{") and '"a": 1' in target.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["data.json"]
