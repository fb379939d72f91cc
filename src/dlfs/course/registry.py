"""The single topic registry: topic -> reference modules -> tests -> lesson.

Every topic of the roadmap is listed here, built or not. A topic belongs to a ``part`` of the
course (0–5, shown to the learner as "Module 0: Foundations" ...); its content lives in
``topics/NN-slug/`` under the course root (lesson ``README.md``, ``hints/1.md``..``3.md``,
``questions.md`` and ``test_*.py``); its reference implementation lives in the Python
modules named in ``modules``; the learner's copy lives in
``<workspace>/NN-slug/<module file>.py``.

The course root is the folder holding ``topics/``: ``$DLFS_COURSE_DIR`` when it is set, else
the checkout the package is loaded from (``pip install -e .``). A wheel or ``pip install .``
installs the library only; then :func:`course_root` raises :class:`CourseNotFoundError`,
which says what to do.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

from dlfs.errors import DlfsError, NotBuiltError, UsageError

COURSE_DIR_ENV = "DLFS_COURSE_DIR"
SRC_ROOT = Path(__file__).resolve().parents[1]          # the dlfs package (.../src/dlfs in a checkout)
PACKAGE_CHECKOUT = SRC_ROOT.parents[1]                   # its checkout, when loaded from <checkout>/src/dlfs


class CourseNotFoundError(DlfsError):
    """The course content (``topics/``) is not where dlfs looks for it."""


def find_course_root() -> Path | None:
    """The folder holding ``topics/``: ``$DLFS_COURSE_DIR`` when set (valid or not: see
    :func:`course_root`), else the checkout the package is loaded from, else None."""
    env = os.environ.get(COURSE_DIR_ENV)
    if env:
        return Path(env).expanduser().resolve()
    if SRC_ROOT.parent.name == "src" and (PACKAGE_CHECKOUT / "topics").is_dir():
        return PACKAGE_CHECKOUT
    return None


def course_root() -> Path:
    """The course root, or a :class:`CourseNotFoundError` saying how to get one."""
    root = find_course_root()
    if root is None:
        raise CourseNotFoundError(
            f"The course content (topics/: lessons, hints and tests) was not found. This dlfs "
            f"({SRC_ROOT}) is installed without it, as a wheel or `pip install .` installs it. "
            "Clone the repository and run `pip install -e .` in the clone, or set "
            f"{COURSE_DIR_ENV} to a clone (export {COURSE_DIR_ENV}=/path/to/the/clone)."
        )
    if not (root / "topics").is_dir():
        raise CourseNotFoundError(
            f"{COURSE_DIR_ENV} is {root}, which has no topics/ folder. Set it to a clone of the "
            "repository (the folder holding topics/ and ROADMAP.md), or unset it to use the "
            "clone dlfs is installed from."
        )
    return root


# The checkout as found at import time; falls back to where the package would sit in one, so
# that importing never fails. Code that needs the course content calls course_root() instead.
REPO_ROOT = find_course_root() or PACKAGE_CHECKOUT

PART_TITLES = {
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
    part: int                         # the course part, 0–5 (the learner sees "Module <part>")
    modules: tuple[str, ...] = ()     # reference Python modules, e.g. ("dlfs.tensor.broadcasting",)
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
        """Lesson, hints, questions and tests (raises CourseNotFoundError without a course root)."""
        return course_root() / "topics" / self.folder_name

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


def _t(n, slug, title, part, modules=(), built=False):
    return Topic(n, slug, title, part, tuple(modules), built)


_TOPICS = [
    _t(1, "tensors-broadcasting", "Tensor Operations & Broadcasting", 0,
       ["dlfs.tensor.broadcasting"], built=True),
    _t(2, "autograd", "Autograd Engine From Scratch", 0,
       ["dlfs.autograd.value", "dlfs.autograd.tensor", "dlfs.numerics"], built=True),
    _t(3, "optimizers", "Optimization Algorithms", 0,
       ["dlfs.optim.optimizers", "dlfs.optim.schedules"], built=True),
    _t(4, "perceptron", "Single Layer Perceptron", 1, ["dlfs.nn.perceptron"], built=True),
    _t(5, "mlp-forward", "MLP Forward Pass", 1, ["dlfs.nn.init", "dlfs.nn.forward"], built=True),
    _t(6, "backpropagation", "Backpropagation Implementation", 1, ["dlfs.nn.layers"], built=True),
    _t(7, "activations", "Activation Functions & Initialization", 1, ["dlfs.nn.activations"], built=True),
    _t(8, "losses", "Loss Functions", 1, ["dlfs.nn.losses"], built=True),
    _t(9, "regularization", "Regularization", 1,
       ["dlfs.nn.regularization", "dlfs.nn.batchnorm"], built=True),
    _t(10, "mnist", "End-to-End MNIST", 1, ["dlfs.train.loop"], built=True),
    _t(11, "conv2d-sliding-window", "Conv2D Sliding Window", 2,
       ["dlfs.conv.sliding_window", "dlfs.conv.geometry"], built=True),
    _t(12, "im2col", "Im2Col Vectorization", 2, ["dlfs.conv.im2col"], built=True),
    _t(13, "pooling", "Pooling & Strides", 2, ["dlfs.conv.pooling"], built=True),
    _t(14, "resnet", "ResNet Skip Connections", 2, ["dlfs.conv.resnet"], built=True),
    _t(15, "modern-convolutions", "Modern Convolutions (Depthwise, Dilated)", 2, ["dlfs.conv.modern"], built=True),
    _t(16, "normalization", "Advanced Normalizations", 2,
       ["dlfs.nn.normalization", "dlfs.nn.batchnorm"], built=True),
    _t(17, "cifar10", "CIFAR-10 From Scratch", 2, ["dlfs.train.recipe"], built=True),
    _t(18, "vanilla-rnn", "Vanilla RNN", 3, ["dlfs.rnn.vanilla"], built=True),
    _t(19, "lstm", "LSTM Gates", 3, ["dlfs.rnn.lstm"], built=True),
    _t(20, "gru", "GRU Variant", 3, ["dlfs.rnn.gru"], built=True),
    _t(21, "bidirectional-masking", "Bidirectional RNNs & Masking", 3,
       ["dlfs.rnn.masking", "dlfs.rnn.bidirectional"], built=True),
    _t(22, "word-embeddings", "Word Embeddings (Word2Vec Logic)", 3,
       ["dlfs.embeddings.vocab", "dlfs.embeddings.word2vec", "dlfs.embeddings.similarity"], built=True),
    _t(23, "seq2seq", "Seq2Seq Encoder-Decoder", 3,
       ["dlfs.seq2seq.encoder_decoder", "dlfs.seq2seq.beam"], built=True),
    _t(24, "bahdanau-attention", "Attention Mechanism (Bahdanau)", 3, ["dlfs.seq2seq.bahdanau"], built=True),
    _t(25, "self-attention", "Efficient Self-Attention", 4,
       ["dlfs.attention.scaled_dot_product", "dlfs.attention.qkv"], built=True),
    _t(26, "multi-head-attention", "Multi-Head Attention", 4, ["dlfs.attention.multi_head"], built=True),
    _t(27, "positional-encodings", "Positional Encodings", 4, ["dlfs.transformer.positional"], built=True),
    _t(28, "transformer-encoder", "Transformer Encoder Block", 4, ["dlfs.transformer.encoder"], built=True),
    _t(29, "transformer-decoder", "Transformer Decoder Block", 4, ["dlfs.transformer.decoder"], built=True),
    _t(30, "mini-gpt", "Mini-GPT Training", 4,
       ["dlfs.nn.embedding", "dlfs.transformer.gpt", "dlfs.transformer.sampling", "dlfs.transformer.training"],
       built=True),
    _t(31, "kv-cache", "KV-Cache Optimization", 4,
       ["dlfs.transformer.kv_cache", "dlfs.transformer.decoding", "dlfs.transformer.grouped_query"], built=True),
    _t(32, "modern-optimizations", "Modern Optimizations (FlashAttention, Gradient Checkpointing)", 4,
       ["dlfs.attention.flash", "dlfs.transformer.checkpointing"], built=True),
    _t(33, "quantization", "Quantization & Efficiency", 4,
       ["dlfs.quant.quantize", "dlfs.quant.int_matmul", "dlfs.quant.ptq", "dlfs.quant.qat"], built=True),
    _t(34, "distributed-training", "Distributed Training Logic", 4,
       ["dlfs.distributed.ring", "dlfs.distributed.data_parallel", "dlfs.distributed.zero"], built=True),
    _t(35, "lora-qlora", "LoRA and QLoRA Fundamentals", 5, ["dlfs.lora.nf4", "dlfs.lora.adapter"],
       built=True),
    _t(36, "speculative-decoding", "Speculative Decoding Simulation", 5,
       ["dlfs.speculative.rules", "dlfs.speculative.decode"], built=True),
    _t(37, "mixture-of-experts", "Mixture-of-Experts Routing", 5,
       ["dlfs.moe.router", "dlfs.moe.dispatch", "dlfs.moe.layer"], built=True),
    _t(38, "ssm-mamba", "SSM and Mamba Selective Scan", 5,
       ["dlfs.ssm.discretize", "dlfs.ssm.scan", "dlfs.ssm.mamba"], built=True),
]

MILESTONES: dict[int, Milestone] = {
    10: Milestone(10, "First Neural Network", "≥ 98.0% MNIST test accuracy with your own MLP in ≤ 60 s",
                  "dlfs.milestones.mnist_mlp:run"),
    17: Milestone(17, "CNN Expert", "≥ 90% CIFAR-10 test accuracy with a NumPy ResNet",
                  "dlfs.milestones.cifar_resnet:run"),
    24: Milestone(24, "Sequence Master", "≥ 99.5% exact match normalising dates never seen in training, "
                  "Bahdanau attention seq2seq, in ≤ 10 min", "dlfs.milestones.date_attention:run"),
    30: Milestone(30, "Transformer Builder", "Mini-GPT on Tiny Shakespeare: validation loss ≤ 1.60 nats/char "
                  "in ≤ 60 min, coherent text", "dlfs.milestones.mini_gpt:run"),
    34: Milestone(34, "Production Ready", "All advanced topics (31–34) working",
                  "dlfs.milestones.gpt_systems:run"),
}

TOPICS: dict[int, Topic] = {}
for _topic in _TOPICS:
    TOPICS[_topic.number] = Topic(
        _topic.number, _topic.slug, _topic.title, _topic.part, _topic.modules,
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
