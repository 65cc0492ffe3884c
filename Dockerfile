# The skype-etl code location: a Dagster gRPC server, as the official Helm chart's user
# deployments and Dagster's Docker and Kubernetes run launchers start it. Runs launched from
# this image execute the same package. See docs/deployment.md.
#
#   docker build -t skype-etl .
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ETL_HOME=/var/lib/skype-etl \
    DAGSTER_HOME=/var/lib/skype-etl/dagster

WORKDIR /opt/skype-etl
COPY pyproject.toml README.md workspace.yaml ./
COPY etl_assets ./etl_assets
RUN python -m pip install --no-cache-dir .

# Not root: the artifact store and temporary files belong to this user alone.
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/skype-etl etl
USER etl
EXPOSE 4000
CMD ["dagster", "api", "grpc", "--host", "0.0.0.0", "--port", "4000", "--module-name", "etl_assets.definitions"]
