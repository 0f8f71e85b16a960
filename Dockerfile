# syntax=docker/dockerfile:1
# The dlq-operator image: `dlq-operator run` (the operator, the default command) and
# `dlq-operator worker` (retry workers, which the operator deploys from this same image).
#
# The image's virtualenv comes in two layers: the dependencies (read from pyproject.toml
# alone, so a code change leaves that layer as it is), then the project itself. A one-line
# change rebuilds only the last few steps.

ARG PYTHON_IMAGE=python:3.11-slim

# -- deps: the project's dependencies, in a virtualenv without pip ----------------------
FROM ${PYTHON_IMAGE} AS deps
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# pip runs from a virtualenv of its own and installs into the image's (pip --python), so
# the image gets neither pip nor setuptools.
RUN python -m venv /opt/pip \
 && python -m venv --without-pip /opt/dlq-operator
WORKDIR /src
COPY pyproject.toml ./
# The operator needs the base dependencies (the publisher's) and the `operator` extra.
RUN python -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; print("\n".join(p["dependencies"] + p["optional-dependencies"]["operator"]))' > requirements.txt \
 && /opt/pip/bin/pip --python /opt/dlq-operator/bin/python install -r requirements.txt

# -- build: the project, installed into /staging (its files only) ---------------------
FROM deps AS build
# The build backend ([build-system].requires), so that building the project itself needs
# no download; it stays in this stage.
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]))' > build-requirements.txt \
 && /opt/pip/bin/pip --python /opt/dlq-operator/bin/python install -r build-requirements.txt
COPY README.md ./
COPY operator/ operator/
# A regular (not editable) install, under /staging so that the runtime stage copies the
# project's files and nothing else. The bytecode is compiled here, once, because the
# running container's filesystem is read-only; unchecked-hash .pyc files stay valid
# whatever the copied files' timestamps.
RUN /opt/pip/bin/pip --python /opt/dlq-operator/bin/python install \
      --no-deps --no-build-isolation --no-compile --root /staging --root-user-action=ignore . \
 && /opt/dlq-operator/bin/python -m compileall -q --invalidation-mode unchecked-hash \
      -s /staging -p / /staging/opt/dlq-operator

# -- runtime: the virtualenv only; no source tree, no pip, no compilers -----------------
FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 dlq \
 && useradd --system --uid 10001 --gid dlq --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin dlq
ENV PATH=/opt/dlq-operator/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Numeric, so that runAsNonRoot can verify it without resolving a user name.
USER 10001:10001
# 8080: liveness (/healthz); 9090: Prometheus /metrics.
EXPOSE 8080 9090
ENTRYPOINT ["dlq-operator"]
CMD ["run"]
# The two layers of the virtualenv: the dependencies, then the project (owned by root
# either way; USER applies to RUN and to the container, not to COPY).
COPY --from=deps /opt/dlq-operator /opt/dlq-operator
COPY --from=build /staging/ /
# Last, since the revision changes with every commit.
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
