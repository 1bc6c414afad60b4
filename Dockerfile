# syntax=docker/dockerfile:1
# One image, two entrypoints:
#   docker run IMAGE train /etc/ptlab/spec.json   (trainer pods; the operator sets the command)
#   docker run IMAGE operator                       (the operator Deployment)
# Build: docker build --build-arg VARIANT=cpu|cuda -t ptlab:0.1.0 .
# (No image can be built in ptlab's CI machine; `hadolint Dockerfile` checks this file.)

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG VARIANT=cpu
ARG TORCH_VERSION=2.13.0
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/ptlab
ENV PATH=/opt/ptlab/bin:$PATH
# torch first, from the index matching the variant (CPU wheels are ~200 MB, CUDA ~2.5 GB).
RUN if [ "$VARIANT" = "cuda" ]; then \
        pip install "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cu128; \
    else \
        pip install "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu; \
    fi
COPY pyproject.toml setup.py README.md ./
COPY ptlab ptlab
COPY algorithms algorithms
COPY trainer_image trainer_image
COPY operator operator
# The same install command as the README's non-editable install: `pip install .`
# Versions are pinned in pyproject.toml (torch above), which hadolint cannot see.
# hadolint ignore=DL3013
RUN pip install . \
    && if [ "$VARIANT" = "cuda" ]; then pip install ".[vllm]"; fi

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="ptlab" \
      org.opencontainers.image.description="ptlab trainer and operator" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 ptlab \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/ptlab ptlab
COPY --from=build /opt/ptlab /opt/ptlab
ENV PATH=/opt/ptlab/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    PTLAB_CACHE=/home/ptlab/.cache/ptlab
USER 10001:10001
WORKDIR /work
EXPOSE 8080 9090
ENTRYPOINT ["ptlab"]
CMD ["operator"]
