#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;
use crate::packet::rewrite::{RewriteError, RewriteField};
use crate::packet::InvalidReason;

fn every_reason() -> Vec<RejectReason> {
    let mut all: Vec<RejectReason> = InvalidReason::ALL
        .iter()
        .map(|&r| RejectReason::Invalid(r))
        .collect();
    all.extend([
        RejectReason::Incomplete,
        RejectReason::NoCertificate,
        RejectReason::UnverifiedCertificate,
        RejectReason::UnreadableCertificate,
        RejectReason::SeveralCommonNames,
        RejectReason::EmptyClientId,
        RejectReason::ClientIdMismatch,
        RejectReason::RewriteTooLarge,
        RejectReason::RewriteFailed(RewriteError::EmptyClientId),
        RejectReason::RewriteFailed(RewriteError::NotUtf8(RewriteField::Username)),
        RejectReason::RateLimited,
        RejectReason::SessionLimit,
    ]);
    all
}

#[test]
fn a_refusal_is_counted_under_its_reject_reason_token() {
    for reason in every_reason() {
        assert_eq!(
            OUTCOMES[outcome_index(reason)],
            reason.token(),
            "{reason:?}"
        );
    }
}

#[test]
fn every_outcome_label_is_distinct_and_refusals_cover_all_but_two() {
    let mut labels = OUTCOMES.to_vec();
    labels.sort_unstable();
    labels.dedup();
    assert_eq!(labels.len(), OUTCOMES.len());
    let mut used: Vec<usize> = every_reason().into_iter().map(outcome_index).collect();
    used.sort_unstable();
    used.dedup();
    let expected: Vec<usize> = (0..OUTCOMES.len())
        .filter(|&i| i != ACCEPTED && i != PROXIED_UNPARSED)
        .collect();
    assert_eq!(used, expected);
}

#[test]
fn versions_are_indexed_by_protocol_level() {
    assert_eq!(VERSIONS[version_index(None)], "unknown");
    for level in ProtocolLevel::ALL {
        assert_eq!(VERSIONS[version_index(Some(level))], level.name());
    }
}

#[test]
fn a_value_falls_in_the_first_bucket_whose_bound_it_does_not_exceed() {
    let c = ServerCounters::default();
    for ms in [0, 1, 2, 5, 10_000, 10_001, u64::MAX / 4] {
        c.count_decision(None, 6, ms, None);
    }
    let d = c.snapshot().duration_ms;
    // le=0.001: 0 and 1 ms; le=0.005: + 2 and 5; ...; le=10: + 10000;
    // +Inf: + the two above.
    assert_eq!(d.cumulative[0], 2);
    assert_eq!(d.cumulative[1], 4);
    assert_eq!(d.cumulative[10], 4);
    assert_eq!(d.cumulative[11], 5);
    assert_eq!(d.cumulative[12], 7);
    assert_eq!(d.count(), 7);
    // Without a size, the size histogram is untouched.
    assert_eq!(c.snapshot().size_bytes.count(), 0);
}

#[test]
fn an_accepted_connect_opens_a_session_and_a_refusal_does_not() {
    let c = ServerCounters::default();
    let v5 = Some(ProtocolLevel::V5);
    c.count_decision(v5, ACCEPTED, 3, Some(40));
    c.count_decision(v5, ACCEPTED, 3, Some(40));
    c.count_decision(v5, outcome_index(RejectReason::NoCertificate), 3, Some(40));
    c.count_decision(None, PROXIED_UNPARSED, 0, None);
    c.session_closed();
    let s = c.snapshot();
    assert_eq!(s.sessions, 1);
    assert_eq!(s.connects("5.0", "accepted"), 2);
    assert_eq!(s.connects("5.0", "no_certificate"), 1);
    assert_eq!(s.connects("unknown", "proxied_unparsed"), 1);
    assert_eq!(s.connects("3.1", "accepted"), 0);
    assert_eq!(s.connects("4.0", "accepted"), 0);
    assert_eq!(s.size_bytes.count(), 3);
    assert_eq!(s.size_bytes.sum, 120);
    // A close without its open reads as -1, not as 2^64 - 1.
    c.session_closed();
    c.session_closed();
    assert_eq!(c.snapshot().sessions, -1);
}

#[test]
fn takeovers_are_counted() {
    let c = ServerCounters::default();
    c.count_takeover();
    assert_eq!(c.snapshot().takeovers, 1);
}

#[test]
fn the_exposition_has_each_family_once_with_a_sample_per_server() {
    let a = ServerCounters::default();
    a.count_decision(Some(ProtocolLevel::V311), ACCEPTED, 1005, Some(30));
    let b = ServerCounters::default();
    let mut out = String::new();
    render(&[(b"a", a.snapshot()), (b"b", b.snapshot())], &mut out);

    for family in [
        "nginx_mqtt_connects_total counter",
        "nginx_mqtt_sessions gauge",
        "nginx_mqtt_takeovers_total counter",
        "nginx_mqtt_connect_duration_seconds histogram",
        "nginx_mqtt_connect_size_bytes histogram",
    ] {
        assert_eq!(out.matches(&format!("# TYPE {family}\n")).count(), 1);
    }
    let lines: Vec<&str> = out.lines().collect();
    for line in [
        "nginx_mqtt_connects_total{server=\"a\",version=\"3.1.1\",outcome=\"accepted\"} 1",
        "nginx_mqtt_connects_total{server=\"b\",version=\"3.1.1\",outcome=\"accepted\"} 0",
        "nginx_mqtt_sessions{server=\"a\"} 1",
        "nginx_mqtt_takeovers_total{server=\"b\"} 0",
        "nginx_mqtt_connect_duration_seconds_bucket{server=\"a\",le=\"1\"} 0",
        "nginx_mqtt_connect_duration_seconds_bucket{server=\"a\",le=\"2.5\"} 1",
        "nginx_mqtt_connect_duration_seconds_bucket{server=\"a\",le=\"+Inf\"} 1",
        "nginx_mqtt_connect_duration_seconds_sum{server=\"a\"} 1.005",
        "nginx_mqtt_connect_duration_seconds_count{server=\"a\"} 1",
        "nginx_mqtt_connect_size_bytes_bucket{server=\"a\",le=\"16\"} 0",
        "nginx_mqtt_connect_size_bytes_bucket{server=\"a\",le=\"32\"} 1",
        "nginx_mqtt_connect_size_bytes_sum{server=\"a\"} 30",
        "nginx_mqtt_connect_size_bytes_count{server=\"b\"} 0",
    ] {
        assert!(lines.contains(&line), "no line {line} in:\n{out}");
    }
    let connects = |server: &str| {
        lines
            .iter()
            .filter(|l| l.starts_with(&format!("nginx_mqtt_connects_total{{server=\"{server}\"")))
            .count()
    };
    assert_eq!(connects("a"), VERSIONS.len() * OUTCOMES.len());
    assert_eq!(connects("b"), VERSIONS.len() * OUTCOMES.len());
    assert!(out.ends_with('\n'));
}

#[test]
fn label_values_are_escaped() {
    let mut out = String::new();
    render(
        &[(b"a\"b\\c\nd\xff", ServerCounters::default().snapshot())],
        &mut out,
    );
    assert!(
        out.contains("nginx_mqtt_sessions{server=\"a\\\"b\\\\c\\nd\u{fffd}\"} 0\n"),
        "{out}"
    );
}

#[test]
fn without_servers_only_the_families_are_described() {
    let mut out = String::new();
    render(&[], &mut out);
    assert!(out.lines().all(|l| l.starts_with("# ")), "{out}");
    assert_eq!(out.lines().count(), 10);
}
