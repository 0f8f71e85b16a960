# syntax=docker/dockerfile:1
# The dlq-operator image: `dlq-operator run` (the operator, the default command) and
# `dlq-operator worker` (retry workers, which the operator deploys from this same image).

ARG PYTHON_IMAGE=python:3.11-slim

# -- build: install the project and its dependencies into a virtualenv -----------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/dlq-operator
WORKDIR /src
# The dependencies first, from pyproject.toml alone: a code change leaves this layer as
# it is, so rebuilding after one takes seconds.
COPY pyproject.toml ./
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' > requirements.txt \
 && /opt/dlq-operator/bin/pip install -r requirements.txt
COPY README.md ./
COPY operator/ operator/
# A regular (not editable) install; pip compiles the bytecode here, once, because the
# running container's filesystem is read-only.
RUN /opt/dlq-operator/bin/pip install --no-deps . \
 && /opt/dlq-operator/bin/pip uninstall --yes pip setuptools

# -- runtime: the virtualenv only; no source tree, no pip cache, no compilers -----------
FROM ${PYTHON_IMAGE}
ARG PYTHON_IMAGE
# Given by the build (--build-arg VERSION=<dlq_operator.__version__> --build-arg REVISION=<commit>).
ARG VERSION=unknown
ARG REVISION=unknown
LABEL org.opencontainers.image.title="dlq-operator" \
      org.opencontainers.image.description="Kubernetes operator for Apache Kafka dead-letter queues: topics, retries with backoff, parking, alerts and replay." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"
ENV PATH=/opt/dlq-operator/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 dlq \
 && useradd --system --uid 10001 --gid dlq --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin dlq
COPY --from=build /opt/dlq-operator /opt/dlq-operator
# Numeric, so that runAsNonRoot can verify it without resolving a user name.
USER 10001:10001
# 8080: liveness (/healthz); 9090: Prometheus /metrics.
EXPOSE 8080 9090
ENTRYPOINT ["dlq-operator"]
CMD ["run"]
