# syntax=docker/dockerfile:1
# Incident Copilot: `incident-copilot serve` as an unprivileged user. compose.yaml also
# runs the demo backend and its traffic from this image (deploy/demo_backend.py).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# A compiler for any dependency without a wheel for this platform; it stays in this stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY ingestion ingestion
COPY agents agents
COPY receiver receiver
COPY templates templates
COPY alert_rules alert_rules
# Not editable: the templates and rule files ship inside the wheel, as the check proves.
RUN /opt/venv/bin/pip install . \
    && cd / && /opt/venv/bin/incident-copilot rules --check

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 copilot \
    && useradd --system --uid 10001 --gid copilot --home-dir /var/lib/incident-copilot \
       --shell /usr/sbin/nologin copilot \
    && install -d -o copilot -g copilot /var/lib/incident-copilot \
       /var/lib/incident-copilot/data /var/lib/incident-copilot/post-mortems
COPY --from=build /opt/venv /opt/venv
COPY --chmod=0755 deploy/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
COPY deploy/demo_backend.py /opt/demo/demo_backend.py
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8080 \
    SYSLOG_HOST=0.0.0.0 \
    SYSLOG_PORT=5140 \
    LOG_TIMEZONE=UTC \
    DATA_DIR=/var/lib/incident-copilot/data \
    POSTMORTEM_DIR=/var/lib/incident-copilot/post-mortems
WORKDIR /var/lib/incident-copilot
# Numeric, so that a runtime can tell it is not root without reading /etc/passwd.
USER 10001:10001
EXPOSE 8080/tcp 5140/udp 5140/tcp
# `GET /health` answers 503 when Redis does not: urlopen raises, the check fails.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8080'), timeout=4)"]
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["incident-copilot", "serve"]
