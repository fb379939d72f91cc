"""The ``dlfs`` command: the learner loop, grading, progress and milestones."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import click

from dlfs.course import progress as progress_mod
from dlfs.course import timeouts
from dlfs.course.registry import built_topics, get_topic
from dlfs.course.workspace import workspace_dir
from dlfs.clickutil import ErrorReportingGroup
from dlfs.errors import DlfsError, UsageError


def _progress() -> progress_mod.Progress:
    state = progress_mod.Progress.load(workspace_dir() / "progress.json")
    for warning in state.warnings:
        click.secho(f"warning: {warning}", err=True, fg="yellow")
    return state


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@click.group(cls=ErrorReportingGroup, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dlfs")
@click.pass_context
def main(ctx):
    """DL-From-Scratch: build deep learning from tensors to a GPT, in NumPy.

    Run `dlfs` with no command to see your progress and start on the next topic.
    """
    if ctx.invoked_subcommand is not None:
        return
    from dlfs.course import ui

    state = _progress()
    click.echo(ui.render_status(state))
    nxt = ui.next_topic(state)
    click.echo("")
    if nxt is None:
        click.echo("Every topic built so far is complete or skipped. New topics are coming.")
        return
    created = _start(nxt)
    click.echo(f"Next: Topic {nxt.id} · {nxt.title}")
    click.echo(f"  lesson:        {_rel(nxt.lesson)}")
    for path in _exercise_paths(nxt):
        click.echo(f"  your file:     {_rel(path)}" + ("  (new)" if path in created else ""))
    if sys.stdin.isatty() and sys.stdout.isatty():
        click.echo("")
        _watch(nxt.number)
    else:
        click.echo(f"\nRun `dlfs watch` to re-check on every save, or `dlfs check {nxt.number}`.")


def _exercise_paths(topic):
    from dlfs.course.workspace import learner_files

    return list(learner_files(topic).values())


def _start(topic):
    from dlfs.course.workspace import ensure_exercise

    return ensure_exercise(topic)


@main.command()
@click.argument("topic", required=False)
def start(topic):
    """Create the exercise file(s) for TOPIC (default: the next one). Never overwrites."""
    from dlfs.course import ui

    t = get_topic(topic) if topic else ui.next_topic(_progress())
    if t is None:
        click.echo("Every topic built so far is complete or skipped.")
        return
    created = _start(t)
    click.echo(f"Topic {t.id} · {t.title}")
    click.echo(f"  lesson:    {_rel(t.lesson)}")
    for path in _exercise_paths(t):
        click.echo(f"  your file: {_rel(path)}" + ("  (new)" if path in created else "  (kept as it is)"))


@main.command()
@click.argument("topic")
def info(topic):
    """Where TOPIC's lesson, reference, tests and your file live."""
    t = get_topic(topic, require_built=False)
    click.echo(f"Topic {t.id} · {t.title}  (Module {t.part}{', built' if t.built else ', coming'})")
    click.echo(f"  lesson:     {_rel(t.lesson)}")
    click.echo(f"  hints:      {_rel(t.folder / 'hints')}")
    click.echo(f"  questions:  {_rel(t.folder / 'questions.md')}")
    for f in t.test_files:
        click.echo(f"  tests:      {_rel(f)}")
    if t.built:
        for m, p in t.reference_paths().items():
            click.echo(f"  reference:  {m}  ({_rel(p)})")
        for p in _exercise_paths(t):
            click.echo(f"  your file:  {_rel(p)}")
    if t.milestone:
        click.echo(f"  milestone:  M{t.number} {t.milestone.name}: {t.milestone.target}")


def _check(t, *, reference=False, show_all=False, verbose=False, quiet_mark=False, timeout=None):
    """Run the checks (showing progress), print the report, mark progress; returns the report."""
    from dlfs.course import grading, live, ui

    options = {"test_timeout": timeout, "verbose": verbose}
    if not reference:
        _start(t)
    with live.LiveProgress(t) as show:
        if reference:
            report = grading.run_reference(t, on_event=show, **options)
        else:
            report = grading.run_learner(t, on_event=show, **options)
    click.echo(ui.render_report(report, show_all=show_all, verbose=verbose))
    if report.target == "learner":
        _record_check(t, report.all_passed, quiet_mark=quiet_mark)
    return report


@main.command()
@click.argument("topic")
@click.option("--reference", is_flag=True, help="Run the tests against the reference instead of your file.")
@click.option("--all", "show_all", is_flag=True, help="Show every failure, not only the first.")
@click.option("-v", "--verbose", is_flag=True,
              help="Also show pytest's full output: every test, full tracebacks, all diffs.")
@click.option("--timeout", type=float, default=None, metavar="SECONDS",
              help=f"Stop a test that runs longer than this (default: ${timeouts.ENV_VAR}, "
                   f"else {timeouts.DEFAULT_SECONDS:g}).")
def check(topic, reference, show_all, verbose, timeout):
    """Run TOPIC's tests against your file; all passing marks it complete."""
    report = _check(get_topic(topic), reference=reference, show_all=show_all, verbose=verbose,
                    timeout=timeout)
    sys.exit(0 if report.all_passed else 1)


def _watch(number: int | None):
    from dlfs.course import ui, watch

    current = {"topic": get_topic(number) if number else ui.next_topic(_progress())}
    if current["topic"] is None:
        click.echo("Every topic built so far is complete or skipped.")
        return

    def get_paths():
        return _exercise_paths(current["topic"])

    def on_check():
        t = current["topic"]
        _start(t)
        if sys.stdout.isatty():
            click.clear()
        try:
            _check(t, quiet_mark=True)
        except DlfsError as exc:
            click.secho(str(exc), fg="red")
        click.echo(f"\nWatching {', '.join(_rel(p) for p in get_paths())} — save to re-check.")

    def on_key(key):
        try:
            return handle_key(key)
        except DlfsError as exc:
            click.secho(str(exc), fg="red")
            return True

    def handle_key(key):
        t = current["topic"]
        if key == "q":
            return False
        if key == "h":
            _show_hint(t, None)
        elif key == "l":
            click.echo(ui.render_list(_progress()))
        elif key in ("n", "s"):
            state = _progress()
            if key == "s":
                state.mark(t.number, progress_mod.SKIPPED, via="skip")
                state.save()
                click.echo(f"Skipped Topic {t.id}; later topics use the reference.")
            elif not state.is_done(t.number):
                click.echo(f"Topic {t.id} is not passing yet. Press s to skip it, or keep going.")
                return True
            nxt = ui.next_topic(state)
            if nxt is None:
                click.echo("That was the last topic built so far. Well done!")
                return False
            current["topic"] = nxt
        else:
            click.echo(f"Unknown command {key!r}.")
        return True

    watch.loop(get_paths, on_check, on_key)


@main.command("watch")
@click.argument("topic", required=False)
def watch_cmd(topic):
    """Re-check TOPIC (default: the next one) every time you save your file."""
    _watch(topic)


HINT_TIERS = {1: "direction", 2: "pseudocode", 3: "the tricky detail"}


def _show_hint(t, level):
    """Hint ``level`` of topic ``t``; without a level, the next one not seen yet (1, 2, then 3,
    which stays)."""
    state = _progress()
    if level is None:
        level = min(state.hints_seen.get(t.number, 0) + 1, 3)
    path = t.hint(level)
    if not path.exists():
        raise DlfsError(f"Topic {t.id} has no hint {level} ({path} is missing).")
    click.secho(f"Topic {t.id} · hint {level}/3: {HINT_TIERS[level]}", bold=True)
    click.echo(path.read_text(encoding="utf-8").rstrip())
    if level < 3:
        click.echo(f"\n(`dlfs hint {t.number}` again shows hint {level + 1}, "
                   f"{HINT_TIERS[level + 1]}; `dlfs hint {t.number} 1`-`3` shows a given one)")
    else:
        click.echo(f"\n(that was the last hint; `dlfs hint {t.number} 1` or `2` shows an "
                   "earlier one)")
    state.saw_hint(t.number, level)
    try:
        state.save()
    except DlfsError as exc:           # the hint was shown; only the record of it is missing
        click.secho(f"warning: {exc}", err=True, fg="yellow")


@main.command()
@click.argument("topic")
@click.argument("level", required=False, type=click.IntRange(1, 3))
def hint(topic, level):
    """Show a hint for TOPIC: the next one you have not seen, or LEVEL (1 direction,
    2 pseudocode, 3 the tricky detail)."""
    _show_hint(get_topic(topic), level)


@main.command()
@click.argument("topic")
@click.option("--force", is_flag=True, help="Show it even though the topic is not complete.")
def solution(topic, force):
    """Show the reference implementation of TOPIC (after you complete it)."""
    t = get_topic(topic)
    state = _progress()
    if state.status(t.number) != progress_mod.COMPLETE and not force:
        raise DlfsError(
            f"Topic {t.id} is not complete yet, so its solution stays hidden. Finish it "
            f"(`dlfs check {t.number}`), or use `dlfs solution {t.number} --force` to look anyway.",
            exit_code=1,
        )
    for module, path in t.reference_paths().items():
        click.secho(f"# ===== {module}  ({_rel(path)}) =====", bold=True)
        click.echo(path.read_text(encoding="utf-8"))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json):
    """Progress per module and milestones."""
    from dlfs.course import ui

    state = _progress()
    if as_json:
        click.echo(json.dumps(ui.status_data(state), indent=2))
    else:
        click.echo(ui.render_status(state))


@main.command("list")
def list_cmd():
    """All 38 topics with their status."""
    from dlfs.course import ui

    click.echo(ui.render_list(_progress()))


def _record_check(t, passed: bool, *, quiet_mark: bool = False) -> None:
    """Store the outcome of a check of the learner's file and say what it changed. A pass
    that cannot be recorded is an error (exit 1), never a silent loss."""
    state = _progress()
    event = state.record_check(t.number, passed)
    try:
        state.save()
    except DlfsError as exc:
        if event == progress_mod.COMPLETED:
            raise DlfsError(f"Topic {t.id} passes every check, but its completion could not be "
                            f"recorded. {exc}") from None
        click.secho(f"warning: {exc}", err=True, fg="yellow")
        return
    if event == progress_mod.COMPLETED:
        click.secho(f"\n🎉 Topic {t.id} complete! `dlfs solution {t.number}` shows the reference "
                    "to compare with.", fg="green")
    elif event == progress_mod.FIXED:
        click.secho(f"\nTopic {t.id} passes again.", fg="green")
    elif event == progress_mod.REGRESSED:
        click.secho(f"\nTopic {t.id} was complete, but its checks fail now. It stays complete "
                    "and shows as \"was complete, now failing\" until they pass again "
                    f"(`dlfs unmark {t.number}` removes the completion).", fg="yellow")
    elif event == progress_mod.PASSING and not quiet_mark:
        click.echo("(already marked complete)")


def _topics_arg(numbers, *, require_built: bool = False) -> list:
    if not numbers:
        raise UsageError("Give at least one topic number, e.g. `dlfs mark 1 2 3`.")
    return [get_topic(n, require_built=require_built) for n in numbers]


@main.command()
@click.argument("topics", nargs=-1)
def mark(topics):
    """Mark TOPICS complete by hand (built topics only)."""
    ts = _topics_arg(topics, require_built=True)
    state = _progress()
    for t in ts:
        state.mark(t.number, progress_mod.COMPLETE, via="manual")
    state.save()
    click.echo("Marked complete: " + ", ".join(t.id for t in ts))


@main.command()
@click.argument("topics", nargs=-1)
def unmark(topics):
    """Remove the completion mark of TOPICS."""
    ts = _topics_arg(topics)
    state = _progress()
    changed = [t.id for t in ts if state.unmark(t.number)]
    state.save()
    click.echo("Unmarked: " + (", ".join(changed) if changed else "nothing (none was marked)"))


@main.command()
@click.argument("topic")
def skip(topic):
    """Skip TOPIC and continue; later topics use the reference implementation."""
    t = get_topic(topic)
    state = _progress()
    state.mark(t.number, progress_mod.SKIPPED, via="skip")
    state.save()
    click.echo(f"Skipped Topic {t.id} · {t.title}. Later topics never depend on your version of it; "
               f"come back any time with `dlfs check {t.number}`.")


@main.command()
@click.argument("topic")
@click.confirmation_option(prompt="Restore the stub? Your current file is backed up first.")
def reset(topic):
    """Restore TOPIC's exercise file(s) to the stub, keeping a backup of yours; TOPIC is no
    longer marked complete or skipped."""
    from dlfs.course.workspace import reset_exercise

    t = get_topic(topic)
    state = _progress()
    was = state.status(t.number)
    state.unmark(t.number)
    if state.unsaved():
        state.save()                  # first: if this fails, no file was touched
    for path, backup in reset_exercise(t):
        click.echo(f"Restored {_rel(path)}" + (f"  (your version: {_rel(backup)})" if backup else ""))
    if was:
        click.echo(f"Topic {t.id} is no longer marked {was}; it is to do again.")


@main.command()
@click.argument("topics", nargs=-1)
def verify(topics):
    """(Maintainers) every test passes on the reference and fails on the stub."""
    from dlfs.course.verify import verify_topic

    ts = [get_topic(n) for n in topics] if topics else built_topics()
    bad = 0
    for t in ts:
        out = verify_topic(t)
        mark_ = click.style("ok  ", fg="green") if out.ok else click.style("FAIL", fg="red")
        click.echo(f"{mark_} Topic {t.id} · {t.title}: {out.tests} tests")
        for p in out.problems:
            click.echo(f"       - {p}")
        for s in out.skipped_on_reference:
            click.echo(click.style(f"       (skipped: {s})", dim=True))
        bad += not out.ok
    click.echo(f"\n{len(ts) - bad} of {len(ts)} topics verified.")
    sys.exit(1 if bad else 0)


def _learner_progress(learner: bool) -> dict:
    """The completed topics (and those now failing their checks) for ``--learner``."""
    if not learner:
        return {"learner_topics": None}
    state = _progress()
    done = state.completed()
    return {"learner_topics": done, "failing_topics": [n for n in done if state.now_failing(n)]}


@main.command()
@click.argument("number")
@click.option("--smoke", is_flag=True,
              help="A small, fast real run with a target of its own (used by CI); never recorded.")
@click.option("--preset", default=None, help="A named configuration of the milestone (see --list-presets).")
@click.option("--list-presets", is_flag=True, help="List the milestone's presets and their targets, then stop.")
@click.option("--resume", is_flag=True,
              help="Continue this run from its last per-epoch checkpoint, which must exist.")
@click.option("--record", is_flag=True,
              help="(Maintainers) write the project's records in results/ and checkpoints/ instead "
                   "of your workspace's.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Folder holding the datasets (default: $DLFS_DATA_DIR, then the cache).")
@click.option("--seed", "seeds", type=int, multiple=True,
              help="Random seed; repeat it (--seed 0 --seed 1 --seed 2) to run several and "
                   "report the median.  [default: 0]")
@click.option("--learner", is_flag=True, help="Use your own implementations of completed topics.")
def milestone(number, smoke, preset, list_presets, resume, record, data_dir, seeds, learner):
    """Run milestone NUMBER (10, 17, 24, 30, 34), or mnist-cnn, on the real dataset.

    The record (workspace/results/milestone-NN.json), plots and checkpoints go to your
    workspace; only --record writes the project's results/.
    """
    from dlfs.course import milestones

    if list_presets:
        entry = milestones.resolve(number)
        click.secho(f"{entry.label}: {entry.spec.title}", bold=True)
        click.echo("\n".join(entry.spec.preset_lines()))
        return
    plan = milestones.plan(number, smoke=smoke, preset=preset, seeds=seeds or (0,), data_dir=data_dir,
                           resume=resume, record=record,
                           **_learner_progress(learner))
    click.secho(plan.header(), bold=True)
    for line in plan.notes:
        click.echo(line)
    for line in milestones.describe_sources(plan.learner) if plan.learner is not None else ():
        click.echo(line)
    results = []
    for options in plan.runs:
        if len(plan.runs) > 1:
            click.secho(f"\nseed {options.seed}", bold=True)
        result, _ = milestones.execute(plan, options)
        verdict = click.style("PASSED", fg="green") if result.passed else click.style("BELOW TARGET", fg="red")
        click.echo(f"{result.verdict()}: {verdict}")
        for a in result.artifacts:
            click.echo(f"  wrote {_rel(Path(a))}")
        results.append(result)
    if plan.records_file is not None:
        click.echo(f"recorded in {_rel(plan.records_file)}")
    if len(results) > 1:
        show = plan.target.show
        values = sorted(r.value for r in results)
        walls = sorted(r.wall_time_s for r in results)
        click.secho(f"\nmedian {plan.target.metric.replace('_', ' ')} over seeds "
                    f"{', '.join(str(o.seed) for o in plan.runs)}: {show(statistics.median(values))} "
                    f"(min {show(values[0])}, max {show(values[-1])}); "
                    f"wall time {walls[0]:.1f}-{walls[-1]:.1f} s", bold=True)
    sys.exit(0 if all(r.passed for r in results) else 1)


def _register_optional_groups():
    try:
        from dlfs.data.cli import data
    except ImportError:
        return
    main.add_command(data)


_register_optional_groups()

if __name__ == "__main__":
    main()
