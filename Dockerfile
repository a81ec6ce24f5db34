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
ENTRYPOINT ["hubstream"]
