//! Leaks, fast version: the worker's resident memory stays flat over
//! thousands of sessions of every outcome (accepted, malformed, incomplete,
//! identity mismatch over mutual TLS). The heavy version (100,000 sessions,
//! and valgrind) is scripts/soak.sh.
//!
//! The bound is generous on purpose (allocator noise is not a leak): a leak
//! of even 1 KiB per session would exceed it several times over.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;

use support::client::connect_packet;
use support::malformed::cases;
use support::reliability::{device_connect, rss_kib, serious_lines, wait_workers, Gateway, Server};
use support::{pki, wait_until, RawClient, Version, DEADLINE};

const WARMUP: usize = 1_000;
/// 5,000 here; `SOAK_LEAK_SESSIONS` raises it for the heavy run.
fn sessions() -> usize {
    std::env::var("SOAK_LEAK_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000)
}
const THREADS: usize = 4;
/// Allowed RSS growth over the measured sessions, after the warm-up.
const BOUND_KIB: u64 = 2_048;

/// Session `i` of the mix: 70% accepted, 15% malformed, 10% incomplete
/// (EOF half-way), 5% ClientId/certificate mismatch over mutual TLS.
fn session(i: usize, plain: u16, tls: u16, invalid: &[Vec<u8>]) -> Result<(), String> {
    let id = format!("leak-{i}");
    match i % 20 {
        0..=13 => device_connect(plain, Version::ALL[i % 3], &id).map(|_| ()),
        14..=16 => {
            let mut c = RawClient::plain(plain);
            let _ = c.send(&invalid[i % invalid.len()]);
            let r = c.read_to_close(DEADLINE);
            r.is_closed().then_some(()).ok_or(format!("{id}: {r:?}"))
        }
        17 | 18 => {
            let packet = connect_packet(Version::ALL[i % 3], &id);
            let mut c = RawClient::plain(plain);
            let _ = c.send(&packet[..packet.len() / 2]);
            c.shutdown_write();
            let r = c.read_to_close(DEADLINE);
            r.is_closed().then_some(()).ok_or(format!("{id}: {r:?}"))
        }
        _ => {
            let mut c = RawClient::tls(tls, pki(), Some(pki().client("thing001")));
            c.send(&connect_packet(Version::V311, &id))
                .map_err(|e| format!("{id}: {e}"))?;
            let r = c.read_to_close(DEADLINE);
            (r.bytes() == [0x20, 0x02, 0x00, 0x02])
                .then_some(())
                .ok_or(format!("{id}: {r:?}"))
        }
    }
}

fn run(range: std::ops::Range<usize>, plain: u16, tls: u16, invalid: &[Vec<u8>]) {
    let next = AtomicUsize::new(range.start);
    let failures = Mutex::new(Vec::new());
    thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= range.end {
                    break;
                }
                if let Err(e) = session(i, plain, tls, invalid) {
                    failures.lock().unwrap().push(e);
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn worker_memory_stays_flat_over_thousands_of_sessions() {
    let gw = Gateway::start(
        &[
            Server::plain("plain", "mqtt_preread on;"),
            Server::tls("tls", "optional", "mqtt_client_id_match cn;"),
        ],
        1024,
        "",
    );
    let (plain, tls) = (gw.port("plain"), gw.port("tls"));
    let invalid: Vec<Vec<u8>> = cases()
        .into_iter()
        .filter(|c| c.rule != "TooLarge")
        .map(|c| c.bytes)
        .collect();
    let workers = wait_workers(&gw.nginx, 1);
    let worker = workers[0];

    run(0..WARMUP, plain, tls, &invalid);
    let settled = |n: usize| {
        wait_until(DEADLINE, "sessions logged", || {
            (gw.nginx.access_entries().len() >= n).then_some(())
        })
    };
    settled(WARMUP);
    let before = rss_kib(worker);
    let total = sessions();
    // RSS after each tenth of the run, to show the curve.
    let mut samples = vec![before];
    let step = total.div_ceil(10);
    let mut done = 0;
    while done < total {
        let n = step.min(total - done);
        run(WARMUP + done..WARMUP + done + n, plain, tls, &invalid);
        done += n;
        settled(WARMUP + done);
        samples.push(rss_kib(worker));
    }
    let after = *samples.last().expect("samples");
    eprintln!("worker RSS KiB every {step} sessions: {samples:?}");
    let growth = after.saturating_sub(before);
    eprintln!(
        "worker RSS {before} KiB -> {after} KiB over {total} sessions: {:.1} bytes/session",
        growth as f64 * 1024.0 / total as f64
    );
    assert!(before > 0 && after > 0, "no RSS for worker {worker}");
    assert!(
        growth <= BOUND_KIB,
        "worker RSS grew {growth} KiB over {total} sessions ({before} -> {after} KiB)"
    );
    assert_eq!(gw.nginx.worker_pids(), workers, "worker replaced");
    let serious = serious_lines(&gw.nginx.error_log_text());
    assert!(serious.is_empty(), "{serious:#?}");
}
