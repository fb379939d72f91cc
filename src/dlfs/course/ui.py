"""Terminal rendering for the learner loop: progress bars, topic lists, one failure at a time."""

from __future__ import annotations

import textwrap

import click

from dlfs.course.grading import RunReport, TestResult
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


def _short(result: TestResult) -> str:
    msg = result.message.strip()
    if msg.startswith("NotImplementedError:"):
        return "Not implemented yet — " + msg.split(":", 1)[1].strip()
    return msg


def _details(result: TestResult, max_lines: int = 30) -> str:
    lines = [ln for ln in result.details.rstrip().splitlines()]
    if len(lines) > max_lines:
        lines = ["..."] + lines[-max_lines:]
    return "\n".join(lines)


def render_report(report: RunReport, *, show_all: bool = False, verbose: bool = False) -> str:
    topic = report.topic
    passed = report.count("passed")
    ran = len(report.ran)
    who = {"learner": "your code", "reference": "the reference", "stub": "the stub"}[report.target]
    head = f"Topic {topic.id} · {topic.title} — {passed}/{ran} checks passing on {who}"
    skipped = report.count("skipped")
    if skipped:
        head += f" ({skipped} skipped)"
    lines = [click.style(head, bold=True)]
    if report.all_passed:
        lines.append(click.style("✔ all checks pass", fg="green"))
        return "\n".join(lines)
    failures = report.failures if show_all else report.failures[:1]
    for r in failures:
        lines.append("")
        lines.append(click.style(f"✘ {r.name}", fg="red", bold=True))
        lines.append(textwrap.indent(_short(r), "  "))
        if verbose or not r.message.startswith("NotImplementedError"):
            detail = _details(r)
            if detail:
                lines.append(click.style(textwrap.indent(detail, "  │ "), dim=True))
    rest = len(report.failures) - len(failures)
    if rest > 0:
        lines.append("")
        lines.append(f"({rest} more failing; fix this one first, or `dlfs check {topic.number} --all`)")
    return "\n".join(lines)
