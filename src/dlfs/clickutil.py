"""Click helpers shared by the ``dlfs`` command and its sub-groups."""

from __future__ import annotations

import click

from dlfs.errors import DlfsError


class ErrorReportingGroup(click.Group):
    """Turns every DlfsError into one clear paragraph on stderr and its exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except DlfsError as exc:
            click.secho(f"error: {exc}", err=True, fg="red")
            ctx.exit(exc.exit_code)
