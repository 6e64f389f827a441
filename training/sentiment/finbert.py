"""FinBERT (``ProsusAI/finbert``) and other BERT sequence classifiers, loaded offline.

Nothing is downloaded at run time: the weights come from a directory named by
``MARKETLAKE_FINBERT_PATH`` (or passed in), else from the Hugging Face cache
(``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``). Every load uses
``local_files_only=True`` and this module sets ``HF_HUB_OFFLINE=1`` when it is unset, so a
missing model fails at once instead of after a minute of network retries.

torch and transformers are imported only when a model is loaded, so that locating a model
(and failing to) stays fast.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.sentiment.scores import SENTIMENT_LABELS, SentimentScore, score_from_probabilities
from warehouse.errors import ConfigError, ModelError, ModelNotFoundError

if TYPE_CHECKING:
    import torch

FINBERT_REPO_ID = "ProsusAI/finbert"
FINBERT_PATH_ENV = "MARKETLAKE_FINBERT_PATH"
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class FinBertOptions:
    """How a BERT classifier runs.

    Attributes:
        batch_size: texts per forward pass. Default 32.
        max_length: tokens per text; longer texts are truncated. Default 128.
        num_threads: torch intra-op threads, set once at load; ``None`` means
            ``min(4, os.cpu_count())``.
        pad_to_max_length: pad every batch to ``max_length`` instead of to its longest text
            (fixed shapes, for benchmarks). Default False.
    """

    batch_size: int = 32
    max_length: int = 128
    num_threads: int | None = None
    pad_to_max_length: bool = False

    def __post_init__(self) -> None:
        if self.batch_size <= 0 or self.max_length < 2:
            raise ConfigError(
                f"FinBertOptions needs batch_size > 0 and max_length >= 2, got "
                f"batch_size={self.batch_size}, max_length={self.max_length}"
            )
        if self.num_threads is not None and self.num_threads <= 0:
            raise ConfigError(f"FinBertOptions.num_threads must be > 0, got {self.num_threads}")


@dataclass(frozen=True)
class FinBertLocation:
    """Where a FinBERT model was found, and the version it is.

    Attributes:
        directory: the folder with ``config.json``, the weights and the tokenizer files.
        version: the Hub commit of a cache snapshot, else a fingerprint of the folder.
        source: ``"directory"`` or ``"hf-cache"``.
    """

    directory: Path
    version: str
    source: str

    @property
    def model_name(self) -> str:
        """The name stored beside each score, e.g. ``finbert:ProsusAI/finbert@<commit>``."""
        if self.source == "hf-cache":
            return f"finbert:{FINBERT_REPO_ID}@{self.version}"
        return f"finbert:{self.directory}@{self.version}"


def hub_cache_dir() -> Path:
    """Return the Hugging Face hub cache folder, resolved as ``huggingface_hub`` does."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(cache_home) / "huggingface" / "hub"


def _complete(directory: Path) -> bool:
    return (directory / "config.json").is_file() and any(
        (directory / name).is_file() for name in _WEIGHT_FILES
    )


def _fingerprint(directory: Path) -> str:
    """A short hash of the config and the weight files' names and sizes."""
    digest = hashlib.sha256((directory / "config.json").read_bytes())
    for name in _WEIGHT_FILES:
        weights = directory / name
        if weights.is_file():
            digest.update(f"{name}:{weights.stat().st_size}".encode())
    return digest.hexdigest()[:12]


def _cached_snapshot(repo_id: str, cache: Path) -> Path | None:
    repo_dir = cache / f"models--{repo_id.replace('/', '--')}"
    ref = repo_dir / "refs" / "main"
    if ref.is_file():
        snapshot = repo_dir / "snapshots" / ref.read_text(encoding="utf-8").strip()
        if _complete(snapshot):
            return snapshot
    snapshots = sorted((repo_dir / "snapshots").glob("*"), key=lambda p: p.stat().st_mtime)
    return next((p for p in reversed(snapshots) if _complete(p)), None)


def locate_finbert(path: str | Path | None = None) -> FinBertLocation:
    """Find FinBERT on this machine without touching the network.

    Args:
        path: a model folder; ``None`` means ``$MARKETLAKE_FINBERT_PATH``, and when that is
            unset, the ``ProsusAI/finbert`` snapshot in the Hugging Face cache.

    Returns:
        The :class:`FinBertLocation`.

    Raises:
        ModelNotFoundError: if no complete model (``config.json`` plus weights) is there; the
            message says where it looked and how to provide one.
    """
    chosen = path if path is not None else os.environ.get(FINBERT_PATH_ENV) or None
    if chosen is not None:
        directory = Path(chosen).expanduser().resolve()
        if not _complete(directory):
            origin = "the path given" if path is not None else f"${FINBERT_PATH_ENV}"
            raise ModelNotFoundError(
                f"no FinBERT model in {directory} ({origin}): the folder needs config.json, "
                f"{' or '.join(_WEIGHT_FILES)} and the tokenizer files. Save one there with "
                f"`hf download {FINBERT_REPO_ID} --local-dir {directory}` on a machine with "
                f"internet, or use the 'lexicon' sentiment model."
            )
        return FinBertLocation(directory, _fingerprint(directory), "directory")
    cache = hub_cache_dir()
    snapshot = _cached_snapshot(FINBERT_REPO_ID, cache)
    if snapshot is None:
        raise ModelNotFoundError(
            f"{FINBERT_REPO_ID} is not available offline: ${FINBERT_PATH_ENV} is unset and the "
            f"Hugging Face cache {cache} has no complete snapshot of it. Set "
            f"{FINBERT_PATH_ENV} to a folder holding the model (config.json, weights, vocab), "
            f"or download it into the cache under HF_HOME with `hf download {FINBERT_REPO_ID}` "
            f"on a machine with internet; or use the 'lexicon' sentiment model."
        )
    return FinBertLocation(snapshot, snapshot.name, "hf-cache")


class TransformerSentimentModel:
    """A BERT-style three-class sentiment classifier (FinBERT or any compatible one).

    Args:
        model: a ``transformers`` sequence-classification model with three labels.
        tokenizer: its tokenizer.
        name: the model name stored beside each score.
        options: batching and truncation; ``None`` means :class:`FinBertOptions` defaults.

    Raises:
        ModelError: if the model's ``config.id2label`` does not name positive, negative and
            neutral.
    """

    def __init__(
        self, model: Any, tokenizer: Any, *, name: str, options: FinBertOptions | None = None
    ) -> None:
        self.name = name
        self.options = options or FinBertOptions()
        self._model = model.eval()
        self._tokenizer = tokenizer
        id2label = {int(i): str(label).lower() for i, label in model.config.id2label.items()}
        if sorted(id2label.values()) != sorted(SENTIMENT_LABELS):
            raise ModelError(
                f"{name}: config.id2label {model.config.id2label} must name exactly the labels "
                f"{', '.join(SENTIMENT_LABELS)}"
            )
        self._labels = [id2label[i] for i in range(len(id2label))]

    def score(self, texts: Sequence[str]) -> list[SentimentScore]:
        """Score texts in batches of ``options.batch_size``, longest texts batched together.

        Args:
            texts: the texts; each is truncated to ``options.max_length`` tokens.

        Returns:
            One :class:`SentimentScore` per text, in order: score P(positive) - P(negative),
            the most probable label and its probability as confidence.
        """
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        results: list[SentimentScore | None] = [None] * len(texts)
        size = self.options.batch_size
        for start in range(0, len(order), size):
            batch = order[start : start + size]
            probabilities = self.probabilities([texts[i] for i in batch])
            for i, row in zip(batch, probabilities.tolist(), strict=True):
                results[i] = score_from_probabilities(dict(zip(self._labels, row, strict=True)))
        return [result for result in results if result is not None]

    def probabilities(self, texts: Sequence[str]) -> torch.Tensor:
        """Return the softmax class probabilities of one batch, columns in id2label order."""
        import torch

        encoded = self._tokenizer(
            list(texts),
            padding="max_length" if self.options.pad_to_max_length else True,
            truncation=True,
            max_length=self.options.max_length,
            return_tensors="pt",
        )
        with torch.inference_mode():
            logits = self._model(**encoded).logits
        return torch.softmax(logits.float(), dim=-1)


def _prepare_offline_torch(options: FinBertOptions) -> None:
    """Set ``HF_HUB_OFFLINE=1`` when unset and torch's thread count, before transformers loads."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    threads = options.num_threads or min(4, os.cpu_count() or 1)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def load_finbert(
    path: str | Path | None = None, *, options: FinBertOptions | None = None
) -> TransformerSentimentModel:
    """Load FinBERT (or a compatible classifier folder) offline.

    Args:
        path: a model folder; ``None`` means ``$MARKETLAKE_FINBERT_PATH``, else the Hugging
            Face cache (see :func:`locate_finbert`).
        options: batching, truncation and threads; ``None`` means :class:`FinBertOptions`.

    Returns:
        The model, named ``finbert:ProsusAI/finbert@<commit>`` when it came from the cache and
        ``finbert:<folder>@<fingerprint>`` when it came from a folder.

    Raises:
        ModelNotFoundError: if no model is found (raised before torch is imported).
        ModelError: if the folder holds something transformers cannot load as a classifier.
    """
    location = locate_finbert(path)
    options = options or FinBertOptions()
    _prepare_offline_torch(options)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(location.directory, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(
            location.directory, local_files_only=True
        )
    except (OSError, ValueError, KeyError) as error:
        raise ModelError(
            f"cannot load a sequence classifier from {location.directory}: {error}"
        ) from error
    return TransformerSentimentModel(model, tokenizer, name=location.model_name, options=options)


def generated_vocabulary(size: int = 30522) -> dict[str, int]:
    """A WordPiece vocabulary of BERT's special tokens, characters and filler tokens.

    Args:
        size: total number of tokens; default 30522, BERT-base's.

    Returns:
        Token -> id; words split into single characters, so any text tokenises.
    """
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    characters = [chr(code) for code in range(33, 127) if not chr(code).isupper()]
    tokens += characters + [f"##{ch}" for ch in characters]
    tokens += [f"[unused{i}]" for i in range(max(0, size - len(tokens)))]
    return {token: i for i, token in enumerate(tokens)}


def random_bert_base_model(
    *,
    seed: int = 0,
    options: FinBertOptions | None = None,
    hidden_size: int = 768,
    num_layers: int = 12,
    num_heads: int = 12,
) -> TransformerSentimentModel:
    """Build a BERT-base-sized classifier with random weights and a generated tokenizer.

    For throughput benchmarks where FinBERT's weights are absent: same shapes and cost as
    FinBERT (110 M parameters), meaningless outputs. Nothing is read from or written to disk.

    Args:
        seed: torch seed for the weights; default 0.
        options: batching; ``None`` means ``FinBertOptions(max_length=64,
            pad_to_max_length=True)``, i.e. every text is exactly 64 tokens.
        hidden_size: default 768 (BERT-base).
        num_layers: default 12.
        num_heads: default 12.

    Returns:
        The model, named ``random-bert:<layers>x<hidden>@seed<seed>``.
    """
    options = options or FinBertOptions(max_length=64, pad_to_max_length=True)
    _prepare_offline_torch(options)
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    vocabulary = generated_vocabulary()
    config = BertConfig(
        vocab_size=len(vocabulary),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=4 * hidden_size,
        max_position_embeddings=512,
        id2label=dict(enumerate(SENTIMENT_LABELS)),
        label2id={label: i for i, label in enumerate(SENTIMENT_LABELS)},
    )
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)
    tokenizer = BertTokenizer(vocab=vocabulary)
    name = f"random-bert:{num_layers}x{hidden_size}@seed{seed}"
    return TransformerSentimentModel(model, tokenizer, name=name, options=options)
