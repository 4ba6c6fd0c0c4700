"""One settings object for the whole product (env prefix ``SNAPSHOP_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything configurable; every file the product writes lives under ``data_dir``."""

    model_config = SettingsConfigDict(env_prefix="SNAPSHOP_", extra="ignore")

    data_dir: Path = Field(
        default=Path("data"), description="Where the store, models and logs live."
    )
    model: Path | None = Field(
        default=None, description="Model bundle directory; default: <data-dir>/models/default."
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="ONNX Runtime provider: auto takes CUDA when it is usable."
    )
    threads: int | None = Field(default=None, description="ONNX Runtime intra-op threads.")
    batch_size: int = Field(default=32, ge=1, le=1024, description="Images per inference batch.")
    rrf_k: int = Field(default=60, ge=1, description="k of reciprocal-rank fusion.")
    max_k: int = Field(default=100, ge=1, description="Largest k a search may ask for.")
    max_upload_mb: float = Field(default=10.0, gt=0, description="Largest query image accepted.")
    host: str = "127.0.0.1"
    port: int = 8000

    @property
    def store_dir(self) -> Path:
        return self.data_dir / "qdrant"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def model_dir(self) -> Path:
        return self.model if self.model is not None else self.models_dir / "default"
