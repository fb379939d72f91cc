"""``dlfs verify``: every test passes on the reference and fails on the generated stub.

A test that passes on the stub checks nothing the learner writes: it is reported
as vacuous and fails the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dlfs.course.grading import run_reference, run_stub
from dlfs.course.registry import Topic
from dlfs.course.stubgen import count_solution_blocks


@dataclass
class VerifyOutcome:
    topic: Topic
    problems: list[str] = field(default_factory=list)
    tests: int = 0
    skipped_on_reference: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_topic(topic: Topic) -> VerifyOutcome:
    out = VerifyOutcome(topic)
    for module, path in topic.reference_paths().items():
        if count_solution_blocks(path.read_text(encoding="utf-8")) == 0:
            out.problems.append(f"{module} has no BEGIN SOLUTION blocks")
    for required in [topic.lesson, topic.folder / "questions.md", *(topic.hint(i) for i in (1, 2, 3))]:
        if not required.exists():
            out.problems.append(f"missing {required.relative_to(topic.folder.parent.parent)}")
    ref = run_reference(topic)
    stub = run_stub(topic)
    out.tests = len(ref.results)
    for r in ref.results:
        if r.outcome in ("failed", "error"):
            out.problems.append(f"fails on the reference: {r.nodeid}: {r.message}")
        elif r.outcome == "skipped":
            out.skipped_on_reference.append(f"{r.nodeid}: {r.message}")
    ref_passed = {r.nodeid for r in ref.results if r.outcome == "passed"}
    stub_by_id = {r.nodeid: r for r in stub.results}
    for nodeid in sorted(ref_passed):
        r = stub_by_id.get(nodeid)
        if r is None:
            if any(s.outcome == "error" and s.nodeid in nodeid for s in stub.results):
                continue        # the whole module failed to collect on the stub: it fails
            out.problems.append(f"did not run on the stub: {nodeid}")
        elif r.outcome == "passed":
            out.problems.append(f"vacuous (passes on the stub): {nodeid}")
        elif r.outcome == "skipped":
            out.problems.append(f"skipped on the stub but passes on the reference: {nodeid}")
    if not ref_passed:
        out.problems.append("no test passed on the reference")
    return out
