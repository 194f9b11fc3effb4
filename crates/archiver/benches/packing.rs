//! Batch packing throughput: events per second through `pack_batches` (a
//! slice in memory) and through `BatchPacker` (one event at a time, as the
//! replay feeds it), for typical log lines and for large ones.

use archiver::domain::batch::{BatchPacker, pack_batches};
use archiver::domain::event::LogEvent;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// `count` events a few ms apart with messages of about `message_bytes`
/// bytes (varied deterministically, some multi-line and non-ASCII).
fn events(count: usize, message_bytes: usize) -> Vec<LogEvent> {
    let start = 1_700_000_000_000i64;
    (0..count)
        .map(|i| {
            let len = message_bytes / 2 + (i * 7919) % message_bytes;
            let mut message = format!("{i:08} GET /orders/{} 200 ünï\n  at line two ", i % 977);
            message.extend(std::iter::repeat_n('x', len.saturating_sub(message.len())));
            LogEvent::new(start + (i as i64) * 3, message)
        })
        .collect()
}

fn packing(c: &mut Criterion) {
    let mut group = c.benchmark_group("packing");
    for (label, message_bytes) in [("200B", 200), ("4KiB", 4096)] {
        let input = events(100_000, message_bytes);
        group.throughput(Throughput::Elements(input.len() as u64));
        group.bench_with_input(BenchmarkId::new("pack_batches", label), &input, |b, input| {
            b.iter(|| pack_batches(input).map(|batches| batches.len()))
        });
        group.bench_with_input(BenchmarkId::new("BatchPacker", label), &input, |b, input| {
            b.iter_batched(
                || input.clone(),
                |input| {
                    let mut packer = BatchPacker::new();
                    let mut batches = 0usize;
                    for event in input {
                        if packer.push(event).ok().flatten().is_some() {
                            batches += 1;
                        }
                    }
                    batches + usize::from(packer.finish().is_some())
                },
                criterion::BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, packing);
criterion_main!(benches);
