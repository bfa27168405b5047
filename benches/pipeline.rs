//! Criterion benchmarks of the per-packet stages: decode, flow lookup/update, classification.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use exwatch::classify::{Classifier, Flow, FlowTable};
use exwatch::decode::{self, Decoded, L4};
use exwatch::flow::{EndReason, FlowKey, FlowPacket, Timeouts};
use exwatch::report::record;
use exwatch::signatures::Signatures;
use std::sync::Arc;

/// Frames of a classic pcap file (benchmarks read the shared capture directly).
fn frames(name: &str) -> Vec<Vec<u8>> {
    let path = format!("{}/../shared/pcaps/{name}", env!("CARGO_MANIFEST_DIR"));
    let b = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut off = 24;
    let mut v = Vec::new();
    while off + 16 <= b.len() {
        let caplen = u32::from_le_bytes(b[off + 8..off + 12].try_into().unwrap()) as usize;
        v.push(b[off + 16..off + 16 + caplen].to_vec());
        off += 16 + caplen;
    }
    v
}

fn packet_of(ip_src: u32, ip_dst: u32, sport: u16, dport: u16, flags: u8, ts: u64) -> FlowPacket {
    let mut ip = decode::IpPair {
        v6: false,
        src: [0; 16],
        dst: [0; 16],
    };
    ip.src[..4].copy_from_slice(&ip_src.to_be_bytes());
    ip.dst[..4].copy_from_slice(&ip_dst.to_be_bytes());
    let (key, from_lo) = FlowKey::new(&ip, sport, dport, 6, [0, 0]);
    FlowPacket {
        clock: ts,
        ts,
        hash: key.hash64(),
        key,
        from_lo,
        tcp_flags: flags,
        seq: 0,
        ack: 0,
        frames: 1,
        ip_bytes: 60,
        payload_len: 20,
        data_off: 0,
        data_len: 0,
        icmp: 0,
        macs: [[0; 6]; 2],
    }
}

fn bench_decode(c: &mut Criterion) {
    let pkts = frames("smtp.pcap");
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(pkts.len() as u64));
    g.bench_function("smtp.pcap frames to packets", |b| {
        b.iter(|| {
            let mut ports = 0u32;
            for f in &pkts {
                if let Ok(Decoded::Packet(p)) = decode::decode(1, black_box(f)) {
                    if let L4::Tcp { dport, .. } = p.l4 {
                        ports = ports.wrapping_add(u32::from(dport));
                    }
                }
            }
            ports
        })
    });
    g.finish();
}

fn bench_flow(c: &mut Criterion) {
    let sigs = Arc::new(Signatures::embedded());
    let classifier = Classifier::new(sigs);
    const FLOWS: u32 = 100_000;
    let pkts: Vec<FlowPacket> = (0..FLOWS)
        .map(|i| {
            packet_of(
                0x0a00_0000 + i,
                0x0a80_0001,
                40_000 + (i % 20_000) as u16,
                443,
                0x18,
                1_000,
            )
        })
        .collect();
    let mut table = FlowTable::new(2 * FLOWS as usize, Timeouts::default());
    let mut slots = Vec::new();
    for p in &pkts {
        let f = Flow::new(p, |proto, port| classifier.is_service_port(proto, port));
        slots.push(table.insert(f, p.ts));
    }
    let mut g = c.benchmark_group("flow");
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function("lookup+update+touch in 100k flows", |b| {
        b.iter(|| {
            let p = &pkts[i % pkts.len()];
            i = i.wrapping_add(7919);
            let s = table.find(&p.key, p.hash).expect("tracked");
            table.get_mut(s).update(p);
            table.touch(s, 2_000);
        })
    });
    g.bench_function("key and hash", |b| {
        let p = &pkts[0];
        b.iter(|| black_box(p.key).hash64())
    });
    g.finish();
}

fn bench_classify(c: &mut Criterion) {
    let classifier = Classifier::new(Arc::new(Signatures::embedded()));
    let p = packet_of(0x0a00_0001, 0x0a00_0002, 50_000, 587, 0x02, 1_000);
    let mut flow = Flow::new(&p, |proto, port| classifier.is_service_port(proto, port));
    flow.update(&p);
    let mut g = c.benchmark_group("classify");
    g.bench_function("port verdict", |b| {
        b.iter(|| classifier.verdict(black_box(&flow)))
    });
    g.bench_function("verdict + ECS record to NDJSON", |b| {
        b.iter_batched_ref(
            || Vec::with_capacity(1024),
            |out| record::write(&flow, EndReason::Idle, &classifier, Some(out)),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench_decode, bench_flow, bench_classify);
criterion_main!(benches);
