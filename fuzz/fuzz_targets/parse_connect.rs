//! Fuzzes `parse_connect` the way nginx feeds it: the same stream delivered
//! in fragments, re-parsed from the start after each one.
//!
//! Input layout:
//! * byte 0: the size limit, `(b + 1) * 32` bytes, or no limit for 0xFF;
//! * byte 1: how many fragment sizes follow (`b % 16`);
//! * that many bytes: fragment sizes (0 counts as 1); whatever is left after
//!   the last fragment arrives in one piece;
//! * the rest: the bytes of the stream.
//!
//! Checked: no panic; once a prefix gets a verdict (Connect or Invalid),
//! every longer prefix gets the same one and it equals the verdict on the
//! whole stream; `needed` is never 0 and points at the end of the packet; a
//! Connect lies within the packet and re-parses the same from the packet
//! alone; the rejection CONNACK fits its buffer; `ConnectFramer` fed the
//! same fragments agrees with the parser, except that it may still say
//! Incomplete where the parser already saw a violation.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mqtt_core::packet::connack::MAX_CONNACK_LEN;
use mqtt_core::packet::{parse_connect, Connect, ConnectFramer, Parsed, Property};
use mqtt_core::policy::RejectReason;

fuzz_target!(|data: &[u8]| {
    let [limit_byte, count, rest @ ..] = data else {
        return;
    };
    let limit = match limit_byte {
        0xFF => usize::MAX,
        b => (usize::from(*b) + 1) * 32,
    };
    let count = usize::from(count % 16).min(rest.len());
    let (fragments, stream) = rest.split_at(count);

    let whole = parse_connect(stream, limit);
    check_verdict(stream, limit, &whole);

    let mut received: usize = 0;
    let mut decided: Option<Parsed<'_>> = None;
    let mut framer = ConnectFramer::default();
    let cuts = fragments
        .iter()
        .map(|&f| usize::from(f.max(1)))
        .chain(std::iter::once(usize::MAX));
    for fragment in cuts {
        received = received.saturating_add(fragment).min(stream.len());
        let r = parse_connect(&stream[..received], limit);
        // The framer skips parses while the packet is known to be
        // incomplete, and otherwise agrees.
        let framed = framer.parse(&stream[..received], limit);
        let skipped = matches!(framed, Parsed::Incomplete { needed: Some(_) })
            && matches!(r, Parsed::Invalid { .. });
        assert!(framed == r || skipped, "framer {framed:?}, parser {r:?}");
        if let (Parsed::Connect(_), true) = (whole, received == stream.len()) {
            assert_eq!(framed, whole);
        }
        match (decided, r) {
            (Some(d), r) => assert_eq!(r, d, "verdict changed at {received}"),
            (None, Parsed::Incomplete { needed }) => {
                assert_ne!(needed, Some(0));
                if let (Some(k), Parsed::Connect(c)) = (needed, whole) {
                    assert_eq!(received + k, c.packet_len);
                }
            }
            (None, r) => {
                assert_eq!(r, whole, "prefix {received} disagrees with the whole");
                decided = Some(r);
            }
        }
        if received == stream.len() {
            break;
        }
    }
});

fn check_verdict(stream: &[u8], limit: usize, verdict: &Parsed<'_>) {
    match *verdict {
        Parsed::Connect(c) => check_connect(stream, limit, &c),
        Parsed::Invalid { reason, level } => {
            let mut out = [0u8; MAX_CONNACK_LEN];
            let reason = RejectReason::Invalid(reason);
            let n = reason.write_connack(level, None, &mut out);
            assert!(n <= out.len());
            assert_eq!(n == 0, reason.connack(level).is_none());
        }
        Parsed::Incomplete { .. } => {}
    }
}

fn check_connect(stream: &[u8], limit: usize, c: &Connect<'_>) {
    assert!(c.packet_len <= stream.len() && c.packet_len <= limit);
    let packet = &stream[..c.packet_len];
    let inside = |field: &[u8]| {
        let (p, f) = (packet.as_ptr_range(), field.as_ptr_range());
        field.is_empty() || (p.start <= f.start && f.end <= p.end)
    };
    assert!(inside(c.client_id.as_bytes()));
    assert!(c.username.is_none_or(|u| inside(u.as_bytes())));
    assert!(c.will_topic.is_none_or(|t| inside(t.as_bytes())));
    for props in [c.properties, c.will_properties] {
        assert!(props.len() < c.packet_len || props.is_empty());
        for p in props {
            match p {
                Property::ContentType(s)
                | Property::ResponseTopic(s)
                | Property::AuthenticationMethod(s) => assert!(inside(s.as_bytes())),
                Property::CorrelationData(d) => assert!(inside(d)),
                Property::UserProperty(k, v) => {
                    assert!(inside(k.as_bytes()) && inside(v.as_bytes()))
                }
                _ => {}
            }
        }
    }
    assert_eq!(parse_connect(packet, limit), Parsed::Connect(*c));
}
