//! The usual topology: three brokers behind one nginx that routes by
//! `hash $mqtt_client_id consistent`, with any number of listeners.

use std::collections::BTreeMap;

use super::nginx::{hashed_upstream, tls_directives, Nginx};
use super::{broker, free_port, pki, Broker};

/// One `server {}` of the deployment.
pub struct Listener {
    pub name: &'static str,
    /// `ssl_verify_client` value; `None` for plain TCP.
    pub verify: Option<&'static str>,
    /// Extra directives inside the `server {}`.
    pub directives: String,
}

impl Listener {
    pub fn plain(name: &'static str, directives: &str) -> Listener {
        Listener {
            name,
            verify: None,
            directives: directives.to_owned(),
        }
    }

    pub fn tls(name: &'static str, verify: &'static str, directives: &str) -> Listener {
        Listener {
            name,
            verify: Some(verify),
            directives: directives.to_owned(),
        }
    }
}

pub struct Deployment {
    pub brokers: [Broker; 3],
    pub nginx: Nginx,
    ports: BTreeMap<&'static str, u16>,
}

impl Deployment {
    pub fn start(listeners: &[Listener]) -> Deployment {
        let brokers = broker::three();
        let ports: BTreeMap<&'static str, u16> =
            listeners.iter().map(|l| (l.name, free_port())).collect();
        let body = stream_body(&brokers, listeners, &ports);
        let nginx = Nginx::start(&body, &ports.values().copied().collect::<Vec<_>>());
        Deployment {
            brokers,
            nginx,
            ports,
        }
    }

    pub fn port(&self, name: &str) -> u16 {
        *self
            .ports
            .get(name)
            .unwrap_or_else(|| panic!("no listener {name:?}"))
    }

    /// The inside of `stream {}` for these listeners (for reload tests that
    /// rewrite the configuration).
    pub fn stream_body(&self, listeners: &[Listener]) -> String {
        stream_body(&self.brokers, listeners, &self.ports)
    }

    /// The broker at `$upstream_addr`.
    pub fn broker_at(&self, upstream_addr: &str) -> &Broker {
        self.brokers
            .iter()
            .find(|b| b.addr() == upstream_addr)
            .unwrap_or_else(|| panic!("{upstream_addr:?} is none of the brokers"))
    }
}

fn stream_body(
    brokers: &[Broker; 3],
    listeners: &[Listener],
    ports: &BTreeMap<&'static str, u16>,
) -> String {
    let mut body = hashed_upstream("brokers", &brokers.iter().collect::<Vec<_>>());
    for listener in listeners {
        let port = ports[listener.name];
        let (ssl, tls) = match listener.verify {
            Some(verify) => (" ssl", tls_directives(pki(), verify)),
            None => ("", String::new()),
        };
        body.push_str(&format!(
            "server {{\n    listen 127.0.0.1:{port}{ssl};\n    proxy_pass brokers;\n    {tls}    {}\n}}\n",
            listener.directives
        ));
    }
    body
}
