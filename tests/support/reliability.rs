//! Helpers for the reliability scenarios (tests/reliability_*.rs): a
//! three-broker gateway with a configurable main context and access-log
//! fields, a non-panicking device, worker memory, and log parsing.

use std::collections::{BTreeMap, HashMap};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use super::client::{connect_packet, SessionKey, Version};
use super::nginx::{hashed_upstream, main_context, tls_directives, ACCESS_LOG_FORMAT};
use super::{broker, free_port, pki, read_lossy, Broker, Nginx};

/// The standard access-log fields plus `$connection`, which ties an access
/// entry (`extra[0]`) to the error-log lines of the same session (`*N`).
pub fn conn_log_format() -> String {
    format!("{ACCESS_LOG_FORMAT}\t$connection")
}

/// Raises this process's soft `RLIMIT_NOFILE` to `want` (or the hard limit);
/// returns the soft limit in effect. Children (nginx, mosquitto) inherit it.
pub fn raise_nofile(want: u64) -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on our own process with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 0;
        }
        if r.rlim_cur < want {
            if r.rlim_max < want {
                // Root may raise the hard limit too.
                let raised = libc::rlimit {
                    rlim_cur: want,
                    rlim_max: want,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    return want;
                }
            }
            r.rlim_cur = want.min(r.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
    }
    r.rlim_cur
}

/// [`main_context`] with `worker_connections` raised to `connections` (two
/// per proxied session), and `worker_rlimit_nofile` when the descriptors
/// nginx inherits from this process would not be enough (it is left out
/// otherwise: under valgrind, raising it fails).
pub fn main_context_with(prefix: &Path, connections: usize) -> String {
    let main = main_context(prefix);
    assert!(main.contains("worker_connections 256;"), "{main}");
    let main = main.replace(
        "worker_connections 256;",
        &format!("worker_connections {connections};"),
    );
    let needed = connections as u64 + 64;
    if needed <= current_nofile() {
        return main;
    }
    main.replacen(
        "events {",
        &format!("worker_rlimit_nofile {needed};\nevents {{"),
        1,
    )
}

/// This process's soft `RLIMIT_NOFILE`.
pub fn current_nofile() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit with a valid struct.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    r.rlim_cur
}

/// One `server {}` of a [`Gateway`].
pub struct Server {
    pub name: &'static str,
    pub tls: Option<&'static str>,
    pub directives: String,
}

impl Server {
    pub fn plain(name: &'static str, directives: &str) -> Server {
        Server {
            name,
            tls: None,
            directives: directives.to_owned(),
        }
    }

    pub fn tls(name: &'static str, verify: &'static str, directives: &str) -> Server {
        Server {
            name,
            tls: Some(verify),
            directives: directives.to_owned(),
        }
    }
}

/// Three brokers behind nginx (`hash $mqtt_client_id consistent`), with the
/// access log in [`conn_log_format`] and a main context sized for
/// `connections`.
pub struct Gateway {
    pub brokers: Vec<Broker>,
    pub nginx: Nginx,
    pub ports: BTreeMap<&'static str, u16>,
    /// Extra text for each `server` line of the upstream (e.g. `max_fails`).
    pub upstream_params: String,
    pub connections: usize,
}

impl Gateway {
    pub fn start(servers: &[Server], connections: usize, upstream_params: &str) -> Gateway {
        let brokers: Vec<Broker> = broker::three().into_iter().collect();
        let ports: BTreeMap<&'static str, u16> =
            servers.iter().map(|s| (s.name, free_port())).collect();
        let body = body(&brokers, servers, &ports, upstream_params);
        let nginx = Nginx::start_with(
            |prefix| conf(prefix, connections, &body),
            &ports.values().copied().collect::<Vec<_>>(),
        );
        Gateway {
            brokers,
            nginx,
            ports,
            upstream_params: upstream_params.to_owned(),
            connections,
        }
    }

    pub fn port(&self, name: &str) -> u16 {
        self.ports[name]
    }

    /// The whole nginx.conf for `servers` (to reload with).
    pub fn conf(&self, servers: &[Server]) -> String {
        conf(
            &self.nginx.prefix,
            self.connections,
            &body(&self.brokers, servers, &self.ports, &self.upstream_params),
        )
    }

    /// Index of the broker at `$upstream_addr`.
    pub fn broker_index(&self, upstream_addr: &str) -> Option<usize> {
        self.brokers.iter().position(|b| b.addr() == upstream_addr)
    }
}

fn conf(prefix: &Path, connections: usize, body: &str) -> String {
    let p = prefix.display();
    format!(
        "{main}stream {{\nlog_format mqtt '{fmt}';\naccess_log {p}/access.log mqtt;\n{body}}}\n",
        main = main_context_with(prefix, connections),
        fmt = conn_log_format(),
    )
}

fn body(
    brokers: &[Broker],
    servers: &[Server],
    ports: &BTreeMap<&'static str, u16>,
    upstream_params: &str,
) -> String {
    let refs: Vec<&Broker> = brokers.iter().collect();
    let mut out = hashed_upstream("brokers", &refs);
    if !upstream_params.is_empty() {
        for b in brokers {
            out = out.replace(
                &format!("server {};", b.addr()),
                &format!("server {} {upstream_params};", b.addr()),
            );
        }
    }
    for s in servers {
        let (ssl, tls) = match s.tls {
            Some(verify) => (" ssl", tls_directives(pki(), verify)),
            None => ("", String::new()),
        };
        out.push_str(&format!(
            "server {{\n    listen 127.0.0.1:{port}{ssl};\n    proxy_pass brokers;\n    {tls}    {d}\n}}\n",
            port = ports[s.name],
            d = s.directives
        ));
    }
    out
}

/// A device over plain TCP: CONNECT, then the CONNACK from the broker.
/// Returns the session or why it failed; never
/// panics, so callers can count failures.
pub fn device_connect(port: u16, version: Version, client_id: &str) -> Result<SessionKey, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("{client_id}: connect: {e}"))?;
    let session = SessionKey {
        client: tcp.local_addr().map_err(|e| e.to_string())?,
        server_port: port,
    };
    tcp.set_nodelay(true).ok();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).ok();
    tcp.write_all(&connect_packet(version, client_id))
        .map_err(|e| format!("{client_id}: send: {e}"))?;
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < 4 && Instant::now() < deadline {
        match tcp.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => return Err(format!("{client_id}: read: {e} after {got:02x?}")),
        }
    }
    // 3.x: 20 02 <flags> 00; 5.0: 20 <len> <flags> 00 <props>.
    if got.len() >= 4 && got[0] == 0x20 && got[3] == 0x00 {
        // DISCONNECT, so the broker does not log a lost connection.
        let _ = tcp.write_all(&[0xe0, 0x00]);
        let _ = tcp.shutdown(Shutdown::Write);
        let _ = tcp.read(&mut buf);
        Ok(session)
    } else {
        Err(format!("{client_id}: no successful CONNACK: {got:02x?}"))
    }
}

/// Resident set size of `pid` in KiB (VmRSS).
pub fn rss_kib(pid: u32) -> u64 {
    read_lossy(Path::new(&format!("/proc/{pid}/status")))
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The module's rejection lines in the error log, by connection number
/// (`*N`).
pub fn reject_lines(error_log: &str) -> HashMap<String, String> {
    error_log
        .lines()
        .filter(|l| l.contains("mqtt preread: rejected ("))
        .filter_map(|l| {
            let star = l.find(" *")?;
            let conn: String = l[star + 2..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            Some((conn, l.to_owned()))
        })
        .collect()
}

/// Lines of the error log that show a crash or an internal error
/// (`exited on signal`, `[alert]`, `[emerg]`, `[crit]`).
pub fn serious_lines(error_log: &str) -> Vec<String> {
    error_log
        .lines()
        .filter(|l| {
            l.contains("exited on signal")
                || l.contains("[alert]")
                || l.contains("[emerg]")
                || l.contains("[crit]")
        })
        .map(str::to_owned)
        .collect()
}

/// The worker PIDs once there are `n` (nginx listens before it forks them,
/// which under valgrind takes a while).
pub fn wait_workers(nginx: &Nginx, n: usize) -> Vec<u32> {
    super::wait_until(super::DEADLINE, &format!("{n} nginx workers"), || {
        let pids = nginx.worker_pids();
        (pids.len() == n).then_some(pids)
    })
}
