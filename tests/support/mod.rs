//! Fixtures shared by the end-to-end scenarios: a PKI made with the openssl
//! CLI, mosquitto brokers, nginx with the module loaded, and clients (the
//! mosquitto CLI tools and a raw-socket client for byte-level cases).
//!
//! Every fixture lives in a temporary directory on 127.0.0.1 and is torn
//! down by a `Drop` guard that stops its processes by PID, so a failing test
//! leaves nothing running behind.

// Each scenario file is its own crate and uses a different subset.
#![allow(dead_code, unused_imports)]

pub mod broker;
pub mod client;
pub mod deployment;
pub mod malformed;
pub mod nginx;
pub mod pki;
pub mod prometheus;
pub mod reliability;

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

pub use broker::Broker;
pub use client::{MqttCli, RawClient, ReadEnd, SessionKey, Version};
pub use deployment::{Deployment, Listener};
pub use nginx::Nginx;
pub use pki::{pki, Pki};

/// The default deadline for anything that should happen "soon".
pub const DEADLINE: Duration = Duration::from_secs(10);

/// `target/<profile>` of the build these tests belong to, found from the test
/// executable (`target/<profile>/deps/<test>-<hash>`) so that any
/// `CARGO_TARGET_DIR` works.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps")
        .to_path_buf()
}

/// The module under test: `$MQTT_TEST_MODULE` or the cdylib of this build.
pub fn module_path() -> PathBuf {
    if let Some(path) = std::env::var_os("MQTT_TEST_MODULE") {
        return PathBuf::from(path);
    }
    let path = profile_dir().join("libngx_stream_mqtt_preread_module.so");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build` first or set MQTT_TEST_MODULE",
        path.display()
    );
    path
}

/// The nginx binary: `$MQTT_TEST_NGINX` or the one the vendored build made
/// (the most recently built when several `nginx-sys-*` dirs exist).
pub fn nginx_path() -> PathBuf {
    if let Some(path) = std::env::var_os("MQTT_TEST_NGINX") {
        return PathBuf::from(path);
    }
    let build = profile_dir().join("build");
    let newest = std::fs::read_dir(&build)
        .unwrap_or_else(|e| panic!("{}: {e}", build.display()))
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with("nginx-sys-")
        })
        .map(|entry| entry.path().join("out/objs/nginx"))
        .filter_map(|path| {
            let modified = path.metadata().and_then(|m| m.modified()).ok()?;
            Some((modified, path))
        })
        .max();
    match newest {
        Some((_, path)) => path,
        None => panic!(
            "no {}/nginx-sys-*/out/objs/nginx: build with the vendored feature or set MQTT_TEST_NGINX",
            build.display()
        ),
    }
}

/// Modules to `load_module` before ours (`$MQTT_TEST_PRELOAD`, space
/// separated), e.g. Debian's dynamic `ngx_stream_module.so`.
pub fn preload_modules() -> Vec<PathBuf> {
    std::env::var("MQTT_TEST_PRELOAD")
        .unwrap_or_default()
        .split_whitespace()
        .map(PathBuf::from)
        .collect()
}

/// A port on 127.0.0.1 that was free a moment ago. Ports are drawn at random
/// below the kernel's ephemeral range, so neither parallel test processes
/// nor the clients' own outgoing connections are likely to take them, and a
/// port is never handed out twice in one process.
pub fn free_port() -> u16 {
    static TAKEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    let taken = taken.get_or_insert_with(HashSet::new);
    let seed = std::collections::hash_map::RandomState::new();
    for attempt in 0u64..1000 {
        let mut hasher = seed.build_hasher();
        hasher.write_u64(attempt);
        hasher.write_u32(std::process::id());
        let port = 20000 + (hasher.finish() % 12000) as u16;
        if taken.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            taken.insert(port);
            return port;
        }
    }
    panic!("no free port found");
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
/// `child` is the process expected to listen: if it exits first, that is
/// reported at once instead of waiting for the deadline.
pub fn wait_for_port(port: u16, mut child: Option<&mut Child>, what: &str) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
        if let Some(child) = child.as_deref_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{what} exited ({status}) before listening on port {port}");
            }
        }
        assert!(
            Instant::now() < deadline,
            "{what} never listened on port {port}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `probe` until it returns `Some`, or panics with `what` after
/// `timeout`.
pub fn wait_until<T>(timeout: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(25));
    }
}

/// The file's contents, or empty when it does not exist (yet).
pub fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

/// Waits until the file has a line containing every one of `needles`, and
/// returns that line.
pub fn wait_for_line(path: &Path, needles: &[&str]) -> String {
    wait_until(
        DEADLINE,
        &format!("a line with {needles:?} in {}", path.display()),
        || {
            read_lossy(path)
                .lines()
                .find(|line| needles.iter().all(|n| line.contains(n)))
                .map(str::to_owned)
        },
    )
}

/// Sends `signal` to `pid`.
pub fn signal(pid: u32, signal: i32) {
    let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Stops a child: `first` (e.g. SIGTERM), then SIGKILL if it has not exited
/// within `grace`; always reaps it.
pub fn stop_child(child: &mut Child, first: i32, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    signal(child.id(), first);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Replaces every `key` in `template` with its value. Panics when a key does
/// not occur, so a template and its test cannot silently drift apart.
pub fn render(template: &str, replacements: &[(&str, String)]) -> String {
    let mut out = template.to_owned();
    for (key, value) in replacements {
        assert!(out.contains(key), "template has no {key:?}");
        out = out.replace(key, value);
    }
    out
}

/// The repository's `nginx-conf/<name>`, for tests that run the shipped
/// example configurations through [`render`].
pub fn repo_conf(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("nginx-conf")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// An upstream on 127.0.0.1 that echoes every connection back to itself,
/// until the test process ends: the device reads exactly what nginx
/// forwarded.
pub fn echo_server() -> u16 {
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the echo server");
    let port = listener.local_addr().expect("local_addr").port();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 8192];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}
