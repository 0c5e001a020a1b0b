//! Nanoseconds per CONNECT: `parse_connect` ("ours") against rumqttc's
//! decoder ("rumqttc") on the same bytes.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-parser cargo bench --no-default-features --bench parse_connect
//! ```
//!
//! rumqttc decodes into owned `String`s and consumes its `BytesMut`, so each
//! of its iterations gets a fresh buffer, built outside the timed section.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use mqtt_core::packet::encode::{typical_v5_properties, ConnectBuilder};
use mqtt_core::packet::{parse_connect, ConnectFramer, Parsed, ProtocolLevel};
use rumqttc::mqttbytes::v4 as rv4;
use rumqttc::v5::mqttbytes::v5 as rv5;

const LIMIT: usize = 64 * 1024;

/// Builds rumqttc's buffer type (`bytes::BytesMut`) without naming it.
fn fresh<T: for<'x> From<&'x [u8]>>(bytes: &[u8]) -> T {
    T::from(bytes)
}

/// A small MQTT 3.1.1 CONNECT: ClientId, user name, password.
fn small_311() -> Vec<u8> {
    ConnectBuilder::new(ProtocolLevel::V311, b"sensor-000123")
        .username(b"device")
        .password(b"s3cr3t-t0k3n")
        .encode()
}

/// An MQTT 5 CONNECT with about 128 bytes of CONNECT properties.
fn v5_properties() -> Vec<u8> {
    let user: &[(&[u8], &[u8])] = &[
        (b"region", b"eu-west-1"),
        (b"firmware", b"2.14.3-rc1"),
        (b"model", b"thermostat-x200"),
        (b"tenant", b"acme-industrial"),
        (b"site", b"plant-7"),
    ];
    ConnectBuilder {
        properties: typical_v5_properties(user),
        ..ConnectBuilder::new(ProtocolLevel::V5, b"sensor-000123")
    }
    .username(b"device")
    .password(b"s3cr3t-t0k3n")
    .encode()
}

/// An MQTT 3.1.1 CONNECT with a 200-byte ClientId.
fn long_client_id() -> Vec<u8> {
    let id: Vec<u8> = (0..200u8).map(|i| b'a' + i % 26).collect();
    ConnectBuilder::new(ProtocolLevel::V311, &id).encode()
}

/// A 16 KiB MQTT 5 CONNECT, nearly all of it User Properties: text the
/// parser validates, so that parsing it costs in proportion to its size.
fn connect_16k() -> Vec<u8> {
    let names: Vec<String> = (0..160).map(|i| format!("label-{i:03}")).collect();
    let value = "v".repeat(87);
    let user: Vec<(&[u8], &[u8])> = names
        .iter()
        .map(|name| (name.as_bytes(), value.as_bytes()))
        .collect();
    let bytes = ConnectBuilder {
        properties: typical_v5_properties(&user),
        ..ConnectBuilder::new(ProtocolLevel::V5, b"sensor-000123")
    }
    .username(b"device")
    .password(b"s3cr3t-t0k3n")
    .encode();
    assert!(
        bytes.len() > 16_000 && bytes.len() <= 16 * 1024,
        "{}",
        bytes.len()
    );
    bytes
}

/// The same packet arriving whole, and in 100-byte reads the way nginx
/// hands them to the module: through `ConnectFramer`, and re-parsed from the
/// start on every read (what the module did before it framed packets).
fn bench_fragmented(c: &mut Criterion) {
    let bytes = connect_16k();
    let pieces: Vec<usize> = (100..bytes.len())
        .step_by(100)
        .chain([bytes.len()])
        .collect();
    let mut group = c.benchmark_group("connect_16k");
    group.throughput(Throughput::Elements(1));
    group.bench_function("whole", |b| {
        b.iter(|| {
            let mut framer = ConnectFramer::default();
            assert!(matches!(
                framer.parse(black_box(&bytes), LIMIT),
                Parsed::Connect(_)
            ));
        });
    });
    group.bench_function("framed_100_byte_reads", |b| {
        b.iter(|| {
            let mut framer = ConnectFramer::default();
            let mut last = Parsed::Incomplete { needed: None };
            for &end in &pieces {
                last = framer.parse(black_box(&bytes[..end]), LIMIT);
            }
            assert!(matches!(last, Parsed::Connect(_)));
        });
    });
    group.bench_function("reparsed_100_byte_reads", |b| {
        b.iter(|| {
            let mut last = Parsed::Incomplete { needed: None };
            for &end in &pieces {
                last = parse_connect(black_box(&bytes[..end]), LIMIT);
            }
            assert!(matches!(last, Parsed::Connect(_)));
        });
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    let cases = [
        ("connect_small_311", small_311()),
        ("connect_v5_properties", v5_properties()),
        ("connect_client_id_200", long_client_id()),
    ];
    for (name, bytes) in &cases {
        let Parsed::Connect(connect) = parse_connect(bytes, LIMIT) else {
            panic!("{name}: not a valid CONNECT");
        };
        let is_v5 = connect.level == ProtocolLevel::V5;
        if is_v5 {
            assert_eq!(connect.properties.len(), 128, "{name}: property bytes");
            assert!(matches!(
                rv5::Packet::read(&mut fresh(bytes), None),
                Ok(rv5::Packet::Connect(..))
            ));
        } else {
            assert!(matches!(
                rv4::Packet::read(&mut fresh(bytes), LIMIT),
                Ok(rv4::Packet::Connect(_))
            ));
        }

        let mut group = c.benchmark_group(*name);
        group.throughput(Throughput::Elements(1));
        group.bench_function("ours", |b| {
            b.iter(|| parse_connect(black_box(bytes), LIMIT));
        });
        if is_v5 {
            group.bench_function("rumqttc", |b| {
                b.iter_batched_ref(
                    || fresh(bytes),
                    |buf| rv5::Packet::read(black_box(buf), None),
                    BatchSize::SmallInput,
                );
            });
        } else {
            group.bench_function("rumqttc", |b| {
                b.iter_batched_ref(
                    || fresh(bytes),
                    |buf| rv4::Packet::read(black_box(buf), LIMIT),
                    BatchSize::SmallInput,
                );
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench, bench_fragmented
}
criterion_main!(benches);
