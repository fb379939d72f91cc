import tarfile

import pytest

from dlfs.data.archive import safe_extract
from dlfs.errors import DataError


def _file(name, data=b"x"):
    return tarfile.TarInfo(name), data


def _link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def test_normal_archive_extracts(tmp_path, fakes):
    d = tarfile.TarInfo("top")
    d.type = tarfile.DIRTYPE
    archive = fakes.make_tar(tmp_path / "ok.tar.gz", [(d, None), _file("top/a.bin", b"abc")])
    names = safe_extract(archive, tmp_path / "out")
    assert names == ["top", "top/a.bin"]
    assert (tmp_path / "out" / "top" / "a.bin").read_bytes() == b"abc"


@pytest.mark.parametrize("member, reason", [
    (_file("../evil.txt"), "path contains '..'"),
    (_file("top/../../evil.txt"), "path contains '..'"),
    (_file("/tmp/evil.txt"), "absolute path"),
    (_link("top/link", "/etc/passwd"), "it is a symbolic link"),
    (_link("top/hard", "top/a.bin", tarfile.LNKTYPE), "it is a hard link"),
])
def test_unsafe_members_are_refused_before_anything_is_written(tmp_path, fakes, member, reason):
    archive = fakes.make_tar(tmp_path / "bad.tar.gz", [_file("top/a.bin"), member])
    out = tmp_path / "deep" / "out"
    with pytest.raises(DataError, match=rf"bad\.tar\.gz: refusing member .*{reason}"):
        safe_extract(archive, out)
    assert list(out.iterdir()) == []                       # not even the safe member
    assert not (tmp_path / "deep" / "evil.txt").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_device_file_refused(tmp_path, fakes):
    info = tarfile.TarInfo("top/dev")
    info.type = tarfile.CHRTYPE
    archive = fakes.make_tar(tmp_path / "dev.tar.gz", [(info, None)])
    with pytest.raises(DataError, match="device or special file"):
        safe_extract(archive, tmp_path / "out")


def test_corrupt_archive(tmp_path, fakes):
    archive = fakes.make_tar(tmp_path / "ok.tar.gz", [_file("top/a.bin", bytes(range(256)) * 400)])
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"ok\.tar\.gz: cannot extract the archive, it is corrupt "
                                        r"or truncated"):
        safe_extract(archive, tmp_path / "out")
