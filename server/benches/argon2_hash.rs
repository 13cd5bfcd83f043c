//! argon2id hashes per second with the OWASP parameters (m=19456 KiB, t=2, p=1): the raw
//! argon2 crate on one thread (allocating its memory each time, and reusing one buffer), then
//! through `PasswordHasher` (blocking pool, bounded concurrency) with 100 verify calls
//! launched at once. Wall-clock times on whatever else the machine is doing: compare rows of
//! one run.
//!
//!     cargo bench --bench argon2_hash

use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Block, Params, Version};
use portal::auth::password::PasswordHasher;

const RAW_N: usize = 50;
const VERIFY_N: usize = 100;

fn owasp() -> Argon2<'static> {
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(19_456, 2, 1, Some(32)).expect("OWASP parameters"),
    )
}

struct Row {
    path: String,
    n: usize,
    elapsed: Duration,
    latency: Option<(Duration, Duration)>,
}

fn raw(reuse_memory: bool) -> Row {
    let argon2 = owasp();
    let salt = *b"0123456789abcdef";
    let mut out = [0u8; 32];
    let mut blocks = vec![Block::default(); argon2.params().block_count()];
    let start = Instant::now();
    for i in 0..RAW_N {
        let password = format!("password {i}");
        if reuse_memory {
            argon2
                .hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, &mut blocks)
                .expect("hash");
        } else {
            argon2
                .hash_password_into(password.as_bytes(), &salt, &mut out)
                .expect("hash");
        }
    }
    Row {
        path: format!(
            "raw argon2, 1 thread, {}",
            if reuse_memory {
                "memory reused"
            } else {
                "memory allocated"
            }
        ),
        n: RAW_N,
        elapsed: start.elapsed(),
        latency: None,
    }
}

async fn through_hasher(concurrency: u32) -> anyhow::Result<Row> {
    let hasher = PasswordHasher::with_params(19_456, 2, 1, concurrency, VERIFY_N as u32)?;
    let stored = hasher.hash("correct horse battery staple").await?;
    let start = Instant::now();
    let tasks: Vec<_> = (0..VERIFY_N)
        .map(|i| {
            let (hasher, stored) = (hasher.clone(), stored.clone());
            tokio::spawn(async move {
                let password = if i % 2 == 0 {
                    "correct horse battery staple"
                } else {
                    "wrong"
                };
                let begun = Instant::now();
                let check = hasher.verify(password, Some(&stored)).await?;
                anyhow::ensure!(check.ok == (i % 2 == 0), "wrong answer for call {i}");
                Ok(begun.elapsed())
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(VERIFY_N);
    for task in tasks {
        latencies.push(task.await??);
    }
    let elapsed = start.elapsed();
    latencies.sort();
    let p50 = latencies[VERIFY_N / 2];
    let p99 = latencies[VERIFY_N * 99 / 100];
    Ok(Row {
        path: format!("PasswordHasher::verify, concurrency {concurrency}"),
        n: VERIFY_N,
        elapsed,
        latency: Some((p50, p99)),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("argon2id m=19456 KiB, t=2, p=1; {cpus} CPUs");
    // Warm up (page faults, CPU frequency).
    raw(true);

    let rows = vec![
        raw(false),
        raw(true),
        through_hasher(1).await?,
        through_hasher(2).await?,
    ];

    println!();
    println!(
        "| {:<46} | {:>4} | {:>8} | {:>8} | {:>9} | {:>9} |",
        "path", "N", "total s", "hashes/s", "p50 ms", "p99 ms"
    );
    println!(
        "| {:-<46} | {:->4} | {:->8} | {:->8} | {:->9} | {:->9} |",
        "", "", "", "", "", ""
    );
    for row in rows {
        let secs = row.elapsed.as_secs_f64();
        let (p50, p99) = match row.latency {
            Some((p50, p99)) => (
                format!("{:.1}", p50.as_secs_f64() * 1e3),
                format!("{:.1}", p99.as_secs_f64() * 1e3),
            ),
            None => ("-".into(), "-".into()),
        };
        println!(
            "| {:<46} | {:>4} | {:>8.2} | {:>8.1} | {:>9} | {:>9} |",
            row.path,
            row.n,
            secs,
            row.n as f64 / secs,
            p50,
            p99
        );
    }
    println!();
    println!("p50/p99: latency of one verify call while all {VERIFY_N} are in flight (queueing included).");
    Ok(())
}
