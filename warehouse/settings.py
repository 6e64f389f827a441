"""Where marketlake keeps its state and which services it talks to, read from the environment once.

Every setting has an embedded default under the state folder (``.marketlake/`` in the working
directory, moved by ``MARKETLAKE_HOME``), so a fresh machine needs no configuration at all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from warehouse.errors import ConfigError

S3_OPTION_VARIABLES = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_ALLOW_HTTP",
)


@dataclass(frozen=True)
class SourceEndpoints:
    """Roots of the remote APIs (overridable to point at a mirror or a recorded-response server).

    Attributes:
        binance_url: ``MARKETLAKE_BINANCE_URL``, default ``https://api.binance.com``.
        coingecko_url: ``MARKETLAKE_COINGECKO_URL``, default ``https://api.coingecko.com/api/v3``.
        coingecko_api_key: ``COINGECKO_API_KEY`` (a demo key); ``None``: anonymous.
        alternative_me_url: ``MARKETLAKE_ALTERNATIVE_ME_URL``, default
            ``https://api.alternative.me``.
    """

    binance_url: str = "https://api.binance.com"
    coingecko_url: str = "https://api.coingecko.com/api/v3"
    coingecko_api_key: str | None = None
    alternative_me_url: str = "https://api.alternative.me"


@dataclass(frozen=True)
class Settings:
    """The resolved configuration of one marketlake process.

    Attributes:
        home: the local state folder (``MARKETLAKE_HOME``, default ``./.marketlake``).
        lake_uri: root of the Delta lake (``MARKETLAKE_LAKE_URI``, default ``<home>/lake``);
            a local path or ``s3://bucket/prefix``.
        kafka_bootstrap: ``MARKETLAKE_KAFKA_BOOTSTRAP``; ``None`` means the embedded broker.
        mlflow_tracking_uri: ``MLFLOW_TRACKING_URI``, default sqlite under the home.
        storage_options: Delta storage options for an ``s3://`` lake, from the AWS_* variables.
        sources: the remote API roots (see :class:`SourceEndpoints`).
        api_token: ``MARKETLAKE_API_TOKEN``, the bearer token every HTTP route of the service
            except the health probes and ``/metrics`` requires; ``None`` (default, unset or
            empty): the service is open. Left out of ``repr``.
        sentiment_model: ``MARKETLAKE_SENTIMENT_MODEL``, the model ``/sentiment`` of the service
            uses: ``auto`` (default: FinBERT when its weights are on this machine, else the
            offline lexicon), ``finbert`` or ``lexicon``.
    """

    home: Path
    lake_uri: str
    kafka_bootstrap: str | None
    mlflow_tracking_uri: str
    storage_options: dict[str, str] = field(default_factory=dict)
    sources: SourceEndpoints = field(default_factory=SourceEndpoints)
    api_token: str | None = field(default=None, repr=False)
    sentiment_model: str = "auto"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.home / "mlartifacts"

    @property
    def broker_dir(self) -> Path:
        return self.home / "broker"

    def table_uri(self, table: str) -> str:
        """The URI of ``table`` (e.g. ``"bronze/candles"``) inside the lake."""
        return f"{self.lake_uri.rstrip('/')}/{table}"


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Read the settings from ``environ`` (default: the process environment)."""
    env = os.environ if environ is None else environ
    home = state_home(env)
    lake_uri = env.get("MARKETLAKE_LAKE_URI") or str(home / "lake")
    if "://" in lake_uri and not lake_uri.startswith(("s3://", "file://")):
        raise ConfigError(
            f"MARKETLAKE_LAKE_URI={lake_uri!r}: use a local path or s3://bucket/prefix"
        )
    storage_options: dict[str, str] = {}
    if lake_uri.startswith("s3://"):
        storage_options = {name: env[name] for name in S3_OPTION_VARIABLES if env.get(name)}
    mlflow_uri = env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}"
    defaults = SourceEndpoints()
    sources = SourceEndpoints(
        binance_url=env.get("MARKETLAKE_BINANCE_URL") or defaults.binance_url,
        coingecko_url=env.get("MARKETLAKE_COINGECKO_URL") or defaults.coingecko_url,
        coingecko_api_key=env.get("COINGECKO_API_KEY") or None,
        alternative_me_url=env.get("MARKETLAKE_ALTERNATIVE_ME_URL") or defaults.alternative_me_url,
    )
    return Settings(
        home=home,
        lake_uri=lake_uri,
        kafka_bootstrap=env.get("MARKETLAKE_KAFKA_BOOTSTRAP") or None,
        mlflow_tracking_uri=mlflow_uri,
        storage_options=storage_options,
        sources=sources,
        api_token=(env.get("MARKETLAKE_API_TOKEN") or "").strip() or None,
        sentiment_model=(env.get("MARKETLAKE_SENTIMENT_MODEL") or "auto").strip().lower(),
    )


def state_home(environ: Mapping[str, str] | None = None) -> Path:
    """The state folder: ``MARKETLAKE_HOME``, default ``./.marketlake`` (absolute)."""
    env = os.environ if environ is None else environ
    return Path(env.get("MARKETLAKE_HOME") or ".marketlake").resolve()


def contain_tools() -> None:
    """Point every tool's home and telemetry switch at the state folder, keeping what is set.

    Run when any marketlake package is imported, before the libraries that read these variables
    at import time (MLflow writes an installation id under ``~/.config`` unless its telemetry is
    off), so a notebook or a script that imports marketlake writes nothing into ``$HOME``.
    Creates no folder.
    """
    for name, value in tool_home_environment(state_home()).items():
        os.environ.setdefault(name, value)


def tool_home_environment(home: Path) -> dict[str, str]:
    """The variables that keep every tool's home folder and telemetry inside ``home``."""
    return {
        "DAGSTER_HOME": str(home / "dagster"),
        "BENTOML_HOME": str(home / "bentoml"),
        "HF_HOME": str(home / "huggingface"),
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "MPLCONFIGDIR": str(home / "matplotlib"),
        "IPYTHONDIR": str(home / "ipython"),
        "JUPYTER_CONFIG_DIR": str(home / "jupyter"),
        "JUPYTER_DATA_DIR": str(home / "jupyter" / "data"),
        "TORCHINDUCTOR_CACHE_DIR": str(home / "torchinductor"),
        "DO_NOT_TRACK": "true",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "BENTOML_DO_NOT_TRACK": "True",
        "DAGSTER_DISABLE_TELEMETRY": "true",
        "TOKENIZERS_PARALLELISM": "false",
    }


def apply_tool_homes(settings: Settings) -> None:
    """Set the tool home variables for this process and its children, keeping any already set."""
    settings.home.mkdir(parents=True, exist_ok=True)
    for name, value in tool_home_environment(settings.home).items():
        os.environ.setdefault(name, value)
