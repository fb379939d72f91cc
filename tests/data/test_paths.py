from dlfs.data.paths import cache_root, decoded_cache_dir, is_writable_dir, resolve_data_dir


def test_default_is_xdg_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_data_dir() == tmp_path / "xdg" / "dlfs"
    assert cache_root() == tmp_path / "xdg" / "dlfs"


def test_default_without_xdg_is_home_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_data_dir() == tmp_path / ".cache" / "dlfs"


def test_relative_xdg_is_ignored(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_data_dir() == tmp_path / ".cache" / "dlfs"


def test_env_beats_cache_and_flag_beats_env(tmp_path, monkeypatch):
    monkeypatch.setenv("DLFS_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir() == tmp_path / "env"
    assert resolve_data_dir(None) == tmp_path / "env"
    assert resolve_data_dir(str(tmp_path / "flag")) == tmp_path / "flag"


def test_empty_env_and_flag_are_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("DLFS_DATA_DIR", "  ")
    assert resolve_data_dir("") == cache_root()


def test_relative_paths_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_data_dir("data") == tmp_path / "data"


def test_read_only_dir_by_mode_bits_even_for_root(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert not is_writable_dir(ro)
        assert not is_writable_dir(ro / "not-yet" / "deeper")
        assert is_writable_dir(tmp_path)
        assert is_writable_dir(tmp_path / "new" / "folder")
        # decoded arrays of read-only data go to the cache dir, keyed by the source folder
        d = decoded_cache_dir(ro, "mnist")
        assert d.parent == cache_root() / "decoded" and d.name.startswith("mnist-")
        assert decoded_cache_dir(ro, "mnist") == d
    finally:
        ro.chmod(0o755)


def test_decoded_arrays_always_go_to_the_cache_dir(tmp_path):
    """A data folder may be shared or read-only: derived files never go into it, even when
    it is writable."""
    for source in (tmp_path, tmp_path / "other"):
        d = decoded_cache_dir(source, "mnist")
        assert d.parent == cache_root() / "decoded" and d.name.startswith("mnist-")
    assert decoded_cache_dir(tmp_path, "mnist") != decoded_cache_dir(tmp_path / "other", "mnist")
