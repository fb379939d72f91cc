"""``dlfs data list`` and ``dlfs data get NAME``. Imports only click at import time."""

from __future__ import annotations

import click

from dlfs.clickutil import ErrorReportingGroup

_DATA_DIR_HELP = "Folder holding the datasets (default: $DLFS_DATA_DIR, then ~/.cache/dlfs)."


@click.group(cls=ErrorReportingGroup)
def data():
    """Datasets: where they are, and downloading them."""


@data.command("list")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help=_DATA_DIR_HELP)
def list_cmd(data_dir):
    """Each dataset: where it is, whether it is present and valid."""
    from dlfs.data.paths import resolve_data_dir, source_of_dir
    from dlfs.data.store import check_all

    root = resolve_data_dir(data_dir)
    click.echo(f"Data dir: {root}  (from {source_of_dir(data_dir)})")
    for st in check_all(root):
        if st.valid:
            mark = click.style("ok     ", fg="green")
        elif st.present:
            mark = click.style("INVALID", fg="red")
        else:
            mark = click.style("missing", fg="yellow")
        where = st.folder if st.present else f"(looked for {_expected_folders(root, st.name)})"
        click.echo(f"  {mark} {st.name:<12} {where}")
        if st.present:
            click.echo(f"          {st.detail}")
        else:
            click.echo(f"          get it with `dlfs data get {st.name}`")


def _expected_folders(root, name: str) -> str:
    from dlfs.data.sources import get_dataset

    return " or ".join(f"{root / f}/" for f in get_dataset(name).folders)


@data.command("get")
@click.argument("name")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help=_DATA_DIR_HELP)
@click.option("--force", is_flag=True, help="Download again even if a valid copy is present.")
def get_cmd(name, data_dir, force):
    """Download dataset NAME (mnist, cifar10, shakespeare, word2vec, or all), verified by checksum."""
    from dlfs.data.sources import DATASETS
    from dlfs.data.store import fetch

    names = list(DATASETS) if name.strip().lower() == "all" else [name]
    for n in names:
        fetch(n, data_dir, force=force, progress=None, echo=click.echo)
