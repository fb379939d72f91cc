"""Terminal rendering for the learner loop: progress bars, topic lists, one failure at a time."""

from __future__ import annotations

import textwrap
from pathlib import Path

import click

from dlfs.course.results import RunReport, TestResult
from dlfs.course.progress import COMPLETE, SKIPPED, Progress
from dlfs.course.registry import MILESTONES, PART_TITLES, Topic, all_topics

BAR_WIDTH = 24


def bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    filled = round(width * done / total) if total else 0
    return "█" * filled + "░" * (width - filled)


def next_topic(progress: Progress) -> Topic | None:
    for topic in all_topics():
        if topic.built and not progress.is_done(topic.number):
            return topic
    return None


def status_symbol(topic: Topic, progress: Progress, nxt: Topic | None) -> str:
    status = progress.status(topic.number)
    if progress.now_failing(topic.number):
        return click.style("✘ failing", fg="red")
    if status == COMPLETE:
        return click.style("✔ done   ", fg="green")
    if status == SKIPPED:
        return click.style("↷ skipped", fg="yellow")
    if not topic.built:
        return click.style("· coming ", dim=True)
    if nxt is not None and topic.number == nxt.number:
        return click.style("▶ next   ", fg="cyan", bold=True)
    return "○ to do  "


def status_data(progress: Progress) -> dict:
    nxt = next_topic(progress)
    modules = []
    for m, title in PART_TITLES.items():
        topics = [t for t in all_topics() if t.part == m]
        modules.append({
            "module": m, "title": title, "total": len(topics),
            "built": sum(t.built for t in topics),
            "complete": sum(progress.status(t.number) == COMPLETE for t in topics),
            "skipped": sum(progress.status(t.number) == SKIPPED for t in topics),
        })
    return {
        "topics": [
            {"number": t.number, "title": t.title, "module": t.part, "built": t.built,
             "status": progress.status(t.number) or ("todo" if t.built else "coming"),
             "last_check": {True: "passed", False: "failed"}.get(progress.last_check(t.number)),
             "now_failing": progress.now_failing(t.number)}
            for t in all_topics()
        ],
        "now_failing": [t.number for t in all_topics() if progress.now_failing(t.number)],
        "modules": modules,
        "milestones": [
            {"milestone": ms.topic, "name": ms.name, "target": ms.target, "built": ms.built,
             "topic_complete": progress.status(ms.topic) == COMPLETE}
            for ms in MILESTONES.values()
        ],
        "next_topic": nxt.number if nxt else None,
        "complete": len(progress.completed()),
        "total": len(all_topics()),
    }


def render_status(progress: Progress) -> str:
    data = status_data(progress)
    lines = [click.style("DL-From-Scratch progress", bold=True), ""]
    for m in data["modules"]:
        done = m["complete"] + m["skipped"]
        coming = m["total"] - m["built"]
        extra = f"  ({coming} coming)" if coming else ""
        lines.append(f"Module {m['module']}  {m['title']:<26} {bar(done, m['total'])} "
                     f"{done:>2}/{m['total']}{extra}")
    lines.append("")
    lines.append(f"Overall: {data['complete']}/{data['total']} topics complete  {bar(data['complete'], data['total'])}")
    for n in data["now_failing"]:
        t = next(t for t in all_topics() if t.number == n)
        lines.append(click.style(f"  ✘ Topic {t.id} · {t.title}: was complete, now failing "
                                 f"(`dlfs check {n}`)", fg="red"))
    lines.append("")
    lines.append("Milestones:")
    for ms in data["milestones"]:
        mark = "✔" if ms["topic_complete"] else ("○" if ms["built"] else "·")
        built = "" if ms["built"] else "  (coming)"
        lines.append(f"  {mark} M{ms['milestone']:<3} {ms['name']:<22} {ms['target']}{built}")
    return "\n".join(lines)


def render_list(progress: Progress) -> str:
    nxt = next_topic(progress)
    lines = []
    for m, title in PART_TITLES.items():
        lines.append(click.style(f"Module {m}: {title}", bold=True))
        for t in all_topics():
            if t.part != m:
                continue
            ms = f"  🎯 M{t.number}" if t.milestone else ""
            failing = (click.style("  (was complete, now failing)", fg="red")
                       if progress.now_failing(t.number) else "")
            lines.append(f"  {status_symbol(t, progress, nxt)} {t.number:>2}  {t.title}{ms}{failing}")
        lines.append("")
    return "\n".join(lines).rstrip()


def _rel(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _short(result: TestResult) -> str:
    msg = result.message.strip()
    if msg.startswith("NotImplementedError:"):
        return "Not implemented yet — " + msg.split(":", 1)[1].strip()
    return msg


def _frame(frame: dict) -> str:
    name = _rel(frame["file"]) if frame["mine"] else Path(frame["file"]).name
    return f"{name}:{frame['line']} in {frame['function']}" + ("   ← your file" if frame["mine"] else "")


def _tail(text: str, max_lines: int) -> list[str]:
    lines = text.rstrip().splitlines()
    if len(lines) > max_lines:
        return [f"… ({len(lines) - max_lines} earlier lines)"] + lines[-max_lines:]
    return lines


def _skip_lines(report: RunReport) -> list[str]:
    """One line per reason a test was skipped, with what to do about it."""
    lines = []
    torch_skipped = report.oracle_skipped
    for reason, n in report.skip_reasons.most_common():
        if "pytorch" in reason.lower() or "'torch'" in reason:
            torch_skipped += n
        else:
            lines.append(f"{n} {'check' if n == 1 else 'checks'} skipped: {reason}")
    if torch_skipped:
        what = "comparison with PyTorch" if torch_skipped == 1 else "comparisons with PyTorch"
        lines.insert(0, f"{torch_skipped} {what} skipped (PyTorch is not installed): "
                        "`pip install -e \".[oracle]\"` to run them")
    return [click.style(line, fg="yellow") for line in lines]


def _failure(r: TestResult, report: RunReport) -> list[str]:
    test_file = Path(r.nodeid.split("::", 1)[0]).name
    lines = [click.style(f"✘ {r.name}", fg="red", bold=True) + click.style(f"  ({test_file})", dim=True)]
    not_implemented = r.message.startswith("NotImplementedError:")
    if r.timed_out and r.where:
        w = r.where
        lines.append(f"  Stopped after {r.timeout or report.timeout:g} s, still running line {w['line']} of "
                     f"{_rel(w['file'])}, in {w['function']}():")
        lines.append(f"      {w['code']}")
    else:
        lines.append(textwrap.indent(_short(r), "  "))
    if r.timed_out:
        lines.append("  An endless loop? If your code is only slow, allow more time: "
                     f"`dlfs check {report.topic.number} --timeout 60`.")
    if r.example:
        lines.append(textwrap.indent(r.example, "  "))
    if r.others:
        more = "failure" if r.others == 1 else "failures"
        lines.append(f"  (Hypothesis found {r.others} more distinct {more} in this test; "
                     f"`--verbose` shows {'it' if r.others == 1 else 'them'}.)")
    if r.stdout.strip():
        lines.append("  Your code printed:")
        lines.append(click.style(textwrap.indent("\n".join(_tail(r.stdout, 15)), "  │ "), dim=True))
    if not_implemented and r.where:
        lines.append(click.style(f"  → {r.where['function']}() in {_rel(r.where['file'])}, "
                                 f"line {r.where['line']}", dim=True))
    elif r.trace and not r.timed_out:
        lines.append("  Where:")
        for frame in r.trace[-8:]:
            lines.append(click.style(f"  │ {_frame(frame)}", dim=True))
            lines.append(click.style(f"  │     {frame['code']}", dim=True))
    elif not r.trace and r.details and not r.timed_out and r.is_collection_error:
        lines.append(click.style(textwrap.indent("\n".join(_tail(r.details, 20)), "  │ "), dim=True))
    return lines


def render_report(report: RunReport, *, show_all: bool = False, verbose: bool = False) -> str:
    """The outcome of a run: a headline, skipped checks and why, the run's problem if it had
    one, then the first failure in the order of the exercise (every one with ``show_all``).
    ``verbose`` puts pytest's full output first."""
    topic = report.topic
    passed = report.count("passed")
    ran = len(report.ran) + len(report.not_run)
    who = {"learner": "your code", "reference": "the reference", "stub": "the stub"}[report.target]
    if ran or not report.problem:
        head = f"Topic {topic.id} · {topic.title} — {passed}/{ran} checks passing on {who}"
    else:
        head = f"Topic {topic.id} · {topic.title} — no check could run on {who}"
    notes = [f"{n} {what}" for n, what in ((report.count("skipped"), "skipped"),
                                           (len(report.not_run), "did not run")) if n]
    if notes:
        head += f" ({', '.join(notes)})"
    lines = []
    if verbose and report.output.strip():
        lines += [click.style("pytest's output:", dim=True), report.output.rstrip(), ""]
    lines.append(click.style(head, bold=True))
    lines += _skip_lines(report)
    if report.all_passed:
        lines.append(click.style("✔ all checks pass", fg="green"))
        return "\n".join(lines)
    if report.problem:
        lines += ["", click.style("✘ " + report.problem, fg="red")]
    failures = report.failures if show_all else report.failures[:1]
    for r in failures:
        lines += ["", *_failure(r, report)]
    rest = len(report.failures) - len(failures)
    if rest > 0:
        lines.append("")
        lines.append(f"({rest} more failing; fix this one first, or `dlfs check {topic.number} --all`)")
    return "\n".join(lines)
