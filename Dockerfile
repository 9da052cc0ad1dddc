# Rollbot's container image: a virtualenv built in one stage, copied into a slim runtime stage
# that runs as an unprivileged user. BASE_IMAGE must be Debian-like with python3 (3.11+),
# python3-venv and useradd; PIP_INSTALL_OPTIONS lets a build without PyPI install from wheels
# in the context, e.g. "--no-index --find-links=/src/wheels".
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ARG PIP_INSTALL_OPTIONS=""
WORKDIR /src
COPY . .
# hadolint ignore=SC2086
RUN python3 -m venv /opt/rollbot \
    && /opt/rollbot/bin/python -m pip install --no-cache-dir ${PIP_INSTALL_OPTIONS} /src

FROM ${BASE_IMAGE}
RUN useradd --no-log-init --uid 10001 --user-group --home-dir /var/lib/rollbot --create-home \
    --shell /usr/sbin/nologin rollbot
COPY --from=build /opt/rollbot /opt/rollbot
COPY rollbot.example.yml /etc/rollbot/rollbot.yml
ENV PATH=/opt/rollbot/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    ROLLBOT_CONFIG=/etc/rollbot/rollbot.yml \
    ROLLBOT_DB=/var/lib/rollbot/rollbot.db \
    ROLLBOT_PORT=3000
USER 10001:10001
WORKDIR /var/lib/rollbot
EXPOSE 3000
# urllib raises on anything but a 2xx answer, so the exit status follows /healthz
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['ROLLBOT_PORT'], timeout=4)"]
# exec form: the bot is PID 1 and gets SIGTERM itself, for its drain (ROLLBOT_DRAIN_SECONDS)
STOPSIGNAL SIGTERM
ENTRYPOINT ["rollbot"]
CMD ["serve"]
