//! nginx with the module loaded, run in the foreground (`daemon off`) with a
//! master process, in a temporary prefix.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::client::SessionKey;
use super::{
    module_path, nginx_path, preload_modules, read_lossy, signal, stop_child, wait_for_port,
    wait_until, DEADLINE,
};

/// The access log fields, tab separated (tabs inside values are escaped by
/// nginx as `\x09`).
pub const ACCESS_LOG_FORMAT: &str = "$remote_addr\t$mqtt_client_id\t$mqtt_reject_reason\t$status\t\
     $upstream_addr\t$mqtt_protocol_version\t$mqtt_username\t$mqtt_cert_cn\t\
     $mqtt_preread_clientid\t$mqtt_preread_username\t$remote_port\t$server_port";

/// One access-log line. Empty and unset variables both read as "".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessEntry {
    pub remote_addr: String,
    pub client_id: String,
    pub reject_reason: String,
    pub status: String,
    pub upstream_addr: String,
    pub protocol_version: String,
    pub username: String,
    pub cert_cn: String,
    pub preread_clientid: String,
    pub preread_username: String,
    /// The client's port and the listener's: together they tell the raw
    /// clients' sessions apart.
    pub remote_port: String,
    pub server_port: String,
    /// Fields after the standard ones (tests that change the format).
    pub extra: Vec<String>,
}

impl AccessEntry {
    /// How the session ended: `($status, $mqtt_reject_reason)`.
    pub fn outcome(&self) -> (&str, &str) {
        (&self.status, &self.reject_reason)
    }

    pub fn parse(line: &str) -> Option<AccessEntry> {
        let mut fields: Vec<String> = line.split('\t').map(unescape).collect();
        if fields.len() < 12 {
            return None;
        }
        let extra = fields.split_off(12);
        let [remote_addr, client_id, reject_reason, status, upstream_addr, protocol_version, username, cert_cn, preread_clientid, preread_username, remote_port, server_port] =
            <[String; 12]>::try_from(fields).ok()?;
        Some(AccessEntry {
            remote_port,
            server_port,
            extra,
            remote_addr,
            client_id,
            reject_reason,
            status,
            upstream_addr,
            protocol_version,
            username,
            cert_cn,
            preread_clientid,
            preread_username,
        })
    }
}

/// Undoes nginx's default log escaping (`\xHH` for `"`, `\`, control and
/// non-ASCII bytes) and maps nginx's "-" for an empty value to "".
fn unescape(field: &str) -> String {
    if field == "-" {
        return String::new();
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'x') && i + 4 <= bytes.len() {
            if let Ok(byte) = u8::from_str_radix(&field[i + 2..i + 4], 16) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub struct Nginx {
    pub prefix: PathBuf,
    pub conf: PathBuf,
    pub error_log: PathBuf,
    pub access_log: PathBuf,
    /// Ports of the `listen` directives, checked for readiness.
    pub ports: Vec<u16>,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx with the standard main context (the module loaded, the
    /// error log at `info`, the access log in [`ACCESS_LOG_FORMAT`]) around
    /// `stream_body`, the inside of the `stream {}` block. `{prefix}` in it is
    /// replaced by the prefix directory. Waits until every port in `ports`
    /// accepts connections.
    pub fn start(stream_body: &str, ports: &[u16]) -> Nginx {
        Self::start_with(
            |prefix| standard_conf(prefix, ACCESS_LOG_FORMAT, stream_body),
            ports,
        )
    }

    /// Starts nginx with a whole configuration file made by `conf` from the
    /// prefix directory (use [`main_context`] for the usual first lines).
    pub fn start_with(conf: impl FnOnce(&Path) -> String, ports: &[u16]) -> Nginx {
        let dir = tempfile::Builder::new()
            .prefix("e2e-nginx-")
            .tempdir()
            .expect("tempdir");
        let prefix = dir.path().to_path_buf();
        let conf_path = prefix.join("nginx.conf");
        std::fs::write(&conf_path, conf(&prefix)).expect("write nginx.conf");
        let error_log = prefix.join("error.log");
        // Check the configuration first: a clear failure beats a timeout.
        let test = check_conf(&prefix, &conf_path);
        assert!(
            test.status.success(),
            "nginx -t failed:\n{}\n--- nginx.conf ---\n{}",
            String::from_utf8_lossy(&test.stderr),
            read_lossy(&conf_path)
        );
        let mut child = nginx_command(&prefix, &conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        for &port in ports {
            wait_for_port(port, Some(&mut child), "nginx");
        }
        Nginx {
            access_log: prefix.join("access.log"),
            error_log,
            conf: conf_path,
            prefix,
            ports: ports.to_vec(),
            child,
            _dir: dir,
        }
    }

    pub fn master_pid(&self) -> u32 {
        self.child.id()
    }

    pub fn error_log_text(&self) -> String {
        read_lossy(&self.error_log)
    }

    pub fn access_entries(&self) -> Vec<AccessEntry> {
        read_lossy(&self.access_log)
            .lines()
            .filter_map(AccessEntry::parse)
            .collect()
    }

    /// Waits for the first access-log entry that `pred` accepts.
    pub fn wait_access(&self, what: &str, pred: impl Fn(&AccessEntry) -> bool) -> AccessEntry {
        wait_until(DEADLINE, &format!("access log entry: {what}"), || {
            self.access_entries().into_iter().find(|e| pred(e))
        })
    }

    /// Waits for the access-log entry of the raw client session `session`
    /// ([`RawClient::session`](super::RawClient::session)).
    pub fn wait_access_session(&self, session: SessionKey) -> AccessEntry {
        self.wait_access(&format!("session {session:?}"), |e| session.matches(e))
    }

    /// Waits for the access-log entry of `client_id`.
    pub fn wait_access_for(&self, client_id: &str) -> AccessEntry {
        self.wait_access(client_id, |e| e.client_id == client_id)
    }

    /// Waits for an error-log line containing all of `needles`.
    pub fn wait_error_line(&self, needles: &[&str]) -> String {
        super::wait_for_line(&self.error_log, needles)
    }

    /// The PIDs of the master's children (the workers).
    pub fn worker_pids(&self) -> Vec<u32> {
        children_of(self.master_pid())
    }

    /// `nginx -s reload`: rewrites nginx.conf (when `conf` is given), sends
    /// SIGHUP to the master and waits until a new generation of workers runs
    /// and the old ones no longer accept connections.
    pub fn reload(&self, conf: Option<String>) {
        if let Some(conf) = conf {
            std::fs::write(&self.conf, conf).expect("rewrite nginx.conf");
        }
        let old = self.worker_pids();
        let log_len = read_lossy(&self.error_log).len();
        signal(self.master_pid(), libc::SIGHUP);
        wait_until(DEADLINE, "new workers after reload", || {
            let tail = read_lossy(&self.error_log)
                .get(log_len..)
                .map(str::to_owned)
                .unwrap_or_default();
            assert!(
                !tail.contains("[emerg]"),
                "reload rejected the configuration:\n{tail}"
            );
            let now = self.worker_pids();
            // Until the old workers log this they still accept connections.
            let old_stopped_accepting = old.is_empty() || tail.contains("gracefully shutting down");
            (tail.contains("reconfiguring")
                && old_stopped_accepting
                && now.iter().any(|pid| !old.contains(pid)))
            .then_some(())
        });
    }

    /// Panics when a worker crashed: nginx's master logs "exited on signal".
    pub fn assert_no_crash(&self) {
        let log = self.error_log_text();
        let crashes: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("exited on signal"))
            .collect();
        assert!(
            crashes.is_empty(),
            "nginx worker crashed:\n{}",
            crashes.join("\n")
        );
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGKILL on the master would orphan the workers, so note them first.
        let workers = self.worker_pids();
        stop_child(&mut self.child, libc::SIGQUIT, Duration::from_secs(5));
        for pid in workers {
            if Path::new(&format!("/proc/{pid}")).exists() {
                signal(pid, libc::SIGKILL);
            }
        }
        if std::thread::panicking() {
            // The test failed: show what nginx saw (captured with the failure).
            eprintln!("--- nginx error.log ---\n{}", self.error_log_text());
            eprintln!("--- nginx access.log ---\n{}", read_lossy(&self.access_log));
        } else {
            self.assert_no_crash();
        }
    }
}

/// The PIDs whose parent is `parent`, from /proc.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces.
            let stat = read_lossy(Path::new(&format!("/proc/{pid}/stat")));
            let after_comm = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
            after_comm
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u32>().ok())
                == Some(parent)
        })
        .collect()
}

/// nginx with `prefix`, `conf` and the start-up error log `prefix/error.log`.
pub fn nginx_command(prefix: &Path, conf: &Path) -> Command {
    let mut command = Command::new(nginx_path());
    command
        .arg("-p")
        .arg(prefix)
        .arg("-c")
        .arg(conf)
        .arg("-e")
        .arg(prefix.join("error.log"));
    command
}

/// `nginx -t` on `conf`.
pub fn check_conf(prefix: &Path, conf: &Path) -> std::process::Output {
    nginx_command(prefix, conf)
        .arg("-t")
        .output()
        .expect("run nginx -t")
}

/// The main context every test configuration starts with: foreground master
/// with one worker, logs and pid in the prefix, and the module loaded
/// (after `$MQTT_TEST_PRELOAD`).
pub fn main_context(prefix: &Path) -> String {
    let mut conf = format!(
        "daemon off;\n\
         master_process on;\n\
         worker_processes 1;\n\
         error_log {prefix}/error.log info;\n\
         pid {prefix}/nginx.pid;\n",
        prefix = prefix.display()
    );
    for module in preload_modules() {
        conf.push_str(&format!("load_module {};\n", module.display()));
    }
    conf.push_str(&format!("load_module {};\n", module_path().display()));
    conf.push_str("events {\n    worker_connections 256;\n}\n");
    conf
}

/// [`main_context`] plus a `stream {}` block with the access log in
/// `log_format` and `stream_body`.
pub fn standard_conf(prefix: &Path, log_format: &str, stream_body: &str) -> String {
    let prefix_text = prefix.display().to_string();
    format!(
        "{main}\
         stream {{\n\
         log_format mqtt '{log_format}';\n\
         access_log {prefix_text}/access.log mqtt;\n\
         {body}\n\
         }}\n",
        main = main_context(prefix),
        body = stream_body.replace("{prefix}", &prefix_text),
    )
}

/// The `ngx_stream_js_module.so` built for the nginx under test, from
/// `$MQTT_TEST_NJS` (scripts/test.sh sets it for Debian's nginx). Without it,
/// says that the calling test skips.
pub fn njs_module() -> Option<PathBuf> {
    let njs = std::env::var_os("MQTT_TEST_NJS").map(PathBuf::from);
    if njs.is_none() {
        eprintln!("skipped: set MQTT_TEST_NJS to an ngx_stream_js_module.so for this nginx");
    }
    njs
}

/// Where another module is loaded, relative to this one. nginx runs a
/// phase's handlers in reverse order of loading: the module loaded last
/// reads first.
pub enum Load {
    BeforeThisModule,
    AfterThisModule,
}

/// [`standard_conf`] that also loads `module`, next to this module.
pub fn standard_conf_loading(
    prefix: &Path,
    log_format: &str,
    stream_body: &str,
    module: &Path,
    load: Load,
) -> String {
    let conf = standard_conf(prefix, log_format, stream_body);
    let ours = format!("load_module {};", module_path().display());
    let other = format!("load_module {};", module.display());
    let both = match load {
        Load::BeforeThisModule => format!("{other}\n{ours}"),
        Load::AfterThisModule => format!("{ours}\n{other}"),
    };
    assert!(conf.contains(&ours), "no load_module line for this module");
    conf.replacen(&ours, &both, 1)
}

/// A `server {}` that proxies `listen_port` to an upstream named `upstream`
/// with `directives` inside, as most scenarios need.
pub fn server(listen: &str, upstream: &str, directives: &str) -> String {
    format!("server {{\n    listen {listen};\n    proxy_pass {upstream};\n    {directives}\n}}\n")
}

/// `upstream <name> { hash $mqtt_client_id consistent; server ...; }`.
pub fn hashed_upstream(name: &str, brokers: &[&super::Broker]) -> String {
    let mut out = format!("upstream {name} {{\n    hash $mqtt_client_id consistent;\n");
    for broker in brokers {
        out.push_str(&format!("    server {};\n", broker.addr()));
    }
    out.push_str("}\n");
    out
}

/// The TLS directives for a listener using the test PKI.
pub fn tls_directives(pki: &super::Pki, verify: &str) -> String {
    format!(
        "ssl_certificate {};\n    ssl_certificate_key {};\n    \
         ssl_client_certificate {};\n    ssl_verify_client {verify};\n    ssl_verify_depth 2;\n",
        pki.server_chain.display(),
        pki.server_key.display(),
        pki.ca_chain.display()
    )
}
