//! The content gate: a session whose CONNECT this module never decided does
//! not reach a broker, even when another module ends the preread phase
//! before this one runs.
//!
//! nginx runs a phase's handlers in reverse order of registration, so a
//! module loaded after this one reads first; njs's `s.done()` in
//! `js_preread` then ends the phase and skips this module's handler. The
//! test needs njs built for the nginx under test: it runs when
//! `$MQTT_TEST_NJS` names `ngx_stream_js_module.so` (scripts/test.sh sets it
//! for Debian's nginx) and says so when it skips.

mod support;

use std::time::Duration;

use support::client::connect_packet;
use support::nginx::{hashed_upstream, njs_module, standard_conf_loading, Load, ACCESS_LOG_FORMAT};
use support::{broker, free_port, Nginx, RawClient, ReadEnd, Version};

#[test]
fn session_the_module_never_decided_is_not_proxied() {
    let Some(njs) = njs_module() else {
        return;
    };
    let brokers = broker::three();
    let (skipping, plain) = (free_port(), free_port());
    let body = format!(
        "js_import gate from {{prefix}}/gate.js;\n{upstream}\
         server {{ listen 127.0.0.1:{skipping}; js_preread gate.skip; mqtt_preread on; proxy_pass brokers; }}\n\
         server {{ listen 127.0.0.1:{plain}; mqtt_preread on; proxy_pass brokers; }}\n",
        upstream = hashed_upstream("brokers", &[&brokers[0], &brokers[1], &brokers[2]]),
    );
    let nginx = Nginx::start_with(
        |prefix| {
            std::fs::write(
                prefix.join("gate.js"),
                "function skip(s) { s.done(); }\nexport default { skip };\n",
            )
            .expect("gate.js");
            // njs after this module, so that its preread handler runs first.
            standard_conf_loading(
                prefix,
                ACCESS_LOG_FORMAT,
                &body,
                &njs,
                Load::AfterThisModule,
            )
        },
        &[skipping, plain],
    );

    // The same valid CONNECT on both listeners.
    for (port, status, reason, proxied) in [
        (plain, "200", "", true),
        (skipping, "400", "incomplete", false),
    ] {
        let mut client = RawClient::plain(port);
        let session = client.session();
        client
            .send(&connect_packet(Version::V311, "thing001"))
            .expect("send");
        let reply = client.read_connack(Duration::from_secs(5));
        if proxied {
            assert!(
                matches!(reply, ReadEnd::Open(ref b) if b.starts_with(&[0x20, 0x02, 0x00, 0x00])),
                "port {port}: {reply:?}"
            );
        } else {
            assert!(
                reply.is_closed() && reply.bytes().is_empty(),
                "port {port}: {reply:?}"
            );
        }
        drop(client);
        let e = nginx.wait_access_session(session);
        assert_eq!(
            (
                e.status.as_str(),
                e.reject_reason.as_str(),
                e.upstream_addr.is_empty()
            ),
            (status, reason, !proxied),
            "port {port}: {e:?}"
        );
    }
    assert!(brokers.iter().filter(|b| b.saw_client("thing001")).count() == 1);
}
