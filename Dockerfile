# The candle-pipeline code location: a gRPC server that the Dagster webserver and daemon load.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DAGSTER_HOME=/opt/dagster/home
WORKDIR /opt/candle-pipeline

COPY pyproject.toml constraints.txt README.md ./
COPY candle_pipeline ./candle_pipeline
RUN pip install --no-cache-dir -c constraints.txt . \
    && useradd --create-home --uid 10001 candle \
    && mkdir -p "$DAGSTER_HOME" && chown candle "$DAGSTER_HOME"
COPY dagster.yaml workspace.yaml "$DAGSTER_HOME"/

USER candle
EXPOSE 4000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "candle_pipeline.definitions"]
