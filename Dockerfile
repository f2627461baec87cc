FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    FEEDBOT_DB=/data/feedbot.json

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
RUN pip install . && useradd --create-home --uid 10001 feedbot \
    && mkdir -p /data && chown feedbot:feedbot /data

USER feedbot
VOLUME ["/data"]
CMD ["feedbot", "run"]
