//! Reload (SIGHUP to the master, as `nginx -s reload`): established sessions
//! survive on the old worker, and the new configuration takes effect.

mod support;

use support::nginx::{standard_conf, ACCESS_LOG_FORMAT};
use support::{Deployment, Listener, MqttCli, Version};

#[test]
fn reload_keeps_sessions_and_applies_the_new_configuration() {
    let before = [Listener::plain("mqtt", "mqtt_preread on;")];
    let d = Deployment::start(&before);
    let port = d.port("mqtt");

    // Devices connected through nginx, subscribed and held open.
    let subs: Vec<_> = (0..3)
        .map(|i| {
            let id = format!("held-{i}");
            (
                id.clone(),
                MqttCli::new(port, Version::V311)
                    .id(&id)
                    .subscribe(&format!("cmd/{i}")),
            )
        })
        .collect();

    // After the reload the listener requires a certificate (it has none, so
    // every new session is refused) and the log format gains a field.
    let after = [Listener::plain("mqtt", "mqtt_client_id_match cn;")];
    let conf = standard_conf(
        &d.nginx.prefix,
        &format!("{ACCESS_LOG_FORMAT}\treloaded"),
        &d.stream_body(&after),
    );
    d.nginx.reload(Some(conf));

    for (i, (id, sub)) in subs.iter().enumerate() {
        // Publish on the broker that holds the session: the old connection
        // through nginx must still deliver.
        let broker = d
            .brokers
            .iter()
            .find(|b| b.saw_client(id))
            .expect("broker of the held session");
        let topic = format!("cmd/{i}");
        let r = MqttCli::new(broker.port, Version::V311)
            .id("operator")
            .publish(&topic, &format!("after-reload-{i}"));
        assert!(r.success(), "{r:?}");
        sub.wait_message(&format!("after-reload-{i}"));
    }

    let r = MqttCli::new(port, Version::V311)
        .id("newcomer")
        .publish("t", "m");
    assert_eq!(r.code, Some(5), "new config not in effect: {r:?}");
    let e = d.nginx.wait_access_for("newcomer");
    assert_eq!(e.outcome(), ("403", "no_certificate"), "{e:?}");
    assert_eq!(e.extra, ["reloaded"], "new log_format not in effect: {e:?}");
    drop(subs);
}
