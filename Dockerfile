# Serving image: onnxruntime + the embedded engine; no torch (export/training run elsewhere).
FROM python:3.11-slim
WORKDIR /srv
COPY pyproject.toml README.md ./
COPY app app
COPY ingestion ingestion
COPY reranker reranker
COPY frontend frontend
RUN pip install --no-cache-dir .
ENV SNAPSHOP_FRONTEND_DIR=/srv/frontend
EXPOSE 8000
CMD ["snapshop", "serve", "--host", "0.0.0.0"]
