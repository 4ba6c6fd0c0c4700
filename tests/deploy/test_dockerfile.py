"""The Dockerfile without a container engine: a multi-stage build with ``cpu`` and ``gpu``
targets (the GPU one on NVIDIA's CUDA runtime image with onnxruntime-gpu), each running as a
non-root user with a healthcheck, copying only what the repository has."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.deploy.dockerfile import Stage, stages

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def built() -> dict[str, Stage]:
    return stages((ROOT / "Dockerfile").read_text())


def _chain(built: dict[str, Stage], name: str) -> list[Stage]:
    """The stage and the stages it is built FROM, down to an image."""
    chain = [built[name]]
    while chain[-1].base in built:
        chain.append(built[chain[-1].base])
    return chain


def test_cpu_and_gpu_targets_the_default_being_cpu(built: dict[str, Stage]) -> None:
    assert {"cpu", "gpu"} <= set(built)
    assert list(built)[-1] == "cpu"  # `docker build .` without --target
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", built["cpu"].base)
    image = _chain(built, "gpu")[-1].base
    assert re.fullmatch(r"nvidia/cuda:1[3-9]\.\d+\.\d+-cudnn-runtime-ubuntu\d+\.\d+", image)


@pytest.mark.parametrize("target", ["cpu", "gpu"])
def test_runtime_stages_run_unprivileged_and_check_their_health(
    built: dict[str, Stage], target: str
) -> None:
    stage = built[target]
    users = stage.values("USER")
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    names = [name for name, _ in stage.instructions]
    assert names.index("USER") < names.index("CMD")  # the server itself runs as that user
    (healthcheck,) = stage.values("HEALTHCHECK")
    assert "/healthz" in healthcheck and "NONE" not in healthcheck.upper().split()
    assert json.loads(stage.values("CMD")[-1]) == ["snapshop", "serve"]
    env = " ".join(stage.values("ENV"))
    assert "SNAPSHOP_DATA_DIR=/data" in env and "SNAPSHOP_HOST=0.0.0.0" in env
    # only the built virtual environment is carried over: no compiler or pip cache
    sources = [v.split()[0] for v in stage.values("COPY") if v.startswith("--from=")]
    assert len(sources) == 1 and sources[0].removeprefix("--from=").startswith("build-")


def test_the_cpu_image_has_the_cpu_runtime_and_the_gpu_image_the_gpu_one(
    built: dict[str, Stage],
) -> None:
    cpu_build = " ".join(built["build-cpu"].values("RUN"))
    assert "pip uninstall --yes onnxruntime-gpu" in cpu_build
    assert re.search(r"pip install \"?onnxruntime[>=\"]", cpu_build)
    gpu_build = " ".join(built["build-gpu"].values("RUN"))
    assert "onnxruntime-gpu" not in gpu_build  # kept as pyproject.toml installs it
    assert "CUDAExecutionProvider" in gpu_build  # and checked at build time
    assert "SNAPSHOP_DEVICE=cuda" in built["gpu"].values("ENV")[0]


def test_copies_name_only_what_the_build_context_has(built: dict[str, Stage]) -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for stage in built.values():
        for value in stage.values("COPY"):
            if value.startswith("--from="):
                source = value.split()[1]
                assert source.startswith("/") and value.split()[0][7:] in built, value
                continue
            *sources, _ = value.split()
            for source in sources:
                assert (ROOT / source).exists(), f"{stage.name}: COPY {source}: not in the repo"
                assert source.split("/")[0] not in ignored, f"{source} is in .dockerignore"
