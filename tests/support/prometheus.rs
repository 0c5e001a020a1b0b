//! A real Prometheus server (Debian's `/usr/bin/prometheus`) scraping one
//! target on 127.0.0.1, with its storage in a temporary directory, queried
//! through its HTTP API; and `promtool check metrics`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{free_port, read_lossy, stop_child, wait_until, DEADLINE};

/// `$MQTT_TEST_PROMETHEUS` or Debian's binary.
fn prometheus_path() -> PathBuf {
    std::env::var_os("MQTT_TEST_PROMETHEUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/usr/bin/prometheus".into())
}

/// `$MQTT_TEST_PROMTOOL` or Debian's binary.
fn promtool_path() -> PathBuf {
    std::env::var_os("MQTT_TEST_PROMTOOL")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/usr/bin/promtool".into())
}

/// One sample of a query's result: its labels and value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

pub struct Prometheus {
    pub port: u16,
    pub job: String,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `http://{target}{path}` every second as
    /// job `job`, and waits until it is ready.
    pub fn start(job: &str, target: &str, path: &str) -> Prometheus {
        let dir = tempfile::Builder::new()
            .prefix("e2e-prometheus-")
            .tempdir()
            .expect("tempdir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: {job}\n    metrics_path: {path}\n    \
                 static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("write prometheus.yml");
        let port = free_port();
        let log = dir.path().join("prometheus.log");
        let log_file = std::fs::File::create(&log).expect("prometheus.log");
        let child = Command::new(prometheus_path())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file)
            .spawn()
            .expect("spawn prometheus");
        let mut p = Prometheus {
            port,
            job: job.to_owned(),
            child,
            log,
            _dir: dir,
        };
        wait_until(DEADLINE, "prometheus ready", || {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("prometheus exited ({status}):\n{}", read_lossy(&p.log));
            }
            let (status, _) = http_get(&format!("127.0.0.1:{port}"), "/-/ready").ok()?;
            (status == 200).then_some(())
        });
        p
    }

    /// The result of the instant query `query`, evaluated now.
    pub fn query(&self, query: &str) -> Vec<Sample> {
        let path = format!("/api/v1/query?query={}", url_encode(query));
        let (status, body) =
            http_get(&format!("127.0.0.1:{}", self.port), &path).expect("query prometheus");
        let json: serde_json::Value = serde_json::from_slice(&body).expect("query result JSON");
        assert_eq!(status, 200, "{query}: {json}");
        assert_eq!(json["data"]["resultType"], "vector", "{query}: {json}");
        json["data"]["result"]
            .as_array()
            .expect("result array")
            .iter()
            .map(|r| Sample {
                labels: r["metric"]
                    .as_object()
                    .expect("metric labels")
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect(),
                value: r["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .expect("sample value"),
            })
            .collect()
    }

    /// Waits until Prometheus holds a successful scrape that started after
    /// now: from then on, a query reads what the target said after
    /// everything done before this call.
    pub fn wait_for_scrape(&self) {
        let after = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64();
        // timestamp() of a bare selector is the scrape's time (of any other
        // expression, the evaluation's).
        let up = format!("up{{job=\"{}\"}}", self.job);
        let scraped_at = format!("timestamp({up})");
        wait_until(
            Duration::from_secs(20),
            "a scrape after the last action",
            || {
                let fresh = self
                    .query(&scraped_at)
                    .first()
                    .is_some_and(|s| s.value > after);
                (fresh && self.query(&up).first().is_some_and(|s| s.value == 1.0)).then_some(())
            },
        );
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        stop_child(&mut self.child, libc::SIGTERM, Duration::from_secs(5));
        if std::thread::panicking() {
            eprintln!("--- prometheus log ---\n{}", read_lossy(&self.log));
        }
    }
}

/// `promtool check metrics` on `exposition`: its exit status and what it
/// printed.
pub fn promtool_check_metrics(exposition: &[u8]) -> (bool, String) {
    let mut child = Command::new(promtool_path())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    child
        .stdin
        .take()
        .expect("promtool stdin")
        .write_all(exposition)
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A plain HTTP/1.0 GET: the status and the body, or an I/O error.
pub fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    http_request(addr, "GET", path)
}

/// A plain HTTP/1.0 request without a body: the status and the body.
pub fn http_request(addr: &str, method: &str, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let (status, _, body) = http_exchange(addr, method, path)?;
    Ok((status, body))
}

/// A plain HTTP/1.0 request without a body: the status, the header lines
/// and the body.
pub fn http_exchange(
    addr: &str,
    method: &str,
    path: &str,
) -> std::io::Result<(u16, Vec<String>, Vec<u8>)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(DEADLINE))?;
    write!(s, "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = Vec::new();
    s.read_to_end(&mut response)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of the response header"))?;
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let mut lines = head.lines().map(str::to_owned);
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1).and_then(|c| c.parse().ok()))
        .ok_or_else(|| std::io::Error::other("no status line"))?;
    Ok((status, lines.collect(), response[split + 4..].to_vec()))
}

/// Percent-encodes everything but unreserved characters.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
