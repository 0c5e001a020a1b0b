//! Slow clients: 200 connections that never complete their CONNECT (silent,
//! stalled half-way, trickling a byte at a time, over TCP and TLS) are each
//! closed by `preread_timeout` and logged `incomplete`/400, without reaching
//! a broker, while valid devices keep connecting with 100% success.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use support::client::Connect;
use support::reliability::{
    device_connect, raise_nofile, serious_lines, wait_workers, Gateway, Server,
};
use support::{pki, wait_until, RawClient, ReadEnd, SessionKey, Version};

/// 200 here; `SOAK_SLOW_CLIENTS` raises it for the heavy run (scripts/soak.sh).
fn slow_count() -> usize {
    std::env::var("SOAK_SLOW_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}
const PREREAD_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// Connects and sends nothing.
    Silent,
    /// Sends part of the CONNECT, then nothing.
    Stalled,
    /// Sends the CONNECT a byte every 250 ms: it would need longer than the
    /// timeout to finish.
    Trickle,
    /// TLS handshake, part of the CONNECT, then nothing.
    TlsStalled,
    /// TLS, trickling.
    TlsTrickle,
}

const KINDS: [Kind; 5] = [
    Kind::Silent,
    Kind::Stalled,
    Kind::Trickle,
    Kind::TlsStalled,
    Kind::TlsTrickle,
];

struct Slow {
    kind: Kind,
    session: SessionKey,
    closed_after: Option<Duration>,
    reply: Vec<u8>,
}

fn slow_client(i: usize, kind: Kind, plain: u16, tls: u16) -> Slow {
    let id = format!("slow-{i:04}");
    // Long enough that trickling it takes more than the timeout.
    let connect = Connect {
        username: Some("slow-user"),
        ..Connect::new(Version::ALL[i % 3], &id)
    }
    .encode();
    let mut client = match kind {
        Kind::TlsStalled | Kind::TlsTrickle => {
            RawClient::tls(tls, pki(), Some(pki().client("thing001")))
        }
        _ => RawClient::plain(plain),
    };
    let started = Instant::now();
    let mut sent_ok = true;
    match kind {
        Kind::Silent => {}
        Kind::Stalled | Kind::TlsStalled => {
            let cut = 1 + i % (connect.len() - 1);
            sent_ok = client.send(&connect[..cut]).is_ok();
        }
        Kind::Trickle | Kind::TlsTrickle => {
            // One byte, then listen 250 ms for the close, and so on.
            for byte in &connect[..connect.len() - 1] {
                if client.send(std::slice::from_ref(byte)).is_err() {
                    break;
                }
                match client.read_up_to(1, Duration::from_millis(250)) {
                    ReadEnd::Open(b) if b.is_empty() => continue,
                    other => {
                        return Slow {
                            kind,
                            session: client.session(),
                            closed_after: other.is_closed().then(|| started.elapsed()),
                            reply: other.bytes().to_vec(),
                        }
                    }
                }
            }
        }
    }
    // The TLS handshake happens on the first send; the silent TLS case is
    // not one of the kinds, so a failed send here is a failure.
    assert!(sent_ok, "{id} ({kind:?}): send failed");
    let reply = client.read_to_close(PREREAD_TIMEOUT * 5);
    Slow {
        kind,
        session: client.session(),
        closed_after: reply.is_closed().then(|| started.elapsed()),
        reply: reply.bytes().to_vec(),
    }
}

#[test]
fn slow_clients_are_closed_by_preread_timeout_while_devices_connect() {
    let slow_n = slow_count();
    raise_nofile(8192);
    let gw = Gateway::start(
        &[
            Server::plain("plain", "mqtt_preread on;\n    preread_timeout 2s;"),
            Server::tls(
                "tls",
                "optional",
                "mqtt_client_id_match cn;\n    preread_timeout 2s;",
            ),
        ],
        (slow_n * 2 + 512).max(2048),
        "",
    );
    let (plain, tls) = (gw.port("plain"), gw.port("tls"));
    let workers_before = wait_workers(&gw.nginx, 1);

    let done = AtomicBool::new(false);
    let ok = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let slow: Vec<Slow> = thread::scope(|scope| {
        // Valid devices at a steady rate while the slow ones hang on.
        let devices = scope.spawn(|| {
            let mut i = 0;
            while !done.load(Ordering::Relaxed) {
                let id = format!("steady-{i}");
                match device_connect(plain, Version::ALL[i % 3], &id) {
                    Ok(_) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => failures.lock().unwrap().push(e),
                }
                i += 1;
                thread::sleep(Duration::from_millis(20));
            }
        });
        let handles: Vec<_> = (0..slow_n)
            .map(|i| {
                let kind = KINDS[i % KINDS.len()];
                thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn_scoped(scope, move || slow_client(i, kind, plain, tls))
                    .expect("spawn slow client")
            })
            .collect();
        // The device thread stops before any slow client's failure is
        // reported: a panic here would otherwise leave the scope waiting
        // for it for ever.
        let joined: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
        done.store(true, Ordering::Relaxed);
        devices.join().expect("device thread");
        joined
            .into_iter()
            .map(|slow| slow.expect("slow client thread"))
            .collect()
    });

    // Every slow client was closed, not before the timeout, with nothing
    // sent back (no CONNACK for an incomplete CONNECT).
    let mut problems = Vec::new();
    for (i, s) in slow.iter().enumerate() {
        match s.closed_after {
            None => problems.push(format!("#{i} {:?}: still open", s.kind)),
            Some(t) if t < PREREAD_TIMEOUT - Duration::from_millis(100) => problems.push(format!(
                "#{i} {:?}: closed after {t:?}, before the timeout",
                s.kind
            )),
            Some(_) => {}
        }
        if !s.reply.is_empty() {
            problems.push(format!("#{i} {:?}: got {:02x?}", s.kind, s.reply));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // ... and logged as incomplete, status 400, no broker.
    let entries = wait_until(Duration::from_secs(10), "slow sessions logged", || {
        let all = gw.nginx.access_entries();
        let found: Vec<_> = slow
            .iter()
            .filter_map(|s| {
                all.iter()
                    .find(|e| s.session.matches(e))
                    .cloned()
                    .map(|e| (s.kind, e))
            })
            .collect();
        (found.len() == slow.len()).then_some(found)
    });
    let wrong: Vec<String> = entries
        .iter()
        .filter(|(_, e)| {
            e.status != "400" || e.reject_reason != "incomplete" || !e.upstream_addr.is_empty()
        })
        .map(|(kind, e)| format!("{kind:?}: {e:?}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    let failures = failures.into_inner().unwrap();
    let ok = ok.load(Ordering::Relaxed);
    assert!(
        failures.is_empty(),
        "{} of {} devices failed while slow clients hung on:\n{}",
        failures.len(),
        ok + failures.len(),
        failures.join("\n")
    );
    assert!(ok >= 30, "only {ok} devices connected during the run");
    // A device after the slow ones, over mutual TLS.
    let r = support::MqttCli::new(tls, Version::V311)
        .tls(pki(), Some(pki().client("thing002")))
        .id("thing002")
        .publish("t", "m");
    assert!(r.success(), "{r:?}");

    let serious = serious_lines(&gw.nginx.error_log_text());
    assert!(serious.is_empty(), "{serious:#?}");
    assert_eq!(gw.nginx.worker_pids(), workers_before, "worker replaced");
    eprintln!("{slow_n} slow clients closed by preread_timeout; {ok} devices served meanwhile");
}
