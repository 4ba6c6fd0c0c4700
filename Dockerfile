# Serving image: onnxruntime + the embedded engine; no torch (export/training run elsewhere).
FROM python:3.11-slim
WORKDIR /srv
COPY pyproject.toml README.md ./
COPY app app
COPY ingestion ingestion
COPY reranker reranker
RUN pip install --no-cache-dir .
EXPOSE 8000
CMD ["snapshop", "serve", "--host", "0.0.0.0"]
