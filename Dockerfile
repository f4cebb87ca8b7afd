FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    AIGW_DATABASE_URL=sqlite:////data/aigw.db

WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
COPY docs ./docs
RUN pip install -e . && useradd --system --uid 10001 --home /app aigw && mkdir /data && chown aigw /data

USER aigw
VOLUME ["/data"]
EXPOSE 8787
CMD ["aigw", "serve", "--host", "0.0.0.0", "--port", "8787"]
