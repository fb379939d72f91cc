"""The single topic registry: topic -> reference modules -> tests -> lesson.

Every topic of the roadmap is listed here, built or not. A topic's content lives in
``topics/NN-slug/`` (lesson ``README.md``, ``hints/1.md``..``3.md``,
``questions.md`` and ``test_*.py``); its reference implementation lives in the
modules named in ``modules``; the learner's copy lives in
``<workspace>/NN-slug/<module file>.py``.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from dlfs.errors import NotBuiltError, UsageError

SRC_ROOT = Path(__file__).resolve().parents[1]          # .../src/dlfs
REPO_ROOT = SRC_ROOT.parents[1]                          # checkout root
TOPICS_ROOT = REPO_ROOT / "topics"

MODULE_TITLES = {
    0: "Foundations",
    1: "Neural Network Core",
    2: "Convolutional Networks",
    3: "Sequence Models",
    4: "Transformers & Production",
    5: "Bonus LLM Systems",
}


@dataclass(frozen=True)
class Milestone:
    topic: int
    name: str
    target: str
    runner: str = ""          # "package.module:function"; empty while not built

    @property
    def built(self) -> bool:
        return bool(self.runner)


@dataclass(frozen=True)
class Topic:
    number: int
    slug: str
    title: str
    module: int
    modules: tuple[str, ...] = ()     # reference modules, e.g. ("dlfs.tensor.broadcasting",)
    built: bool = False
    milestone: Milestone | None = field(default=None, compare=False)

    @property
    def id(self) -> str:
        return f"{self.number:02d}"

    @property
    def folder_name(self) -> str:
        return f"{self.number:02d}-{self.slug}"

    @property
    def folder(self) -> Path:
        """Lesson, hints, questions and tests."""
        return TOPICS_ROOT / self.folder_name

    @property
    def lesson(self) -> Path:
        return self.folder / "README.md"

    @property
    def test_files(self) -> list[Path]:
        return sorted(self.folder.glob("test_*.py"))

    def hint(self, level: int) -> Path:
        return self.folder / "hints" / f"{level}.md"

    def reference_path(self, module: str) -> Path:
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            raise UsageError(f"Topic {self.id}: reference module {module} cannot be found.")
        return Path(spec.origin)

    def reference_paths(self) -> dict[str, Path]:
        return {m: self.reference_path(m) for m in self.modules}

    def workspace_file(self, workspace: Path, module: str) -> Path:
        return workspace / self.folder_name / (module.rsplit(".", 1)[-1] + ".py")


def _t(n, slug, title, module, modules=(), built=False):
    return Topic(n, slug, title, module, tuple(modules), built)


_TOPICS = [
    _t(1, "tensors-broadcasting", "Tensor Operations & Broadcasting", 0,
       ["dlfs.tensor.broadcasting"], built=True),
    _t(2, "autograd", "Autograd Engine From Scratch", 0,
       ["dlfs.autograd.value", "dlfs.autograd.tensor"], built=True),
    _t(3, "optimizers", "Optimization Algorithms", 0,
       ["dlfs.optim.optimizers", "dlfs.optim.schedules"], built=True),
    _t(4, "perceptron", "Single Layer Perceptron", 1, ["dlfs.nn.perceptron"], built=True),
    _t(5, "mlp-forward", "MLP Forward Pass", 1, ["dlfs.nn.init", "dlfs.nn.forward"], built=True),
    _t(6, "backpropagation", "Backpropagation Implementation", 1, ["dlfs.nn.layers"], built=True),
    _t(7, "activations", "Activation Functions & Initialization", 1, ["dlfs.nn.activations"], built=True),
    _t(8, "losses", "Loss Functions", 1, ["dlfs.nn.losses"], built=True),
    _t(9, "regularization", "Regularization", 1, ["dlfs.nn.regularization"], built=True),
    _t(10, "mnist", "End-to-End MNIST", 1, ["dlfs.train.loop"], built=True),
    _t(11, "conv2d-sliding-window", "Conv2D Sliding Window", 2, ["dlfs.conv.sliding_window"], built=True),
    _t(12, "im2col", "Im2Col Vectorization", 2, ["dlfs.conv.im2col"], built=True),
    _t(13, "pooling", "Pooling & Strides", 2, ["dlfs.conv.pooling"], built=True),
    _t(14, "resnet", "ResNet Skip Connections", 2, ["dlfs.conv.resnet"], built=True),
    _t(15, "modern-convolutions", "Modern Convolutions (Depthwise, Dilated)", 2, ["dlfs.conv.modern"], built=True),
    _t(16, "normalization", "Advanced Normalizations", 2, ["dlfs.nn.normalization"], built=True),
    _t(17, "cifar10", "CIFAR-10 From Scratch", 2, ["dlfs.train.recipe"], built=True),
    _t(18, "vanilla-rnn", "Vanilla RNN", 3),
    _t(19, "lstm", "LSTM Gates", 3),
    _t(20, "gru", "GRU Variant", 3),
    _t(21, "bidirectional-masking", "Bidirectional RNNs & Masking", 3),
    _t(22, "word-embeddings", "Word Embeddings (Word2Vec Logic)", 3),
    _t(23, "seq2seq", "Seq2Seq Encoder-Decoder", 3),
    _t(24, "bahdanau-attention", "Attention Mechanism (Bahdanau)", 3),
    _t(25, "self-attention", "Efficient Self-Attention", 4),
    _t(26, "multi-head-attention", "Multi-Head Attention", 4),
    _t(27, "positional-encodings", "Positional Encodings", 4),
    _t(28, "transformer-encoder", "Transformer Encoder Block", 4),
    _t(29, "transformer-decoder", "Transformer Decoder Block", 4),
    _t(30, "mini-gpt", "Mini-GPT Training", 4),
    _t(31, "kv-cache", "KV-Cache Optimization", 4),
    _t(32, "modern-optimizations", "Modern Optimizations (FlashAttention, Gradient Checkpointing)", 4),
    _t(33, "quantization", "Quantization & Efficiency", 4),
    _t(34, "distributed-training", "Distributed Training Logic", 4),
    _t(35, "lora-qlora", "LoRA and QLoRA Fundamentals", 5),
    _t(36, "speculative-decoding", "Speculative Decoding Simulation", 5),
    _t(37, "mixture-of-experts", "Mixture-of-Experts Routing", 5),
    _t(38, "ssm-mamba", "SSM and Mamba Selective Scan", 5),
]

MILESTONES: dict[int, Milestone] = {
    10: Milestone(10, "First Neural Network", "≥ 98.0% MNIST test accuracy with your own MLP in ≤ 60 s",
                  "dlfs.milestones.mnist_mlp:run"),
    17: Milestone(17, "CNN Expert", "≥ 90% CIFAR-10 test accuracy with a NumPy ResNet",
                  "dlfs.milestones.cifar_resnet:run"),
    24: Milestone(24, "Sequence Master", "Bahdanau attention seq2seq on a real task"),
    30: Milestone(30, "Transformer Builder", "Mini-GPT generating coherent Tiny Shakespeare text"),
    34: Milestone(34, "Production Ready", "All advanced topics (31–34) working"),
}

TOPICS: dict[int, Topic] = {}
for _topic in _TOPICS:
    TOPICS[_topic.number] = Topic(
        _topic.number, _topic.slug, _topic.title, _topic.module, _topic.modules,
        _topic.built, MILESTONES.get(_topic.number),
    )


def all_topics() -> list[Topic]:
    return [TOPICS[n] for n in sorted(TOPICS)]


def built_topics() -> list[Topic]:
    return [t for t in all_topics() if t.built]


def get_topic(number: int | str, *, require_built: bool = True) -> Topic:
    """Look a topic up by number, with a clear error for unknown or unbuilt ones."""
    try:
        n = int(str(number).strip())
    except ValueError:
        raise UsageError(
            f"'{number}' is not a topic number. Topics are numbered 1–{len(TOPICS)}; "
            "run `dlfs list` to see them."
        ) from None
    if n not in TOPICS:
        raise UsageError(
            f"There is no Topic {n}. Topics are numbered 1–{len(TOPICS)}; "
            "run `dlfs list` to see them."
        )
    topic = TOPICS[n]
    if require_built and not topic.built:
        raise NotBuiltError(
            f"Topic {topic.id} ({topic.title}) is coming: it is on the roadmap but not built yet. "
            "Run `dlfs list` to see the topics you can work on now."
        )
    return topic


def get_milestone(number: int | str) -> Milestone:
    try:
        n = int(str(number).strip())
    except ValueError:
        n = -1
    if n not in MILESTONES:
        raise UsageError(
            f"There is no Milestone {number}. Milestones are "
            + ", ".join(str(m) for m in MILESTONES) + " (named after their topic)."
        )
    return MILESTONES[n]
