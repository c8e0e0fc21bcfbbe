//! Dispatch ring micro-benchmark: the receive loop → worker hand-off. A producer thread fills
//! boxed jobs (a 1536-byte slot holding a 300-byte request, as `dispatch::Job`) taken from a
//! recycle ring and sends them on a bounded crossbeam channel (capacity 4096); the worker
//! thread receives them in batches of up to 64 (blocking `recv`, then `try_recv`), reads
//! each, and returns it on the recycle ring. One iteration is a batch of 64 jobs; the time
//! runs until every job of the run has come back to the producer.
//!
//! ```text
//! cargo bench -p twinlease-bench --bench dispatch -- --warm-up-time 1 --measurement-time 3
//! ```

#![expect(missing_docs, reason = "criterion_group! generates an undocumented fn")]

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use crossbeam_channel::{Receiver, Sender, TryRecvError, bounded};

const SLOT: usize = 1536;
const BATCH: usize = 64;
const RING: usize = 4096;
const REQUEST_LEN: usize = 300;

struct Job {
    len: usize,
    ifindex: u32,
    buf: [u8; SLOT],
}

fn worker(rx: &Receiver<Box<Job>>, recycle: &Sender<Box<Job>>) {
    let mut jobs: Vec<Box<Job>> = Vec::with_capacity(BATCH);
    let mut sum = 0u64;
    while let Ok(j) = rx.recv() {
        jobs.push(j);
        while jobs.len() < BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        for j in jobs.drain(..) {
            sum = sum.wrapping_add(u64::from(j.buf[j.len - 1]) + u64::from(j.ifindex));
            if recycle.send(j).is_err() {
                return;
            }
        }
    }
    black_box(sum);
}

fn run(iters: u64, packet: &[u8; REQUEST_LEN]) -> Duration {
    let (to, rx) = bounded::<Box<Job>>(RING);
    let (rtx, recycle) = bounded::<Box<Job>>(RING);
    for _ in 0..RING {
        rtx.send(Box::new(Job {
            len: 0,
            ifindex: 0,
            buf: [0u8; SLOT],
        }))
        .expect("ring has room");
    }
    thread::scope(|s| {
        s.spawn(move || worker(&rx, &rtx));
        let jobs = iters * BATCH as u64;
        let t = Instant::now();
        for i in 0..jobs {
            let mut job = recycle.recv().expect("worker alive");
            job.len = REQUEST_LEN;
            job.ifindex = i as u32;
            job.buf[..REQUEST_LEN].copy_from_slice(packet);
            to.send(job).expect("worker alive");
        }
        // Wait until the worker has returned every job.
        let mut back = Vec::with_capacity(RING);
        while back.len() < RING {
            back.push(recycle.recv().expect("worker alive"));
        }
        let elapsed = t.elapsed();
        drop(to);
        elapsed
    })
}

fn dispatch(c: &mut Criterion) {
    let mut packet = [0u8; REQUEST_LEN];
    for (i, b) in packet.iter_mut().enumerate() {
        *b = i as u8;
    }
    let mut g = c.benchmark_group("dispatch");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("ring_boxed_job_batch64", |b| {
        b.iter_custom(|n| run(n, &packet));
    });
    g.finish();
}

criterion_group!(benches, dispatch);
criterion_main!(benches);
