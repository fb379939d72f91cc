"""Where each dataset comes from: file names, URLs (canonical first, then mirrors), checksums.

Nothing here imports NumPy: the command line reads this table to list the datasets.

Checksum provenance
-------------------
MNIST
    MD5s as published by torchvision (``torchvision/datasets/mnist.py``, ``resources``), for the
    four canonical ``.gz`` files served at http://yann.lecun.com/exdb/mnist/ and its mirrors.
    SHA-256s are of the same canonical ``.gz`` files (computed from byte-identical copies whose
    MD5s equal the published ones).
CIFAR-10
    MD5s of the two archives as published on the CIFAR page
    (https://www.cs.toronto.edu/~kriz/cifar.html, "md5sum" lines) and in torchvision
    (``torchvision/datasets/cifar.py``, ``tgz_md5``). No SHA-256 is published. MD5s of the
    files inside the python archive (``cifar-10-batches-py/``) as published by torchvision
    (``train_list``, ``test_list``, ``meta``); none are published for the files of the binary
    archive, so a ``cifar-10-batches-bin/`` folder can be checked by format only.
Tiny Shakespeare
    SHA-256 of ``data/tinyshakespeare/input.txt`` in the karpathy/char-rnn repository
    (1,115,394 bytes, ASCII).
word2vec
    SHA-256s of the files of ``gensim/test/test_data/`` in the piskvorky/gensim repository at
    the release tag ``GENSIM_TAG`` (the same files ship in that release's wheel), computed from
    byte-identical copies. gensim publishes no checksums of its own for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RemoteFile:
    """One file to download. ``urls`` are tried in order (canonical first, then mirrors)."""

    name: str
    urls: tuple[str, ...]
    md5: str | None = None
    sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class Dataset:
    """A dataset: its folder (or folders) inside the data dir and the files that make it."""

    name: str
    title: str
    folders: tuple[str, ...]          # accepted layouts inside the data dir, preferred first
    files: tuple[RemoteFile, ...]     # what `dlfs data get` downloads
    download_folder: str              # where downloads go inside the data dir
    expected: tuple[str, ...]         # the file names a user must supply (for messages)
    home: str = ""
    aliases: tuple[str, ...] = field(default=())


_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",           # the original home; often refuses requests now
)

# (file, md5 from torchvision, sha256 of the canonical file, size in bytes)
_MNIST_FILES = (
    ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873",
     "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422),
    ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432",
     "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881),
    ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3",
     "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877),
    ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c",
     "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542),
)

MNIST = Dataset(
    name="mnist",
    title="MNIST handwritten digits",
    folders=("mnist",),
    files=tuple(RemoteFile(n, tuple(m + n for m in _MNIST_MIRRORS), md5=md5, sha256=sha, size=size)
                for n, md5, sha, size in _MNIST_FILES),
    download_folder="mnist",
    expected=tuple(f"mnist/{n}" for n, *_ in _MNIST_FILES),
    home="http://yann.lecun.com/exdb/mnist/",
)

# The CIFAR archives are served only from their home page; there is no official mirror.
CIFAR10_BINARY_ARCHIVE = RemoteFile(
    "cifar-10-binary.tar.gz",
    ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",),
    md5="c32a1d4ab5d03f1284b67883e8d87530",       # CIFAR page / torchvision
    size=170052171,
)
CIFAR10_PYTHON_ARCHIVE = RemoteFile(
    "cifar-10-python.tar.gz",
    ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
    md5="c58f30108f718f92721af3b95e74349a",       # CIFAR page / torchvision
    size=170498071,
)

CIFAR10_BIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6)) + ("test_batch.bin",)
CIFAR10_PY_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)

# the files of cifar-10-python.tar.gz: MD5s from torchvision (train_list, test_list, meta)
_CIFAR10_PY_MD5 = (
    ("data_batch_1", "c99cafc152244af753f735de768cd75f"),
    ("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
    ("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
    ("data_batch_4", "634d18415352ddfa80567beed471001a"),
    ("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"),
    ("test_batch", "40351d587109b95175f43aff81a1287e"),
    ("batches.meta", "5ff9c542aee3614f3951f8cda6e48888"),
)

CIFAR10 = Dataset(
    name="cifar10",
    title="CIFAR-10 tiny images",
    folders=("cifar-10-batches-bin", "cifar-10-batches-py"),
    files=(CIFAR10_BINARY_ARCHIVE,),               # the binary version: no pickles involved
    download_folder="",                            # the archive unpacks to cifar-10-batches-bin/
    expected=tuple(f"cifar-10-batches-bin/{f}" for f in CIFAR10_BIN_FILES)
    + tuple(f"cifar-10-batches-py/{f}" for f in CIFAR10_PY_FILES),
    home="https://www.cs.toronto.edu/~kriz/cifar.html",
    aliases=("cifar-10", "cifar"),
)

SHAKESPEARE = Dataset(
    name="shakespeare",
    title="Tiny Shakespeare (char-rnn)",
    folders=("tinyshakespeare",),
    files=(RemoteFile(
        "input.txt",
        ("https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
         # jsDelivr serves the same repository file from its CDN
         "https://cdn.jsdelivr.net/gh/karpathy/char-rnn@master/data/tinyshakespeare/input.txt"),
        sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        size=1115394,
    ),),
    download_folder="tinyshakespeare",
    expected=("tinyshakespeare/input.txt",),
    home="https://github.com/karpathy/char-rnn",
    aliases=("tinyshakespeare", "tiny-shakespeare"),
)

# gensim's test data, pinned to a release tag: raw GitHub first, then the jsDelivr CDN copy of
# the same repository files
GENSIM_TAG = "4.4.0"
_GENSIM_TEST_DATA = (
    f"https://raw.githubusercontent.com/piskvorky/gensim/{GENSIM_TAG}/gensim/test/test_data/",
    f"https://cdn.jsdelivr.net/gh/piskvorky/gensim@{GENSIM_TAG}/gensim/test/test_data/",
)

# (file, sha256, size in bytes)
_WORD2VEC_FILES = (
    ("head500.noblanks.cor", "af9892fa37eef66079a8fcd5d25090104ee7e588f6121ee43817d82131f12474", 2286142),
    ("lee_background.cor", "5d78d6dafd953bbf65797bef09a9ffb9ec430583381be705f8fd460000f370fb", 360082),
    ("questions-words.txt", "8c29b3332afc46f3fb8be04cb5297bf96f39aa7131272dff57869b4485b22a36", 603955),
    ("simlex999.txt", "d5e0501971478a511430ee880bd0121e94ac701ba86d90544d83e6d2ba3db05d", 18126),
    ("wordsim353.tsv", "f92a022fc2537793a15bc3a8c162ebcd74990e033a228bb6388cb71e4c0b1e1d", 7186),
)

WORD2VEC = Dataset(
    name="word2vec",
    title="word2vec corpora and evaluation sets (gensim test data)",
    folders=("word2vec",),
    files=tuple(RemoteFile(n, tuple(m + n for m in _GENSIM_TEST_DATA), sha256=sha, size=size)
                for n, sha, size in _WORD2VEC_FILES),
    download_folder="word2vec",
    expected=tuple(f"word2vec/{n}" for n, *_ in _WORD2VEC_FILES),
    home=f"https://github.com/piskvorky/gensim/tree/{GENSIM_TAG}/gensim/test/test_data",
    aliases=("gensim-test-data",),
)

DATASETS: dict[str, Dataset] = {d.name: d for d in (MNIST, CIFAR10, SHAKESPEARE, WORD2VEC)}


def published_files(dataset: str, folder: str) -> tuple[RemoteFile, ...]:
    """The files of a dataset folder (``mnist``, ``cifar-10-batches-py``, ...) whose checksums
    are published; empty when none are (``cifar-10-batches-bin``)."""
    if folder == "cifar-10-batches-py":
        return tuple(RemoteFile(n, (), md5=md5) for n, md5 in _CIFAR10_PY_MD5)
    ds = DATASETS[dataset]
    return ds.files if folder == ds.download_folder else ()


def get_dataset(name: str) -> Dataset:
    """Look a dataset up by name or alias (case-insensitive); DataError lists the known ones."""
    from dlfs.errors import UsageError

    key = name.strip().lower()
    for d in DATASETS.values():
        if key == d.name or key in d.aliases:
            return d
    raise UsageError(f"Unknown dataset {name!r}. Known datasets: {', '.join(DATASETS)}.")
