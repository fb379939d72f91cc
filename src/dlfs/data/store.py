"""Finding datasets in the data dir, checking them, and fetching them.

Layout of a data dir::

    <dir>/mnist/train-images-idx3-ubyte.gz  (and the other three MNIST files)
    <dir>/cifar-10-batches-bin/data_batch_1.bin ...   or   <dir>/cifar-10-batches-py/data_batch_1 ...
    <dir>/tinyshakespeare/input.txt
    <dir>/word2vec/lee_background.cor  (and head500.noblanks.cor, wordsim353.tsv, simlex999.txt,
                                        questions-words.txt)
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dlfs.data.paths import ENV_VAR, is_writable_dir, resolve_data_dir
from dlfs.data.sources import DATASETS, Dataset, get_dataset
from dlfs.errors import DataError


def _how_to_supply(ds: Dataset, root: Path, *, after_failed_download: bool = False) -> str:
    files = "\n".join(f"    {root / f}" for f in ds.expected)
    alt = ""
    if ds.name == "cifar10":
        alt = (" (either the cifar-10-batches-bin/ files or the cifar-10-batches-py/ ones: "
               f"unpack cifar-10-binary.tar.gz or cifar-10-python.tar.gz from {ds.home})")
    if after_failed_download:
        how = (f"To supply the files by hand, download them where you have access (from "
               f"{ds.home} or the URLs above) and put them there, or in the same layout under "
               f"any folder DIR and set {ENV_VAR}=DIR (or pass --data-dir DIR); "
               "`dlfs data list` then checks them.")
    else:
        how = (f"Get them with `dlfs data get {ds.name}`, or, with files obtained another way, "
               f"put them in that layout under any folder DIR and set {ENV_VAR}=DIR (or pass "
               "--data-dir DIR).")
    return f"Expected files{alt}:\n{files}\n{how}"


def _markers(ds: Dataset, folder: str) -> tuple[str, ...]:
    """File names whose presence in ``folder`` means the dataset is (at least partly) there."""
    from dlfs.data.sources import CIFAR10_BIN_FILES, CIFAR10_PY_FILES

    if ds.name == "cifar10":
        return CIFAR10_BIN_FILES if folder.endswith("-bin") else CIFAR10_PY_FILES
    names = tuple(f.name for f in ds.files)
    return names + tuple(n[:-3] for n in names if n.endswith(".gz"))   # uncompressed copies


def locate(ds: Dataset | str, root: str | os.PathLike) -> Path | None:
    """The dataset's folder inside ``root`` if one of its accepted layouts holds any of its
    files (a partial copy is located too, and then fails validation naming what is missing)."""
    ds = get_dataset(ds) if isinstance(ds, str) else ds
    root = Path(root)
    for folder in ds.folders:
        if any((root / folder / n).exists() for n in _markers(ds, folder)):
            return root / folder
    return None


def locate_or_raise(name: str, root: Path) -> Path:
    ds = get_dataset(name)
    folder = locate(ds, root)
    if folder is None:
        raise DataError(f"{ds.title} not found in {root}.\n{_how_to_supply(ds, root)}")
    return folder


@dataclass
class DatasetStatus:
    name: str
    title: str
    root: Path
    folder: Path | None      # where it is (None: not present)
    valid: bool
    detail: str

    @property
    def present(self) -> bool:
        return self.folder is not None


def check(ds: Dataset | str, root: str | os.PathLike | None = None) -> DatasetStatus:
    """Is the dataset in ``root`` (default: the resolved data dir), and is it valid?

    Byte-identical canonical files are recognised by checksum; any other copy (re-compressed,
    converted) is validated by format: magic numbers, dimensions, record counts, label range,
    UTF-8.
    """
    from dlfs.data.checksums import describe_copy, matches_checksums

    ds = get_dataset(ds) if isinstance(ds, str) else ds
    root = resolve_data_dir(root)
    folder = locate(ds, root)
    if folder is None:
        return DatasetStatus(ds.name, ds.title, root, None, False, "not present")
    try:
        if ds.name == "mnist":
            from dlfs.data import mnist
            if all(matches_checksums(folder / f.name, f) for f in ds.files):
                detail = "checksums match the canonical files"      # canonical, so valid
            else:
                mnist.validate_folder(folder)
                detail = "valid format (not byte-identical to the canonical files)"
        elif ds.name == "cifar10":
            from dlfs.data import cifar
            detail = (f"valid format ({cifar.validate_folder(folder)}); "
                      f"{describe_copy(ds.name, folder)}")
        elif ds.name == "word2vec":
            from dlfs.data import word2vec
            summary = word2vec.validate_folder(folder)
            if all(matches_checksums(folder / f.name, f) for f in ds.files):
                detail = f"checksums match the canonical files ({summary})"
            else:
                detail = f"valid format ({summary}); {describe_copy(ds.name, folder)}"
        else:
            from dlfs.data import text
            if matches_checksums(folder / ds.files[0].name, ds.files[0]):
                content = text.read_text(folder / text.FILE_NAME)
                detail = (f"checksum matches the canonical file ({len(content):,} characters, "
                          f"{len(set(content))} distinct)")
            else:
                summary = text.validate_folder(folder)     # plausibly Tiny Shakespeare, or not
                detail = f"plausible copy, not the canonical file ({summary})"
    except DataError as exc:
        return DatasetStatus(ds.name, ds.title, root, folder, False, str(exc))
    return DatasetStatus(ds.name, ds.title, root, folder, True, detail)


def check_all(root: str | os.PathLike | None = None) -> list[DatasetStatus]:
    return [check(ds, root) for ds in DATASETS.values()]


def fetch(name: str, data_dir: str | os.PathLike | None = None, *, force: bool = False,
          progress: bool | None = None, timeout: float = 30.0, echo=None) -> DatasetStatus:
    """Download dataset ``name`` into the data dir (flag > $DLFS_DATA_DIR > cache), verify it
    and return its status. A dataset already present and valid is left alone unless ``force``.

    Raises DataError when the data dir is read-only, when every URL fails (the message names the
    URLs and why each failed, the expected files and how to supply them by hand with
    $DLFS_DATA_DIR or --data-dir), or when the downloaded data fails validation. A failed fetch
    leaves nothing behind: the files and folders it created are removed.
    """
    from dlfs.data.checksums import matches_checksums
    from dlfs.data.download import DownloadError, download_file

    say = echo or (lambda msg: None)
    ds = get_dataset(name)
    root = resolve_data_dir(data_dir)
    if not force:
        status = check(ds, root)
        if status.valid:
            say(f"{ds.title} is already in {status.folder} ({status.detail}).")
            return status
    if not is_writable_dir(root):
        raise DataError(f"Cannot download {ds.title}: the data dir {root} is read-only. Choose "
                        f"a writable folder with --data-dir DIR or {ENV_VAR}=DIR.")
    target = root / ds.download_folder if ds.download_folder else root
    new_folders = _missing_folders(target)      # created by this fetch, removed if it fails
    new_files: list[Path] = []
    try:
        for remote in ds.files:
            dest = target / remote.name
            if not force and ds.name != "cifar10" and matches_checksums(dest, remote):
                say(f"{dest} already verified.")
                continue
            say(f"Downloading {remote.name} into {target} ...")
            existed = dest.exists()
            download_file(remote, dest, timeout=timeout, progress=progress)
            if not existed:
                new_files.append(dest)
            if dest.suffixes[-2:] == [".tar", ".gz"]:
                _install_archive(dest, root, ds)
    except DownloadError as exc:
        _remove_created(new_files, new_folders)
        failed = f"The download of {ds.title} failed"
        if not any(p.exists() for p in new_files + new_folders):
            failed += f"; nothing was left behind in {root}"
        raise DataError(f"{exc}\n{failed}.\n"
                        f"{_how_to_supply(ds, root, after_failed_download=True)}") from None
    except BaseException:
        _remove_created(new_files, new_folders)
        raise
    status = check(ds, root)
    if not status.valid:
        raise DataError(f"{ds.title} was downloaded to {status.folder or root} but fails "
                        f"validation: {status.detail}")
    say(f"{ds.title} is ready in {status.folder} ({status.detail}).")
    return status


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet, innermost first."""
    missing = []
    p = Path(folder)
    while not p.exists() and p.parent != p:
        missing.append(p)
        p = p.parent
    return missing


def _remove_created(files: list[Path], folders: list[Path]) -> None:
    """Undo a failed fetch: delete the files it downloaded, then the folders it created if they
    are empty (innermost first; anything else found in them is kept)."""
    for f in files:
        f.unlink(missing_ok=True)
    for d in folders:
        try:
            d.rmdir()
        except OSError:
            break


def _install_archive(archive: Path, root: Path, ds: Dataset) -> None:
    """Extract ``archive`` safely into a temporary folder in ``root``, validate the dataset
    folder it holds, then move that folder into place (``os.replace``); the archive is deleted
    afterwards. Nothing reaches the dataset's folder name unless it validated."""
    from dlfs.data.archive import safe_extract

    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=root))
    try:
        safe_extract(archive, tmp)
        tops = [t for t in sorted(tmp.iterdir()) if t.is_dir() and t.name in ds.folders]
        if not tops:
            raise DataError(f"{archive}: the archive holds none of the expected folders "
                            f"({', '.join(ds.folders)}).")
        for top in tops:
            _validate(ds, top)
            final = root / top.name
            if final.exists():
                old = root / f".{top.name}.old"
                shutil.rmtree(old, ignore_errors=True)
                os.replace(final, old)
                os.replace(top, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(top, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        archive.unlink(missing_ok=True)


def _validate(ds: Dataset, folder: Path) -> None:
    if ds.name == "cifar10":
        from dlfs.data import cifar
        cifar.validate_folder(folder)
    elif ds.name == "mnist":
        from dlfs.data import mnist
        mnist.validate_folder(folder)
    elif ds.name == "word2vec":
        from dlfs.data import word2vec
        word2vec.validate_folder(folder)
    else:
        from dlfs.data import text
        text.validate_folder(folder)
