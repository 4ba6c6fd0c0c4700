# syntax=docker/dockerfile:1
# snapshop's serving images: the API and the `snapshop` CLI (ingest, search, eval) on ONNX
# Runtime. No torch: model export and training run elsewhere (`pip install .[train]`), and the
# bundle they write is mounted into the container (see docker-compose.yml).
#
#   docker build --target cpu -t snapshop:cpu .   python 3.11 slim + onnxruntime (the default)
#   docker build --target gpu -t snapshop:gpu .   CUDA 13 + cuDNN 9 runtime + onnxruntime-gpu
#
# Both run as the unprivileged user `snapshop` (uid 10001), keep everything they write under
# /data (a volume), and check themselves with /healthz.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# onnxruntime-gpu on PyPI (>= 1.26) is built for CUDA 13 and cuDNN 9; the host needs an NVIDIA
# driver of the R580 series or newer and the NVIDIA container toolkit.
ARG CUDA_IMAGE=nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04

# ---- CPU: build the virtual environment ---------------------------------------------------
FROM ${PYTHON_IMAGE} AS build-cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app app
COPY ingestion ingestion
COPY reranker reranker
# On Linux x86_64 pyproject.toml picks onnxruntime-gpu (its CPU provider works without CUDA);
# this image swaps in the plain CPU build: a third of the size, and no CUDA libraries sought.
RUN python -m venv /opt/snapshop \
 && /opt/snapshop/bin/pip install . \
 && /opt/snapshop/bin/pip uninstall --yes onnxruntime-gpu \
 && /opt/snapshop/bin/pip install "onnxruntime>=1.20"

# ---- GPU: CUDA runtime base with Python, and its virtual environment -----------------------
FROM ${CUDA_IMAGE} AS gpu-base
# Ubuntu 24.04's Python (3.12); the project needs 3.11 or newer.
RUN apt-get update \
 && apt-get install --yes --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*

FROM gpu-base AS build-gpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app app
COPY ingestion ingestion
COPY reranker reranker
# x86_64: pyproject.toml installs onnxruntime-gpu (CUDA and cuDNN come from the base image).
RUN python3 -m venv /opt/snapshop \
 && /opt/snapshop/bin/pip install . \
 && /opt/snapshop/bin/python -c "import onnxruntime as ort; assert 'CUDAExecutionProvider' in ort.get_available_providers(), ort.get_available_providers()"

FROM gpu-base AS gpu
ENV PATH=/opt/snapshop/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SNAPSHOP_DATA_DIR=/data \
    SNAPSHOP_FRONTEND_DIR=/srv/frontend \
    SNAPSHOP_HOST=0.0.0.0 \
    SNAPSHOP_PORT=8000 \
    SNAPSHOP_LOG_FORMAT=json \
    SNAPSHOP_DEVICE=cuda
RUN groupadd --system --gid 10001 snapshop \
 && useradd --system --uid 10001 --gid snapshop --home-dir /srv --shell /usr/sbin/nologin snapshop \
 && mkdir -p /data \
 && chown snapshop:snapshop /data
COPY --from=build-gpu /opt/snapshop /opt/snapshop
COPY frontend /srv/frontend
WORKDIR /srv
USER snapshop:snapshop
EXPOSE 8000
VOLUME ["/data"]
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SNAPSHOP_PORT', '8000'), timeout=4)"]
CMD ["snapshop", "serve"]

# ---- CPU: the runtime image (last: what a plain `docker build .` gives) ---------------------
FROM ${PYTHON_IMAGE} AS cpu
ENV PATH=/opt/snapshop/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SNAPSHOP_DATA_DIR=/data \
    SNAPSHOP_FRONTEND_DIR=/srv/frontend \
    SNAPSHOP_HOST=0.0.0.0 \
    SNAPSHOP_PORT=8000 \
    SNAPSHOP_LOG_FORMAT=json \
    SNAPSHOP_DEVICE=cpu
RUN groupadd --system --gid 10001 snapshop \
 && useradd --system --uid 10001 --gid snapshop --home-dir /srv --shell /usr/sbin/nologin snapshop \
 && mkdir -p /data \
 && chown snapshop:snapshop /data
COPY --from=build-cpu /opt/snapshop /opt/snapshop
COPY frontend /srv/frontend
WORKDIR /srv
USER snapshop:snapshop
EXPOSE 8000
VOLUME ["/data"]
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SNAPSHOP_PORT', '8000'), timeout=4)"]
CMD ["snapshop", "serve"]
