"""outputs: a folder or a file appears complete or not at all, an older one survives failures."""
import os
import stat

import pytest

from nervemuscle.errors import OutputError
from nervemuscle.outputs import atomic_output_dir, write_text_atomic


def test_new_folder_appears_only_at_the_end_with_ordinary_permissions(tmp_path):
    out = tmp_path / "a" / "out"
    with atomic_output_dir(out) as tmp:
        (tmp / "a.txt").write_text("1")
        assert not out.exists() and tmp.parent == out.parent
    assert (out / "a.txt").read_text() == "1"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]


def test_existing_folder_is_replaced_as_a_whole(tmp_path):
    out = tmp_path / "out"
    (out / "old_sub").mkdir(parents=True)
    (out / "old.txt").write_text("old")
    with atomic_output_dir(out) as tmp:
        (tmp / "b.txt").write_text("3")
        assert (out / "old.txt").read_text() == "old"
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # neither temp nor old copy left behind


def test_error_inside_the_block_keeps_the_old_folder_and_leaves_no_temp(tmp_path):
    out = tmp_path / "out"
    with atomic_output_dir(out) as tmp:
        (tmp / "a.txt").write_text("1")
    with pytest.raises(RuntimeError, match="half-way"):
        with atomic_output_dir(out) as tmp:
            (tmp / "a.txt").write_text("2")
            raise RuntimeError("analysis failed half-way")
    assert (out / "a.txt").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with pytest.raises(RuntimeError):
        with atomic_output_dir(tmp_path / "never") as tmp:
            raise RuntimeError("before anything was written")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_unwritable_parent_is_an_output_error_naming_the_folder(tmp_path):
    parent = tmp_path / "parent"
    parent.write_text("a file cannot hold folders (unlike a read-only folder, this stops root too)")
    with pytest.raises(OutputError, match=r"cannot create the dataset folder \(") as caught:
        with atomic_output_dir(parent / "out", error="cannot create the dataset folder"):
            pytest.fail("the block must not run")
    assert caught.value.path == (parent / "out").absolute() and caught.value.exit_code == 4
    assert str(parent / "out") in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["parent"]


def test_a_file_in_the_way_is_refused(tmp_path):
    (tmp_path / "out").write_text("not a folder")
    with pytest.raises(OutputError, match="exists and is not a folder"):
        with atomic_output_dir(tmp_path / "out"):
            pytest.fail("the block must not run")
    assert (tmp_path / "out").read_text() == "not a folder"


def test_write_text_atomic_writes_whole_file_with_ordinary_permissions(tmp_path):
    target = write_text_atomic(tmp_path / "sub" / "a.json", '{"a": 1}\n')
    assert target.read_text() == '{"a": 1}\n'
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    write_text_atomic(target, "second\n")
    assert target.read_text() == "second\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.json"]  # no temp file left


def test_write_text_atomic_unwritable_folder_is_an_output_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError) as info:
        write_text_atomic(blocker / "out.json", "{}", error="cannot write findings")
    assert info.value.exit_code == 4
    assert "cannot write findings" in str(info.value) and "out.json" in str(info.value)


def test_overlapping_output_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    from nervemuscle.outputs import refuse_overlap

    (tmp_path / "exam" / "s1").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "exam" / "s1")
    for out, words in ((tmp_path / "exam", "is the input"), (tmp_path, "contains the input"),
                       (tmp_path / "exam" / "x", "is inside the input")):
        with pytest.raises(OutputError, match=words):
            with atomic_output_dir(out, inputs=[tmp_path / "exam"]):
                pytest.fail("the block must not run")
    with pytest.raises(OutputError, match="working folder"):
        refuse_overlap(tmp_path / "exam" / "s1", [])
    refuse_overlap(tmp_path / "exam" / "s1", [], working_folder=False)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["exam", "s1"]


def test_a_folder_of_other_files_is_not_replaced(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "thesis.txt").write_text("keep")
    with pytest.raises(OutputError, match="holds no findings.json"):
        with atomic_output_dir(tmp_path / "docs", replaces=("findings.json",)):
            pytest.fail("the block must not run")
    (tmp_path / "docs" / "findings.json").write_text("{}")
    with atomic_output_dir(tmp_path / "docs", replaces=("findings.json",)) as tmp:
        (tmp / "findings.json").write_text("{}")
    assert sorted(p.name for p in (tmp_path / "docs").iterdir()) == ["findings.json"]


def test_disk_full_inside_the_block_is_an_output_error(tmp_path):
    import errno

    with pytest.raises(OutputError, match="No space left") as info:
        with atomic_output_dir(tmp_path / "out"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert info.value.exit_code == 4 and list(tmp_path.iterdir()) == []


def test_temp_folders_of_dead_processes_are_removed_by_the_next_write(tmp_path):
    import subprocess
    import sys

    from nervemuscle.outputs import _host_tag

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f".out.tmp-{_host_tag()}.{dead}-abc"
    (stale / "half").mkdir(parents=True)
    aside = tmp_path / f".out.old-{_host_tag()}.{dead}-def"
    (aside / "previous").mkdir(parents=True)
    (aside / "previous" / "findings.json").write_text("{}")
    alive = tmp_path / f".out.tmp-{_host_tag()}.1-ghi"  # pid 1 always runs: never touched
    alive.mkdir()
    with atomic_output_dir(tmp_path / "out") as tmp:
        (tmp / "new.txt").write_text("1")
    assert sorted(p.name for p in tmp_path.iterdir()) == [alive.name, "out"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["new.txt"]
