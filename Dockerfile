FROM python:3.11-slim

# a webhook (FEEDBOT_WEBHOOK_URL) listens on every interface: a proxy outside the container
# cannot reach the container's loopback
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    FEEDBOT_DB=/data/feedbot.json FEEDBOT_WEBHOOK_LISTEN=0.0.0.0:8443

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
RUN pip install . && useradd --create-home --uid 10001 feedbot \
    && mkdir -p /data && chown feedbot:feedbot /data

USER feedbot
VOLUME ["/data"]
EXPOSE 8443
CMD ["feedbot", "run"]
