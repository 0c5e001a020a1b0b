//! Reload under load: SIGHUP every second while devices connect without
//! pause. No connect may fail, and sessions established through nginx before
//! the reloads (mosquitto_sub, held open) survive them and still receive.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use support::reliability::{device_connect, serious_lines, Gateway, Server};
use support::{wait_until, MqttCli, Version, DEADLINE};

const RELOADS: usize = 5;

#[test]
fn reloads_under_load_lose_no_connect_and_keep_sessions() {
    let servers = |timeout: &str| {
        vec![Server::plain(
            "mqtt",
            &format!("mqtt_preread on;\n    preread_timeout {timeout};"),
        )]
    };
    let gw = Gateway::start(&servers("5s"), 1024, "");
    let port = gw.port("mqtt");

    let subs: Vec<_> = (0..3)
        .map(|i| {
            let id = format!("held-{i}");
            let sub = MqttCli::new(port, Version::ALL[i])
                .id(&id)
                .subscribe(&format!("cmd/{i}"));
            (id, sub)
        })
        .collect();

    let done = AtomicBool::new(false);
    let ok = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let started = Instant::now();
    thread::scope(|scope| {
        for t in 0..3 {
            let (done, ok, failures) = (&done, &ok, &failures);
            scope.spawn(move || {
                let mut i = 0;
                while !done.load(Ordering::Relaxed) {
                    let id = format!("churn-{t}-{i}");
                    match device_connect(port, Version::ALL[(t + i) % 3], &id) {
                        Ok(_) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => failures
                            .lock()
                            .unwrap()
                            .push(format!("{:?}: {e}", started.elapsed())),
                    }
                    i += 1;
                    // A steady stream rather than a flood: the point is
                    // connects in flight during every reload, and a flood
                    // would starve the tests running beside this one.
                    thread::sleep(Duration::from_millis(2));
                }
            });
        }
        for r in 0..RELOADS {
            thread::sleep(Duration::from_millis(1000));
            // Alternate two configurations, so each reload really changes one.
            let conf = gw.conf(&servers(if r % 2 == 0 { "6s" } else { "5s" }));
            gw.nginx.reload(Some(conf));
        }
        thread::sleep(Duration::from_millis(500));
        done.store(true, Ordering::Relaxed);
    });
    let failures = failures.into_inner().unwrap();
    let ok = ok.load(Ordering::Relaxed);
    eprintln!(
        "{RELOADS} reloads in {:?}: {ok} connects succeeded, {} failed",
        started.elapsed(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} connects failed during reloads:\n{}",
        failures.len(),
        ok + failures.len(),
        failures.join("\n")
    );
    assert!(ok >= 100, "only {ok} connects during the reloads");

    // Every session was proxied, across all worker generations.
    wait_until(DEADLINE, "every churn session logged", || {
        let n = gw
            .nginx
            .access_entries()
            .iter()
            .filter(|e| e.client_id.starts_with("churn-"))
            .inspect(|e| assert_eq!(e.status, "200", "{e:?}"))
            .count();
        (n == ok).then_some(())
    });

    // The held sessions still deliver, through the old workers.
    for (i, (id, sub)) in subs.iter().enumerate() {
        let broker = gw
            .brokers
            .iter()
            .find(|b| b.saw_client(id))
            .expect("broker of the held session");
        let payload = format!("after-{RELOADS}-reloads-{i}");
        let r = MqttCli::new(broker.port, Version::V311)
            .id(&format!("operator-{i}"))
            .publish(&format!("cmd/{i}"), &payload);
        assert!(r.success(), "{r:?}");
        sub.wait_message(&payload);
    }
    let mut subs = subs;
    for (id, sub) in &mut subs {
        assert!(sub.is_running(), "{id} lost its connection");
    }
    let serious = serious_lines(&gw.nginx.error_log_text());
    assert!(serious.is_empty(), "{serious:#?}");
}
