import pytest

from dlfs.course.registry import built_topics
from dlfs.course.stubgen import MarkerError, count_solution_blocks, make_stub

REFERENCE = '''\
import numpy as np


def relu(x):
    """x: (N, D) -> (N, D)"""
    # TODO: zero the negatives
    # BEGIN SOLUTION implement ReLU with np.maximum
    y = np.maximum(x, 0)
    return y
    # END SOLUTION


class Layer:
    def forward(self, x):
        # BEGIN SOLUTION
        return x * 2
        # END SOLUTION
'''


def test_blocks_become_not_implemented_with_the_marker_text():
    stub = make_stub(REFERENCE, 7)
    assert 'raise NotImplementedError("Topic 07: implement ReLU with np.maximum")' in stub
    assert "np.maximum(x, 0)" not in stub and "x * 2" not in stub


def test_default_message_names_the_enclosing_function():
    stub = make_stub(REFERENCE, 7)
    assert '        raise NotImplementedError("Topic 07: implement Layer.forward")' in stub


def test_signatures_docstrings_and_todos_are_kept():
    stub = make_stub(REFERENCE, 7)
    for kept in ("def relu(x):", '"""x: (N, D) -> (N, D)"""', "# TODO: zero the negatives", "class Layer:"):
        assert kept in stub, f"expected the stub to keep {kept!r}"
    compile(stub, "<stub>", "exec")


def test_the_stub_raises_when_called():
    ns = {}
    exec(make_stub(REFERENCE, 7), ns)
    with pytest.raises(NotImplementedError, match="Topic 07"):
        ns["relu"](1.0)


@pytest.mark.parametrize("bad, complaint", [
    ("def f():\n    # BEGIN SOLUTION\n    return 1\n", "never closed"),
    ("def f():\n    return 1\n    # END SOLUTION\n", "without a BEGIN"),
    ("def f():\n    # BEGIN SOLUTION\n    # BEGIN SOLUTION\n    # END SOLUTION\n", "nested"),
    ("def f():\n    return 1\n", "no BEGIN SOLUTION"),
])
def test_unbalanced_markers_are_refused(bad, complaint):
    with pytest.raises(MarkerError, match=complaint):
        make_stub(bad, 1)


@pytest.mark.parametrize("topic", built_topics(), ids=lambda t: t.id)
def test_every_built_reference_module_has_markers_and_its_stub_compiles(topic):
    for module, path in topic.reference_paths().items():
        source = path.read_text()
        assert count_solution_blocks(source) > 0, f"{module} has no solution blocks"
        compile(make_stub(source, topic.number), str(path), "exec")
