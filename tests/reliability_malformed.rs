//! Malformed flood: hundreds of distinct invalid first packets, generated
//! from the specification's rules (tests/support/malformed.rs), sent whole
//! and fragmented through nginx in strict mode. Each must be refused with
//! the documented status, reason token, error-log message and CONNACK (or
//! bare close), none may reach a broker or crash a worker, and valid devices
//! connecting during and after the flood must all succeed.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use mqtt_core::packet::{parse_connect, Parsed, ProtocolLevel};
use support::malformed::{cases, fragments, parser_reasons, valid_bases, Case, Rng};
use support::nginx::AccessEntry;
use support::reliability::{
    device_connect, reject_lines, serious_lines, wait_workers, Gateway, Server,
};
use support::{wait_until, MqttCli, RawClient, ReadEnd, SessionKey, Version};

const WAIT: Duration = Duration::from_secs(5);
const WORKERS: usize = 8;

/// What one sent case produced.
struct Sent {
    case: usize,
    session: SessionKey,
    reply: ReadEnd,
}

/// Sends `bytes` whole, or in `frags` with `gap` between them while
/// listening (a close or a CONNACK stops the sending, as a client would).
fn send_case(
    port: u16,
    bytes: &[u8],
    frags: Option<Vec<Vec<u8>>>,
    gap: Duration,
) -> (ReadEnd, SessionKey) {
    let mut client = RawClient::plain(port);
    let session = client.session();
    let Some(frags) = frags else {
        let _ = client.send(bytes);
        return (client.read_to_close(WAIT), session);
    };
    let mut got = Vec::new();
    let last = frags.len() - 1;
    for (i, frag) in frags.iter().enumerate() {
        if client.send(frag).is_err() {
            break;
        }
        if i == last {
            break;
        }
        match client.read_up_to(1, gap) {
            ReadEnd::Open(b) if b.is_empty() => continue,
            ReadEnd::Open(b) => {
                got.extend_from_slice(&b);
                break;
            }
            ReadEnd::Closed(b) => return (ReadEnd::Closed(b), session),
            ReadEnd::Error(b, e) => return (ReadEnd::Error(b, e), session),
        }
    }
    match client.read_to_close(WAIT) {
        ReadEnd::Closed(b) => {
            got.extend_from_slice(&b);
            (ReadEnd::Closed(got), session)
        }
        ReadEnd::Open(b) => {
            got.extend_from_slice(&b);
            (ReadEnd::Open(got), session)
        }
        ReadEnd::Error(b, e) => {
            got.extend_from_slice(&b);
            (ReadEnd::Error(got, e), session)
        }
    }
}

/// The distinct cases (by bytes), each rule covered.
fn distinct_cases() -> Vec<Case> {
    let mut seen = BTreeSet::new();
    cases()
        .into_iter()
        .filter(|c| seen.insert(c.bytes.clone()))
        .collect()
}

#[test]
fn generator_covers_every_parser_rule() {
    let reasons = parser_reasons();
    assert!(reasons.len() >= 28, "{reasons:?}");
    let cases = distinct_cases();
    let mut per_rule: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &cases {
        assert!(
            reasons.contains_key(c.rule),
            "{}: {} is not an InvalidReason variant",
            c.name,
            c.rule
        );
        *per_rule.entry(c.rule).or_default() += 1;
    }
    let missing: Vec<&String> = reasons
        .keys()
        .filter(|r| !per_rule.contains_key(r.as_str()))
        .collect();
    assert!(missing.is_empty(), "no generated packet for {missing:?}");
    assert!(cases.len() >= 200, "only {} distinct packets", cases.len());
    let names: BTreeSet<&String> = cases.iter().map(|c| &c.name).collect();
    assert_eq!(names.len(), cases.len(), "case names are not unique");
    eprintln!("{} distinct invalid packets: {per_rule:?}", cases.len());
}

/// Each generated packet breaks the rule it is labelled with, at the level
/// it is labelled with, for the parser itself (the default 16k
/// `preread_buffer_size` as the limit); and the bases are valid.
#[test]
fn generator_labels_match_the_parser() {
    const LIMIT: usize = 16_384;
    for c in distinct_cases() {
        match parse_connect(&c.bytes, LIMIT) {
            Parsed::Invalid { reason, level } => assert_eq!(
                (format!("{reason:?}"), level.map(ProtocolLevel::as_u8)),
                (c.rule.to_owned(), c.level),
                "{}",
                c.name
            ),
            other => panic!("{}: {other:?}", c.name),
        }
    }
    for (name, bytes) in valid_bases() {
        assert!(
            matches!(parse_connect(&bytes, LIMIT), Parsed::Connect(_)),
            "{name}"
        );
    }
}

/// Checks every sent case against the access and error logs.
fn check_all(gw: &Gateway, cases: &[Case], sent: &[Sent], mode: &str) {
    let reasons = parser_reasons();
    let key = |e: &AccessEntry| {
        (
            e.remote_addr.clone(),
            e.remote_port.clone(),
            e.server_port.clone(),
        )
    };
    let session_key = |s: &SessionKey| {
        (
            s.client.ip().to_string(),
            s.client.port().to_string(),
            s.server_port.to_string(),
        )
    };
    let entries: BTreeMap<(String, String, String), AccessEntry> = wait_until(
        WAIT,
        &format!("{} access-log entries ({mode})", sent.len()),
        || {
            let all: BTreeMap<_, _> = gw
                .nginx
                .access_entries()
                .into_iter()
                .map(|e| (key(&e), e))
                .collect();
            sent.iter()
                .all(|s| all.contains_key(&session_key(&s.session)))
                .then_some(all)
        },
    );
    let errors = reject_lines(&gw.nginx.error_log_text());
    let mut failures = Vec::new();
    for s in sent {
        let case = &cases[s.case];
        let expect = case.expect();
        let e = &entries[&session_key(&s.session)];
        let mut problems = Vec::new();
        if e.status != "400" || e.reject_reason != expect.token {
            problems.push(format!(
                "logged status {} reason {:?}, want 400 {:?}",
                e.status, e.reject_reason, expect.token
            ));
        }
        if !e.upstream_addr.is_empty() {
            problems.push(format!("reached broker {}", e.upstream_addr));
        }
        match &s.reply {
            ReadEnd::Closed(bytes) if case.reply_ok(bytes) => {}
            other => problems.push(format!(
                "reply {other:02x?}, want {:?} then close",
                expect.connack
            )),
        }
        let conn = e.extra.first().cloned().unwrap_or_default();
        let want = if case.rule == "TooLarge" {
            "larger than preread_buffer_size".to_owned()
        } else {
            format!("({}): {}", expect.token, reasons[case.rule])
        };
        match errors.get(&conn) {
            Some(line) if line.contains(&want) => {}
            other => problems.push(format!("error log {other:?}, want {want:?}")),
        }
        if !problems.is_empty() {
            failures.push(format!(
                "[{mode}] {} ({}): {}\n    bytes {:02x?}",
                case.name,
                case.rule,
                problems.join("; "),
                case.bytes
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        sent.len(),
        failures.join("\n")
    );
}

#[test]
fn malformed_flood_is_refused_and_valid_devices_are_served() {
    let gw = Gateway::start(
        &[Server::plain(
            "strict",
            "mqtt_preread on;\n    preread_buffer_size 16k;\n    preread_timeout 5s;",
        )],
        1024,
        "",
    );
    let port = gw.port("strict");
    let workers_before = wait_workers(&gw.nginx, 1);

    // The generator's starting points are valid: every broker accepts them.
    for (name, bytes) in valid_bases() {
        let mut c = RawClient::plain(port);
        c.send(&bytes).expect("send");
        let reply = c.read_connack(WAIT);
        let b = reply.bytes();
        assert!(
            b.len() >= 4 && b[0] == 0x20 && b[3] == 0x00,
            "valid base {name} not accepted: {reply:02x?}"
        );
    }

    let cases = distinct_cases();
    let done = AtomicBool::new(false);
    let valid_ok = AtomicUsize::new(0);
    let valid_failures = Mutex::new(Vec::new());
    let mut results = Vec::new();
    thread::scope(|scope| {
        // Valid devices throughout the flood: raw CONNECTs of every version
        // and mosquitto_pub, all of which must succeed.
        scope.spawn(|| {
            let mut i = 0usize;
            while !done.load(Ordering::Relaxed) || i < 20 {
                let version = Version::ALL[i % 3];
                let id = format!("flood-ok-{i}");
                let r = if i % 10 == 9 {
                    let r = MqttCli::new(port, version).id(&id).publish("t/ok", "m");
                    if r.success() {
                        Ok(())
                    } else {
                        Err(format!("mosquitto_pub {id}: {r:?}"))
                    }
                } else {
                    device_connect(port, version, &id).map(|_| ())
                };
                match r {
                    Ok(()) => valid_ok.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        valid_failures.lock().unwrap().push(e);
                        0
                    }
                };
                i += 1;
                thread::sleep(Duration::from_millis(5));
            }
        });

        for (mode, fragmented) in [("whole", false), ("fragmented", true)] {
            let next = AtomicUsize::new(0);
            let sent = Mutex::new(Vec::new());
            thread::scope(|inner| {
                for w in 0..WORKERS {
                    let (next, sent, cases) = (&next, &sent, &cases);
                    inner.spawn(move || {
                        let mut rng = Rng::new(0x5eed_0000 + w as u64);
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(case) = cases.get(i) else { break };
                            let frags = fragmented.then(|| fragments(&case.bytes, &mut rng));
                            let gap = Duration::from_millis(10 + rng.below(20) as u64);
                            let (reply, session) = send_case(port, &case.bytes, frags, gap);
                            sent.lock().unwrap().push(Sent {
                                case: i,
                                session,
                                reply,
                            });
                        }
                    });
                }
            });
            results.push((mode, sent.into_inner().unwrap()));
        }
        done.store(true, Ordering::Relaxed);
    });

    for (mode, sent) in &results {
        assert_eq!(sent.len(), cases.len(), "{mode}");
        check_all(&gw, &cases, sent, mode);
    }

    // Valid devices after the flood.
    for (i, version) in Version::ALL.iter().enumerate() {
        let id = format!("after-flood-{i}");
        let r = MqttCli::new(port, *version).id(&id).publish("t/after", "m");
        assert!(r.success(), "{id}: {r:?}");
    }
    let failures = valid_failures.into_inner().unwrap();
    let ok = valid_ok.load(Ordering::Relaxed);
    assert!(
        failures.is_empty(),
        "{} of {} valid devices failed during the flood:\n{}",
        failures.len(),
        ok + failures.len(),
        failures.join("\n")
    );
    assert!(ok >= 20, "only {ok} valid devices ran during the flood");
    // Every valid session was proxied to a broker (its entry is written
    // when the session ends).
    wait_until(WAIT, "every valid session proxied", || {
        let accepted = gw
            .nginx
            .access_entries()
            .into_iter()
            .filter(|e| {
                e.client_id.starts_with("flood-ok-") || e.client_id.starts_with("after-flood-")
            })
            .filter(|e| e.status == "200" && !e.upstream_addr.is_empty())
            .count();
        (accepted == ok + 3).then_some(())
    });

    let serious = serious_lines(&gw.nginx.error_log_text());
    assert!(serious.is_empty(), "{serious:#?}");
    assert_eq!(
        gw.nginx.worker_pids(),
        workers_before,
        "the worker was replaced (crashed?)"
    );
    eprintln!(
        "{} distinct invalid packets x2 (whole, fragmented) refused; {ok} valid devices served during the flood",
        cases.len()
    );
}
