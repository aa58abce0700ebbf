# The candle-pipeline code location: a Dagster code server that the webserver and the daemon load,
# and in which runs execute (DefaultRunLauncher) or that the Kubernetes run launcher starts as a
# job per run. The same image serves the webserver and the daemon in docs/deploy/compose.yaml.
#
#   docker build -t candle-pipeline .
#
# Every setting comes from the environment at run time (docs/deploy.md); nothing secret is baked in.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/home \
    CANDLE_COMPUTE_LOG_DIR=/opt/dagster/compute_logs \
    CANDLE_STATE_DIR=/opt/dagster/state
WORKDIR /opt/candle-pipeline

# Dependencies first, pinned by constraints.txt, so code changes rebuild only the last layers.
# On Kubernetes the runs need the launcher's and the log store's packages in this image too:
#   --build-arg EXTRA_PACKAGES="dagster-k8s==0.29.27 dagster-aws==0.29.27"
ARG EXTRA_PACKAGES=""
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
    && pip install -r requirements.txt $EXTRA_PACKAGES -c constraints.txt

COPY README.md ./
COPY candle_pipeline ./candle_pipeline
RUN pip install --no-deps . \
    && useradd --create-home --uid 10001 --user-group candle \
    && mkdir -p "$DAGSTER_HOME" "$CANDLE_COMPUTE_LOG_DIR" "$CANDLE_STATE_DIR" \
    && chown candle:candle "$DAGSTER_HOME" "$CANDLE_COMPUTE_LOG_DIR" "$CANDLE_STATE_DIR"
COPY dagster.yaml "$DAGSTER_HOME"/dagster.yaml

USER candle
EXPOSE 4000
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s \
    CMD ["dagster", "api", "grpc-health-check", "-p", "4000"]
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "candle_pipeline.definitions"]
