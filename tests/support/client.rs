//! Clients: the mosquitto CLI tools as subprocesses, and a raw-socket client
//! (plain TCP or rustls with a client certificate) for byte-level cases.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use mqtt_core::packet::encode::{ConnectBuilder, PropValue, Will};
use mqtt_core::packet::{property_id, ProtocolLevel};
use socket2::{Domain, Socket, Type};

use super::nginx::AccessEntry;
use super::pki::{ClientCert, Pki};
use super::{stop_child, DEADLINE};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V31,
    V311,
    V5,
}

impl Version {
    pub const ALL: [Version; 3] = [Version::V31, Version::V311, Version::V5];

    /// mosquitto's `-V` value.
    pub fn cli_name(self) -> &'static str {
        match self {
            Version::V31 => "mqttv31",
            Version::V311 => "mqttv311",
            Version::V5 => "mqttv5",
        }
    }

    /// The protocol level.
    pub fn level(self) -> ProtocolLevel {
        match self {
            Version::V31 => ProtocolLevel::V31,
            Version::V311 => ProtocolLevel::V311,
            Version::V5 => ProtocolLevel::V5,
        }
    }

    /// `$mqtt_protocol_version`.
    pub fn number(self) -> &'static str {
        match self {
            Version::V31 => "3",
            Version::V311 => "4",
            Version::V5 => "5",
        }
    }
}

/// A CONNECT with this ClientId and nothing else.
pub fn connect_packet(version: Version, client_id: &str) -> Vec<u8> {
    Connect::new(version, client_id).encode()
}

/// The CONNECTs the end-to-end tests send: a clean session, keep alive 60,
/// and the fields they set, encoded by the core crate's encoder.
#[derive(Clone, Debug)]
pub struct Connect<'a> {
    pub version: Version,
    pub client_id: &'a str,
    pub username: Option<&'a str>,
    pub password: Option<&'a [u8]>,
    /// Will topic and payload (QoS 0).
    pub will: Option<(&'a str, &'a str)>,
    /// MQTT 5 User Properties in the CONNECT properties.
    pub user_properties: Vec<(&'a str, &'a str)>,
}

impl<'a> Connect<'a> {
    pub fn new(version: Version, client_id: &'a str) -> Self {
        Connect {
            version,
            client_id,
            username: None,
            password: None,
            will: None,
            user_properties: Vec::new(),
        }
    }

    pub fn builder(&self) -> ConnectBuilder<'a> {
        let mut b = ConnectBuilder::new(self.version.level(), self.client_id.as_bytes());
        b.username = self.username.map(str::as_bytes);
        b.password = self.password;
        b.will = self
            .will
            .map(|(topic, payload)| Will::new(topic.as_bytes(), payload.as_bytes()));
        b.properties = self
            .user_properties
            .iter()
            .map(|(k, v)| {
                (
                    property_id::USER_PROPERTY,
                    PropValue::Pair(k.as_bytes(), v.as_bytes()),
                )
            })
            .collect();
        b
    }

    pub fn encode(&self) -> Vec<u8> {
        self.builder().encode()
    }
}

/// A mosquitto_pub / mosquitto_sub invocation.
#[derive(Clone, Debug)]
pub struct MqttCli {
    port: u16,
    version: Version,
    client_id: Option<String>,
    tls: Option<(String, Option<ClientCert>)>,
    extra: Vec<String>,
}

/// What a finished mosquitto_pub printed.
#[derive(Debug)]
pub struct CliResult {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CliResult {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

impl MqttCli {
    pub fn new(port: u16, version: Version) -> MqttCli {
        MqttCli {
            port,
            version,
            client_id: None,
            tls: None,
            extra: Vec::new(),
        }
    }

    pub fn id(mut self, client_id: &str) -> MqttCli {
        self.client_id = Some(client_id.to_owned());
        self
    }

    /// TLS to nginx, trusting the test root, presenting `cert` if given.
    pub fn tls(mut self, pki: &Pki, cert: Option<&ClientCert>) -> MqttCli {
        self.tls = Some((pki.root.display().to_string(), cert.cloned()));
        self
    }

    pub fn arg(mut self, arg: &str) -> MqttCli {
        self.extra.push(arg.to_owned());
        self
    }

    pub fn args(mut self, args: &[&str]) -> MqttCli {
        self.extra.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    /// `argv` is the program and any wrapper arguments before the options.
    fn command(&self, argv: &[&str]) -> Command {
        let mut cmd = Command::new(argv[0]);
        cmd.args(&argv[1..]);
        cmd.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-V",
            self.version.cli_name(),
        ]);
        if let Some(id) = &self.client_id {
            cmd.args(["-i", id]);
        }
        if let Some((cafile, cert)) = &self.tls {
            // The server certificate names localhost; we connect to 127.0.0.1.
            cmd.args(["--cafile", cafile, "--insecure"]);
            if let Some(cert) = cert {
                cmd.arg("--cert")
                    .arg(&cert.chain)
                    .arg("--key")
                    .arg(&cert.key);
            }
        }
        cmd.args(&self.extra);
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs `mosquitto_pub -t topic -m message` to completion (10 s limit).
    pub fn publish(&self, topic: &str, message: &str) -> CliResult {
        let mut cmd = self.command(&["mosquitto_pub"]);
        cmd.args(["-t", topic, "-m", message]);
        run_with_timeout(cmd, DEADLINE)
    }

    /// Starts `mosquitto_sub -d -t topic` and waits for its SUBACK.
    pub fn subscribe(&self, topic: &str) -> Subscriber {
        // mosquitto_sub's debug lines are not flushed when stdout is a pipe;
        // stdbuf makes them line buffered so the SUBACK can be waited for.
        let mut cmd = self.command(&["stdbuf", "-oL", "mosquitto_sub"]);
        cmd.args(["-d", "-t", topic]);
        let sub = Subscriber::spawn(cmd);
        sub.wait_line("SUBACK", |l| l.contains("received SUBACK"));
        sub
    }
}

fn run_with_timeout(mut cmd: Command, timeout: Duration) -> CliResult {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mosquitto client");
    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    let deadline = Instant::now() + timeout;
    let code = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status.code();
        }
        if Instant::now() >= deadline {
            stop_child(&mut child, libc::SIGKILL, Duration::ZERO);
            break None;
        }
        thread::sleep(Duration::from_millis(10));
    };
    CliResult {
        code,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// A running mosquitto_sub; its stdout lines (debug output and messages)
/// arrive on a channel. Stopped by PID on drop.
pub struct Subscriber {
    child: Child,
    lines: Receiver<String>,
    seen: std::cell::RefCell<Vec<String>>,
}

impl Subscriber {
    fn spawn(mut cmd: Command) -> Subscriber {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mosquitto_sub");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Subscriber {
            child,
            lines,
            seen: Default::default(),
        }
    }

    /// Waits for a stdout line matching `pred` (lines already seen count).
    pub fn wait_line(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        if let Some(line) = self.seen.borrow().iter().find(|l| pred(l)) {
            return line.clone();
        }
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.borrow_mut().push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "mosquitto_sub: no line {what:?} in time; output so far:\n{}",
                    self.seen.borrow().join("\n")
                ),
            }
        }
    }

    /// Waits until the message `payload` is printed.
    pub fn wait_message(&self, payload: &str) {
        self.wait_line(payload, |l| l == payload);
    }

    /// Whether `payload` has been printed so far (without waiting).
    pub fn has_printed(&self, payload: &str) -> bool {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.borrow_mut().push(line);
        }
        self.seen.borrow().iter().any(|l| l == payload)
    }

    /// Whether the process is still running (its connection still up).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        stop_child(&mut self.child, libc::SIGTERM, Duration::from_secs(2));
    }
}

/// A TCP or TLS connection driven byte by byte.
pub struct RawClient {
    stream: Stream,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// How a read ended.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadEnd {
    /// The peer closed (EOF or reset) after sending these bytes.
    Closed(Vec<u8>),
    /// Still open at the deadline, with these bytes received.
    Open(Vec<u8>),
    /// A TLS or socket error, after these bytes.
    Error(Vec<u8>, String),
}

impl ReadEnd {
    pub fn bytes(&self) -> &[u8] {
        match self {
            ReadEnd::Closed(b) | ReadEnd::Open(b) | ReadEnd::Error(b, _) => b,
        }
    }

    pub fn is_closed(&self) -> bool {
        !matches!(self, ReadEnd::Open(_))
    }
}

/// One raw-client session as nginx's access log shows it: the client's
/// address and port (`$remote_addr`, `$remote_port`) and the listener's port
/// (`$server_port`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionKey {
    pub client: SocketAddr,
    pub server_port: u16,
}

impl SessionKey {
    pub fn matches(&self, e: &AccessEntry) -> bool {
        e.remote_port == self.client.port().to_string()
            && e.server_port == self.server_port.to_string()
            && e.remote_addr == self.client.ip().to_string()
    }
}

/// Connects to 127.0.0.1:`port` from a loopback address no other connection
/// of this test process has used. Ephemeral ports are recycled quickly when
/// tests run in parallel, so a port alone could name two sessions of the
/// same nginx; an address of its own keeps every session's key unique.
fn connect_from_fresh_source(port: u16) -> TcpStream {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    // 127.1.0.1 onwards, last octet 1..=254: about 16 million addresses.
    let source = Ipv4Addr::new(
        127,
        1 + ((n / (254 * 256)) % 250) as u8,
        ((n / 254) % 256) as u8,
        1 + (n % 254) as u8,
    );
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    socket
        .bind(&SocketAddr::from((source, 0)).into())
        .expect("bind a loopback source");
    socket
        .connect(&SocketAddr::from(([127, 0, 0, 1], port)).into())
        .expect("connect");
    TcpStream::from(socket)
}

impl RawClient {
    pub fn plain(port: u16) -> RawClient {
        let tcp = connect_from_fresh_source(port);
        tcp.set_nodelay(true).expect("nodelay");
        RawClient {
            stream: Stream::Plain(tcp),
        }
    }

    /// TLS to nginx, trusting the test root, presenting `cert` if given.
    /// The handshake runs on first use.
    pub fn tls(port: u16, pki: &Pki, cert: Option<&ClientCert>) -> RawClient {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&pki.root).expect("root PEM") {
            roots.add(cert.expect("root cert")).expect("add root");
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots);
        let config = match cert {
            Some(cert) => {
                let chain = CertificateDer::pem_file_iter(&cert.chain)
                    .expect("client chain")
                    .collect::<Result<Vec<_>, _>>()
                    .expect("client chain PEM");
                let key = PrivateKeyDer::from_pem_file(&cert.key).expect("client key");
                builder
                    .with_client_auth_cert(chain, key)
                    .expect("client auth cert")
            }
            None => builder.with_no_client_auth(),
        };
        let name = ServerName::try_from("localhost").expect("server name");
        let conn =
            rustls::ClientConnection::new(Arc::new(config), name).expect("client connection");
        let tcp = connect_from_fresh_source(port);
        tcp.set_nodelay(true).expect("nodelay");
        RawClient {
            stream: Stream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp))),
        }
    }

    /// What finds this session in the access log.
    pub fn session(&self) -> SessionKey {
        let tcp = self.tcp();
        SessionKey {
            client: tcp.local_addr().expect("local_addr"),
            server_port: tcp.peer_addr().expect("peer_addr").port(),
        }
    }

    /// Half-closes: the peer reads EOF, we can still read.
    pub fn shutdown_write(&mut self) {
        if let Stream::Tls(tls) = &mut self.stream {
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
        let _ = self.tcp().shutdown(std::net::Shutdown::Write);
    }

    fn tcp(&self) -> &TcpStream {
        match &self.stream {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref(),
        }
    }

    /// Sends `bytes` (completing the TLS handshake first if needed).
    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Sends `bytes` one at a time with `gap` between them.
    pub fn send_bytewise(&mut self, bytes: &[u8], gap: Duration) -> std::io::Result<()> {
        for byte in bytes {
            self.send(std::slice::from_ref(byte))?;
            thread::sleep(gap);
        }
        Ok(())
    }

    /// Reads until `want` bytes arrived, the peer closed, or `timeout`.
    pub fn read_up_to(&mut self, want: usize, timeout: Duration) -> ReadEnd {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || got.len() >= want {
                return ReadEnd::Open(got);
            }
            self.tcp()
                .set_read_timeout(Some(left))
                .expect("read timeout");
            match self.stream.read(&mut buf) {
                Ok(0) => return ReadEnd::Closed(got),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return ReadEnd::Open(got)
                }
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return ReadEnd::Closed(got),
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => return ReadEnd::Closed(got),
                Err(e) => return ReadEnd::Error(got, e.to_string()),
            }
        }
    }

    /// Reads until the peer closes or `timeout` passes.
    pub fn read_to_close(&mut self, timeout: Duration) -> ReadEnd {
        self.read_up_to(usize::MAX, timeout)
    }

    /// Reads one CONNACK (fixed header, remaining length, body).
    pub fn read_connack(&mut self, timeout: Duration) -> ReadEnd {
        let head = self.read_up_to(2, timeout);
        let bytes = head.bytes().to_vec();
        if bytes.len() < 2 {
            return head;
        }
        let total = 2 + usize::from(bytes[1]);
        if bytes.len() >= total {
            return head;
        }
        let rest = self.read_up_to(total - bytes.len(), timeout);
        let mut all = bytes;
        all.extend_from_slice(rest.bytes());
        match rest {
            ReadEnd::Closed(_) => ReadEnd::Closed(all),
            ReadEnd::Open(_) => ReadEnd::Open(all),
            ReadEnd::Error(_, e) => ReadEnd::Error(all, e),
        }
    }
}
