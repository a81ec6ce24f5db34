from confluent_kafka import Consumer, Producer

from tests.fixtures.broker import LocalKafka, unique


def test_broker_round_trips_a_record(kafka_broker: LocalKafka) -> None:
    topic = kafka_broker.create_topic(partitions=1)
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap_servers})
    producer.produce(topic, b"hello", key=b"k", headers=[("content-type", b"avro/binary+x")])
    assert producer.flush(10) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_broker.bootstrap_servers,
            "group.id": unique("g"),
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
        }
    )
    consumer.subscribe([topic])
    try:
        message = None
        for _ in range(100):
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                break
        assert message is not None and message.value() == b"hello"
        assert message.headers() == [("content-type", b"avro/binary+x")]
    finally:
        consumer.close()
