FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends iproute2 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /srv/virtnet
COPY pyproject.toml alembic.ini ./
COPY app ./app
COPY workers ./workers
COPY migrations ./migrations
RUN pip install --no-cache-dir .
ENTRYPOINT ["virtnet"]
CMD ["serve", "--listen", "0.0.0.0:8080"]
