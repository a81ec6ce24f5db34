// A Java Kafka application using Microsoft's Avro serializer for Azure Schema Registry as its documentation
// shows: KafkaAvroSerializer / KafkaAvroDeserializer configured through producer and consumer properties.
// Driven by tests/test_java_interop.py; one command per run.
//
//   schema-text --schema FILE
//       prints the text the serializer looks the schema up by: Schema.toString() of the parsed file
//   produce --bootstrap H:P --topic T --registry H:P --group G --schema FILE --key-field F [--token X]
//       reads one record per stdin line (Avro JSON encoding), sends each keyed by field F, waits for each ack;
//       prints "SENT <partition> <offset>" per record
//   consume --bootstrap H:P --topic T --registry H:P --count N [--timeout-s S] [--token X]
//       reads every partition from the beginning until N records came; prints "RECORD <json>" per record,
//       json = {"partition", "offset", "key", "contentType", "value" (the record in Avro JSON encoding)}
//
// The registry is host:port with no scheme: the SDK keeps only the host of a URL (and so drops the port).
// TLS trust for the registry comes from -Djavax.net.ssl.trustStore; the credential is a static bearer token.

import com.azure.core.credential.AccessToken;
import com.azure.core.credential.TokenCredential;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.microsoft.azure.schemaregistry.kafka.avro.KafkaAvroDeserializer;
import com.microsoft.azure.schemaregistry.kafka.avro.KafkaAvroSerializer;
import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.time.OffsetDateTime;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.stream.Collectors;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;
import org.apache.avro.io.JsonEncoder;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import reactor.core.publisher.Mono;

public final class Interop {
    private static final ObjectMapper JSON = new ObjectMapper();

    public static void main(String[] args) throws Exception {
        if (args.length == 0) {
            throw new IllegalArgumentException("usage: Interop schema-text|produce|consume --option value ...");
        }
        Map<String, String> options = options(args);
        switch (args[0]) {
            case "schema-text" -> System.out.println(parse(options).toString());
            case "produce" -> produce(options);
            case "consume" -> consume(options);
            default -> throw new IllegalArgumentException("unknown command " + args[0]);
        }
    }

    private static void produce(Map<String, String> options) throws Exception {
        Schema schema = parse(options);
        String keyField = required(options, "key-field");
        Properties props = common(options);
        props.put("key.serializer", StringSerializer.class.getName());
        props.put("value.serializer", KafkaAvroSerializer.class.getName());
        props.put("schema.group", required(options, "group"));
        props.put("auto.register.schemas", Boolean.FALSE); // a Boolean: the serializer casts it
        props.put("acks", "all");
        props.put("max.block.ms", 30000);
        props.put("delivery.timeout.ms", 30000);
        GenericDatumReader<GenericRecord> reader = new GenericDatumReader<>(schema);
        BufferedReader stdin = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        try (KafkaProducer<String, GenericRecord> producer = new KafkaProducer<>(props)) {
            String line;
            while ((line = stdin.readLine()) != null) {
                if (line.isBlank()) {
                    continue;
                }
                GenericRecord record = reader.read(null, DecoderFactory.get().jsonDecoder(schema, line));
                String topic = required(options, "topic");
                ProducerRecord<String, GenericRecord> send =
                        new ProducerRecord<>(topic, String.valueOf(record.get(keyField)), record);
                RecordMetadata acked = producer.send(send).get();
                System.out.println("SENT " + acked.partition() + " " + acked.offset());
            }
        }
    }

    private static void consume(Map<String, String> options) throws Exception {
        String topic = required(options, "topic");
        int count = Integer.parseInt(required(options, "count"));
        Duration timeout = Duration.ofSeconds(Long.parseLong(options.getOrDefault("timeout-s", "60")));
        Properties props = common(options);
        props.put("key.deserializer", StringDeserializer.class.getName());
        props.put("value.deserializer", KafkaAvroDeserializer.class.getName());
        props.put("enable.auto.commit", "false");
        try (KafkaConsumer<String, GenericRecord> consumer = new KafkaConsumer<>(props)) {
            List<TopicPartition> partitions = consumer.partitionsFor(topic, timeout).stream()
                    .map(info -> new TopicPartition(topic, info.partition()))
                    .collect(Collectors.toList());
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            Instant deadline = Instant.now().plus(timeout);
            int seen = 0;
            while (seen < count && Instant.now().isBefore(deadline)) {
                for (ConsumerRecord<String, GenericRecord> record : consumer.poll(Duration.ofMillis(500))) {
                    System.out.println("RECORD " + JSON.writeValueAsString(describe(record)));
                    seen++;
                }
            }
            if (seen < count) {
                throw new IllegalStateException("read " + seen + " of " + count + " records within " + timeout);
            }
        }
    }

    private static ObjectNode describe(ConsumerRecord<String, GenericRecord> record) throws Exception {
        ObjectNode out = JSON.createObjectNode();
        out.put("partition", record.partition());
        out.put("offset", record.offset());
        out.put("key", record.key());
        Header contentType = record.headers().lastHeader("content-type");
        out.put("contentType", contentType == null ? null : new String(contentType.value(), StandardCharsets.UTF_8));
        GenericRecord value = record.value();
        ByteArrayOutputStream buffer = new ByteArrayOutputStream();
        JsonEncoder encoder = EncoderFactory.get().jsonEncoder(value.getSchema(), buffer);
        new GenericDatumWriter<GenericRecord>(value.getSchema()).write(value, encoder);
        encoder.flush();
        out.set("value", JSON.readTree(buffer.toByteArray()));
        return out;
    }

    private static Properties common(Map<String, String> options) {
        Properties props = new Properties();
        props.put("bootstrap.servers", required(options, "bootstrap"));
        props.put("client.id", "hubstream-java-interop");
        props.put("schema.registry.url", required(options, "registry"));
        props.put("schema.registry.credential", staticToken(options.getOrDefault("token", "hubstream-local")));
        return props;
    }

    private static TokenCredential staticToken(String token) {
        return request -> Mono.just(new AccessToken(token, OffsetDateTime.now().plusHours(1)));
    }

    private static Schema parse(Map<String, String> options) throws Exception {
        return new Schema.Parser().parse(Files.readString(Path.of(required(options, "schema"))));
    }

    private static Map<String, String> options(String[] args) {
        Map<String, String> options = new HashMap<>();
        for (int i = 1; i < args.length; i += 2) {
            if (!args[i].startsWith("--") || i + 1 >= args.length) {
                throw new IllegalArgumentException("expected --option value, got " + args[i]);
            }
            options.put(args[i].substring(2), args[i + 1]);
        }
        return options;
    }

    private static String required(Map<String, String> options, String name) {
        String value = options.get(name);
        if (value == null) {
            throw new IllegalArgumentException("--" + name + " is required");
        }
        return value;
    }
}
