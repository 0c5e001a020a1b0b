//! One device session: TCP (+ mTLS), CONNECT, CONNACK, then PUBLISH /
//! DISCONNECT (`once`) or a held session that publishes periodically (`held`).

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;

use crate::mqtt;
use crate::pki::device_id;
use crate::stats::Stats;

pub struct Script {
    pub target: SocketAddr,
    /// First device of this process.
    pub offset: usize,
    /// Source addresses, connection i binds to sources[i mod len] (empty: the kernel's choice).
    pub sources: Vec<Ipv4Addr>,
    pub tls: Option<Vec<Arc<rustls::ClientConfig>>>,
    pub sni: ServerName<'static>,
    pub version: u8,
    pub prefix: String,
    pub devices: usize,
    pub mismatch: bool,
    pub publish: usize,
    pub payload: Vec<u8>,
    pub disconnect: bool,
    pub trickle: Option<Duration>,
    pub stall_after: Option<usize>,
    pub timeout: Duration,
    pub keep_alive: u16,
}

#[derive(Clone)]
pub struct Hold {
    pub duration: Duration,
    pub publish_interval: Option<Duration>,
    pub reconnect: bool,
    pub reconnect_jitter: Duration,
}

pub enum Outcome {
    /// The session was accepted; latency from start to CONNACK.
    Connack {
        latency_us: u64,
    },
    /// A stalled session that the gateway closed this long after the start.
    StallClosed {
        after_us: u64,
    },
    Error(&'static str),
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

fn client_id(s: &Script, i: usize) -> String {
    let id = device_id(&s.prefix, s.offset + i % s.devices);
    if s.mismatch {
        format!("{id}-not-my-cn")
    } else {
        id
    }
}

async fn open(s: &Script, i: usize) -> Result<Box<dyn Io>, &'static str> {
    let kind = |e: io::Error| match e.kind() {
        io::ErrorKind::ConnectionRefused => "tcp-connect-refused",
        io::ErrorKind::AddrNotAvailable => "tcp-connect-no-local-port",
        _ => "tcp-connect-error",
    };
    let tcp = match s.sources.get(i % s.sources.len().max(1)) {
        None => TcpStream::connect(s.target).await.map_err(kind)?,
        Some(src) => {
            let sock = TcpSocket::new_v4().map_err(kind)?;
            no_port_at_bind(&sock);
            sock.bind(SocketAddr::V4(SocketAddrV4::new(*src, 0)))
                .map_err(kind)?;
            sock.connect(s.target).await.map_err(kind)?
        }
    };
    let _ = tcp.set_nodelay(true);
    match &s.tls {
        None => Ok(Box::new(tcp)),
        Some(cfgs) => {
            let cfg = cfgs[i % cfgs.len()].clone();
            let tls = TlsConnector::from(cfg)
                .connect(s.sni.clone(), tcp)
                .await
                .map_err(|e| match e.kind() {
                    io::ErrorKind::UnexpectedEof => "tls-closed-in-handshake",
                    io::ErrorKind::ConnectionReset => "tls-reset-in-handshake",
                    _ => "tls-handshake-error",
                })?;
            Ok(Box::new(tls))
        }
    }
}

/// IP_BIND_ADDRESS_NO_PORT: the source port is picked at connect time for
/// the 4-tuple, as for an unbound socket, instead of reserving a port of the
/// whole ip_local_port_range at bind time (which would also take it from
/// every other process's outgoing connections).
fn no_port_at_bind(sock: &TcpSocket) {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: setsockopt on a socket we own, with a pointer to a live c_int
    // and its size; failure only leaves the default behaviour.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

fn read_error(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => "closed-before-connack",
        io::ErrorKind::ConnectionReset => "reset-before-connack",
        io::ErrorKind::InvalidData => "bad-packet-from-gateway",
        _ => "io-error-before-connack",
    }
}

/// Sends the CONNECT (all at once, trickled or stalled) and waits for CONNACK.
/// On success returns the open stream.
async fn connect(s: &Script, i: usize, start: Instant) -> Result<Box<dyn Io>, Outcome> {
    let mut io = open(s, i).await.map_err(Outcome::Error)?;
    let pkt = mqtt::connect(s.version, &client_id(s, i), s.keep_alive);
    let werr = |_| Outcome::Error("write-error-before-connack");
    if let Some(n) = s.stall_after {
        io.write_all(&pkt[..n.min(pkt.len())]).await.map_err(werr)?;
        io.flush().await.map_err(werr)?;
        let mut b = [0u8; 256];
        loop {
            match io.read(&mut b).await {
                Ok(0) | Err(_) => {
                    return Err(Outcome::StallClosed {
                        after_us: start.elapsed().as_micros() as u64,
                    })
                }
                Ok(_) => continue, // e.g. a refusing CONNACK; wait for the close
            }
        }
    }
    if let Some(gap) = s.trickle {
        for (k, b) in pkt.iter().enumerate() {
            if k > 0 {
                tokio::time::sleep(gap).await;
            }
            io.write_all(std::slice::from_ref(b)).await.map_err(werr)?;
            io.flush().await.map_err(werr)?;
        }
    } else {
        io.write_all(&pkt).await.map_err(werr)?;
        io.flush().await.map_err(werr)?;
    }
    let mut body = Vec::with_capacity(8);
    match mqtt::read_packet(&mut io, &mut body, 1 << 16).await {
        Ok(None) => Err(Outcome::Error("closed-before-connack")),
        Err(e) => Err(Outcome::Error(read_error(&e))),
        Ok(Some(first)) if first >> 4 != mqtt::CONNACK => Err(Outcome::Error("not-a-connack")),
        Ok(Some(_)) if body.len() < 2 => Err(Outcome::Error("short-connack")),
        Ok(Some(_)) if body[1] != 0 => Err(Outcome::Error("connack-refused")),
        Ok(Some(_)) => Ok(io),
    }
}

/// One session on its own connection: connect, CONNACK, publish, disconnect, close.
pub async fn once(s: &Script, i: usize, start: Instant) -> Outcome {
    let mut io = match tokio::time::timeout(s.timeout, connect(s, i, start)).await {
        Err(_) if s.stall_after.is_some() => {
            return Outcome::Error("stall-not-closed-within-timeout")
        }
        Err(_) => return Outcome::Error("timeout-before-connack"),
        Ok(Err(out)) => return out,
        Ok(Ok(io)) => io,
    };
    let latency_us = start.elapsed().as_micros() as u64;
    let after = async {
        for _ in 0..s.publish {
            io.write_all(&mqtt::publish(s.version, "bench/telemetry", &s.payload))
                .await?;
        }
        if s.disconnect {
            io.write_all(&mqtt::disconnect()).await?;
        }
        io.flush().await?;
        io.shutdown().await
    };
    let _ = tokio::time::timeout(s.timeout, after).await;
    Outcome::Connack { latency_us }
}

/// A held session: after CONNACK, publishes every interval (or PINGREQs at
/// keep-alive/2) until `hold.duration` has passed, watching for the gateway
/// closing it; then DISCONNECT. With `hold.reconnect`, a dropped or refused
/// session connects again (jittered, doubling back-off) until the end.
pub async fn held(
    s: &Script,
    i: usize,
    start: Instant,
    hold: &Hold,
    stats: &Mutex<Stats>,
    live: &AtomicUsize,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let end = tokio::time::Instant::now() + hold.duration;
    let mut start = start;
    let mut attempt: u64 = 0;
    loop {
        let mut io = match tokio::time::timeout(s.timeout, connect(s, i, start)).await {
            Err(_) => {
                stats.lock().unwrap().error("timeout-before-connack");
                None
            }
            Ok(Err(out)) => {
                stats.lock().unwrap().record(out);
                None
            }
            Ok(Ok(io)) => Some(io),
        };
        if let Some(io) = io.take() {
            if attempt > 0 {
                stats.lock().unwrap().reconnects += 1;
            }
            attempt = 0;
            match held_session(s, i, io, start, end, hold, stats, live, &mut stop).await {
                Held::Done => return,
                Held::Dropped => {}
            }
        }
        if !hold.reconnect || tokio::time::Instant::now() >= end {
            return;
        }
        // Jitter spread by device, then doubling back-off up to 16x.
        let spread = hold.reconnect_jitter.as_millis().max(1) as u64;
        let base = (i as u64).wrapping_mul(2_654_435_761) % spread;
        let wait = Duration::from_millis(base + spread * ((1u64 << attempt.min(4)) - 1));
        attempt += 1;
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopped(&mut stop) => return,
        }
        if tokio::time::Instant::now() >= end {
            return;
        }
        start = Instant::now();
    }
}

/// Resolves once the run is told to stop (at once if it already was).
pub async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    if *stop.borrow_and_update() {
        return;
    }
    while stop.changed().await.is_ok() {
        if *stop.borrow_and_update() {
            return;
        }
    }
    std::future::pending::<()>().await;
}

enum Held {
    Done,
    Dropped,
}

#[allow(clippy::too_many_arguments)]
async fn held_session(
    s: &Script,
    i: usize,
    mut io: Box<dyn Io>,
    start: Instant,
    end: tokio::time::Instant,
    hold: &Hold,
    stats: &Mutex<Stats>,
    live: &AtomicUsize,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Held {
    let now = live.fetch_add(1, Ordering::Relaxed) + 1;
    {
        let mut st = stats.lock().unwrap();
        st.record(Outcome::Connack {
            latency_us: start.elapsed().as_micros() as u64,
        });
        st.peak_live = st.peak_live.max(now);
    }
    let period = hold
        .publish_interval
        .unwrap_or(Duration::from_secs((s.keep_alive as u64 / 2).max(1)));
    // Spread the sessions' first messages over one period.
    let phase = (i as f64 * 0.618_033_988_75).fract();
    let mut next = tokio::time::Instant::now() + period.mul_f64(phase.max(0.01));
    let msg = match hold.publish_interval {
        Some(_) => mqtt::publish(s.version, "bench/telemetry", &s.payload),
        None => mqtt::pingreq().to_vec(),
    };
    let mut buf = [0u8; 512];
    let mut dropped = false;
    while tokio::time::Instant::now() < end {
        tokio::select! {
            _ = tokio::time::sleep_until(next.min(end)) => {
                if tokio::time::Instant::now() >= end { break; }
                let n = if hold.publish_interval.is_some() { s.publish.max(1) } else { 1 };
                let mut ok = true;
                for _ in 0..n {
                    if io.write_all(&msg).await.is_err() { ok = false; break; }
                }
                if !ok || io.flush().await.is_err() { dropped = true; break; }
                if hold.publish_interval.is_some() {
                    stats.lock().unwrap().publishes += n as u64;
                }
                next += period;
            }
            r = io.read(&mut buf) => {
                if matches!(r, Ok(0) | Err(_)) { dropped = true; break; }
            }
            _ = stopped(stop) => break,
        }
    }
    live.fetch_sub(1, Ordering::Relaxed);
    if dropped {
        stats.lock().unwrap().error("dropped-during-hold");
        return Held::Dropped;
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        io.write_all(&mqtt::disconnect()).await?;
        io.flush().await?;
        io.shutdown().await
    })
    .await;
    Held::Done
}
