# Evidence collector: `docker build -t evidence-collector .`
# Runs as a non-root user with a read-only root filesystem; the only writable path is the volume
# /var/lib/evidence (the SQLite file, when SQLite is used). Kubernetes probes replace HEALTHCHECK.
# The control mappings ship inside the package; set `mappings:` (or EVIDENCE_COLLECTOR_MAPPINGS) only for your own.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY collector ./collector
COPY connectors ./connectors
COPY mappings ./mappings
RUN /opt/venv/bin/pip install --no-cache-dir ".[all]" \
    && /opt/venv/bin/python -m compileall -q /opt/venv/lib

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="evidence-collector" \
      org.opencontainers.image.description="Continuous-compliance evidence collector for AI/ML systems" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    EVIDENCE_COLLECTOR_CONFIG=/etc/evidence-collector/config.yaml
RUN groupadd --system --gid 10001 evidence \
    && useradd --system --uid 10001 --gid evidence --home-dir /var/lib/evidence --no-create-home \
       --shell /usr/sbin/nologin evidence \
    && mkdir -p /var/lib/evidence /etc/evidence-collector \
    && chown evidence:evidence /var/lib/evidence
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /var/lib/evidence
VOLUME ["/var/lib/evidence"]
EXPOSE 9464
ENTRYPOINT ["evidence-collector"]
CMD ["run"]
