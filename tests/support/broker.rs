//! A mosquitto broker on 127.0.0.1 in its own temporary directory.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, read_lossy, stop_child, wait_for_port};

pub struct Broker {
    pub port: u16,
    /// mosquitto's own log (`log_type all`, connection messages on).
    pub log: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Broker {
    pub fn start() -> Broker {
        Self::start_on(free_port())
    }

    /// A broker on a given port (e.g. restarting one that was stopped).
    pub fn start_on(port: u16) -> Broker {
        Self::start_configured(port, None)
    }

    /// A broker whose topics are guarded by `acl`, the text of a mosquitto
    /// ACL file (`pattern readwrite devices/%u/#`, ...).
    pub fn with_acl(acl: &str) -> Broker {
        Self::start_configured(free_port(), Some(acl))
    }

    fn start_configured(port: u16, acl: Option<&str>) -> Broker {
        let dir = tempfile::Builder::new()
            .prefix("e2e-broker-")
            .tempdir()
            .expect("tempdir");
        let log = dir.path().join("mosquitto.log");
        let conf = dir.path().join("mosquitto.conf");
        let acl_line = match acl {
            Some(acl) => {
                let path = dir.path().join("acl");
                std::fs::write(&path, acl).expect("write the ACL file");
                format!("acl_file {}\n", path.display())
            }
            None => String::new(),
        };
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\n\
                 allow_anonymous true\n\
                 persistence false\n\
                 log_dest file {}\n\
                 log_type all\n\
                 connection_messages true\n\
                 # Started as root, mosquitto would drop to its own user and\n\
                 # could not write the log in this root-owned directory.\n\
                 user root\n\
                 {acl_line}",
                log.display()
            ),
        )
        .expect("write mosquitto.conf");
        let mut child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mosquitto");
        wait_for_port(port, Some(&mut child), "mosquitto");
        Broker {
            port,
            log,
            child,
            _dir: dir,
        }
    }

    /// `127.0.0.1:<port>`, as nginx's `$upstream_addr` shows it.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log_text(&self) -> String {
        read_lossy(&self.log)
    }

    /// Whether the broker logged a connection from this ClientId.
    pub fn saw_client(&self, client_id: &str) -> bool {
        self.log_text().lines().any(|line| {
            line.contains("New client connected") && line.contains(&format!(" as {client_id} "))
        })
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        stop_child(&mut self.child, libc::SIGTERM, Duration::from_secs(5));
    }
}

/// Three brokers, the usual upstream group.
pub fn three() -> [Broker; 3] {
    [Broker::start(), Broker::start(), Broker::start()]
}
