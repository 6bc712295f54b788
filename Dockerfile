# runwise's MCP server over streamable HTTP, as a non-root user, reading the runs mounted at /runs.
#
#   docker build -t runwise .
#   docker run -d --name runwise -p 127.0.0.1:8000:8000 --read-only --tmpfs /tmp \
#     -v /srv/training/runs:/runs:ro -e RUNWISE_TOKEN="$(cat /etc/runwise/token)" runwise
#
# or with the token in a file (a Docker or Compose secret) instead of the environment:
#   ... -v /etc/runwise/token:/run/secrets/runwise_token:ro runwise \
#     runwise-mcp --http 0.0.0.0:8000 --root /runs --token-file /run/secrets/runwise_token
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RUNWISE_CACHE_DIR=/tmp/runwise-cache

WORKDIR /src
COPY pyproject.toml README.md ./
COPY runwise ./runwise
RUN pip install . && rm -rf /src

# a user of its own, with no home, shell or write access anywhere but /tmp
RUN useradd --system --no-create-home --shell /usr/sbin/nologin --uid 10001 runwise
USER runwise
WORKDIR /runs

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"
# SIGTERM: calls in progress answer, then the server exits (docker stop waits 10 s unless --time says more)
STOPSIGNAL SIGTERM
CMD ["runwise-mcp", "--http", "0.0.0.0:8000", "--root", "/runs"]
