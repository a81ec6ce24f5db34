# hubstream's services (registry emulator, producer API, consumer) for docker-compose.kafka.yml
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY hubstream ./hubstream
COPY kafka_producer ./kafka_producer
COPY kafka_consumer ./kafka_consumer
COPY schemas ./schemas
COPY delivery ./delivery
COPY devstack ./devstack
COPY hubstream_cli ./hubstream_cli
RUN pip install --no-cache-dir .
# a non-root user; the state and key directories exist owned by it, so named volumes mounted there start so
RUN useradd --uid 10001 --home-dir /app --no-create-home hubstream && mkdir -p /state /keys \
    && chown hubstream:hubstream /state /keys
USER 10001:10001
ENTRYPOINT ["hubstream"]
