//! MQTT gateway load generator.
//!
//!   loadgen certs     --dir D [--devices N] [--prefix dev-]
//!   loadgen responder --listen 127.0.0.1:P [--listen ...]
//!   loadgen run       --target 127.0.0.1:P [--tls D] (--rate R | --concurrency C) --count N ...
//!   loadgen hold      --target 127.0.0.1:P [--tls D] --sessions N --hold-secs T ...
//!
//! `run` opens one connection per device session: TCP (+ TLS 1.3 with the
//! device's ECDSA P-256 client certificate, CN = ClientId), CONNECT, waits
//! for CONNACK, optionally PUBLISHes, DISCONNECTs and closes. Open loop
//! (`--rate`: latency counted from each connection's scheduled start, so a
//! stalled gateway shows as latency, not as a lower rate) or closed loop
//! (`--concurrency`). `hold` keeps sessions open and publishing: soak tests.

mod mqtt;
mod pki;
mod responder;
mod session;
mod stats;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};

use session::Script;
use stats::Stats;

#[derive(Parser)]
#[command(
    name = "loadgen",
    about = "MQTT CONNECT load generator and CONNACK responder"
)]
struct Cli {
    /// Worker threads of the async runtime (1: a current-thread runtime).
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Make the CA, the server certificate and one client certificate per device.
    Certs {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 1000)]
        devices: usize,
        #[arg(long, default_value = "dev-")]
        prefix: String,
    },
    /// A minimal broker: CONNACK for every CONNECT, PINGRESP for PINGREQ, the rest is dropped.
    Responder {
        #[arg(long, required = true)]
        listen: Vec<SocketAddr>,
        /// Exit after this many seconds (a bound for unattended runs); 0 = until SIGTERM/SIGINT.
        #[arg(long, default_value_t = 0)]
        max_secs: u64,
    },
    /// Connection churn: one MQTT session per connection.
    Run(RunArgs),
    /// Hold N sessions open for T seconds, publishing periodically (soak).
    Hold(HoldArgs),
}

#[derive(Args, Clone)]
struct Common {
    /// Gateway address.
    #[arg(long)]
    target: SocketAddr,
    /// TLS 1.3 with device client certificates from this `certs` directory.
    #[arg(long)]
    tls: Option<PathBuf>,
    /// TLS server name.
    #[arg(long, default_value = "localhost")]
    sni: String,
    /// MQTT protocol level: 4 (3.1.1) or 5.
    #[arg(long, default_value_t = 4)]
    mqtt: u8,
    /// Number of distinct devices (ClientIds); connection i uses device i mod N.
    #[arg(long, default_value_t = 1000)]
    devices: usize,
    /// First device of this process (several processes share one `certs`
    /// directory, each with its own slice of the devices).
    #[arg(long, default_value_t = 0)]
    offset: usize,
    /// Bind connection i to source address `--source-base` + (i mod
    /// `--source-count`): one source address reaches one gateway port from
    /// at most ip_local_port_range ports.
    #[arg(long)]
    source_base: Option<Ipv4Addr>,
    #[arg(long, default_value_t = 1)]
    source_count: u32,
    /// ClientId prefix (default: the one the certs were made with, else "dev-").
    #[arg(long)]
    prefix: Option<String>,
    /// Use ClientIds that do NOT match the certificate CN (expect refusals).
    #[arg(long)]
    mismatch: bool,
    /// PUBLISH (QoS 0) this many messages after CONNACK (in `hold`: each interval).
    #[arg(long, default_value_t = 0)]
    publish: usize,
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Send DISCONNECT before closing.
    #[arg(long)]
    disconnect: bool,
    /// Send the CONNECT one byte at a time, this many ms apart (slow client).
    #[arg(long)]
    trickle_ms: Option<u64>,
    /// Send only this many bytes of the CONNECT, then wait for the gateway to
    /// give up on us (stalled client); the time until it closes is reported.
    #[arg(long)]
    stall_after: Option<usize>,
    /// Per-connection timeout up to CONNACK, in ms.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Keep-alive in the CONNECT, seconds.
    #[arg(long, default_value_t = 60)]
    keep_alive: u16,
    /// Write a JSON summary here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Label in the summary.
    #[arg(long, default_value = "")]
    label: String,
    /// Print nothing but errors (the JSON file still gets written).
    #[arg(long)]
    quiet: bool,
}

#[derive(Args, Clone)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    /// Open loop: start connections at this fixed rate (per second).
    #[arg(long, conflicts_with = "concurrency")]
    rate: Option<f64>,
    /// Closed loop: keep this many connections in flight.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Connections to make in total.
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// Upper bound on the run, seconds (stops starting new connections).
    #[arg(long, default_value_t = 120)]
    max_secs: u64,
    /// Open loop: give up on (and count) starts beyond this many in flight.
    #[arg(long, default_value_t = 20_000)]
    max_inflight: usize,
}

#[derive(Args, Clone)]
struct HoldArgs {
    #[command(flatten)]
    common: Common,
    /// Sessions to open and hold.
    #[arg(long, default_value_t = 100)]
    sessions: usize,
    /// Rate at which sessions are opened, per second.
    #[arg(long, default_value_t = 500.0)]
    ramp: f64,
    /// How long each session is held after its CONNACK, seconds.
    #[arg(long, default_value_t = 30)]
    hold_secs: u64,
    /// Seconds between a session's publishes (0: never; PINGREQ at keep-alive/2 instead).
    #[arg(long, default_value_t = 5.0)]
    publish_interval: f64,
    /// A session the gateway drops connects again (after up to
    /// `--reconnect-jitter-ms`, then with doubling back-off while refused)
    /// until its hold time is over: reconnect storms.
    #[arg(long)]
    reconnect: bool,
    #[arg(long, default_value_t = 1000)]
    reconnect_jitter_ms: u64,
    /// Progress line (live sessions, CONNACKs, errors) every this many ms.
    #[arg(long, default_value_t = 5000)]
    report_ms: u64,
}

fn main() {
    raise_nofile();
    let cli = Cli::parse();
    let rt = if cli.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cli.threads)
            .enable_all()
            .build()
    }
    .expect("tokio runtime");
    let code = rt.block_on(async move {
        match cli.cmd {
            Cmd::Certs {
                dir,
                devices,
                prefix,
            } => match pki::generate(&dir, devices, &prefix) {
                Ok(()) => {
                    println!(
                        "wrote CA, server and {devices} device certificates to {}",
                        dir.display()
                    );
                    0
                }
                Err(e) => {
                    eprintln!("certs: {e}");
                    1
                }
            },
            Cmd::Responder { listen, max_secs } => responder::run(listen, max_secs).await,
            Cmd::Run(a) => run(a).await,
            Cmd::Hold(a) => hold(a).await,
        }
    });
    std::process::exit(code);
}

fn raise_nofile() {
    // SAFETY: plain getrlimit/setrlimit on our own process.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

fn script(c: &Common) -> Result<Script, String> {
    if c.mqtt != 4 && c.mqtt != 5 {
        return Err("--mqtt must be 4 or 5".into());
    }
    let (tls, prefix) = match &c.tls {
        Some(dir) => {
            let cfgs =
                pki::client_configs(dir, c.offset, c.devices).map_err(|e| format!("tls: {e}"))?;
            let p = c.prefix.clone().unwrap_or_else(|| pki::prefix(dir));
            (Some(cfgs), p)
        }
        None => (None, c.prefix.clone().unwrap_or_else(|| "dev-".into())),
    };
    let devices = tls
        .as_ref()
        .map_or(c.devices, |v| v.len().min(c.devices))
        .max(1);
    let sni = rustls::pki_types::ServerName::try_from(c.sni.clone()).map_err(|e| e.to_string())?;
    let sources = match c.source_base {
        None => Vec::new(),
        Some(base) => (0..c.source_count.max(1))
            .map(|k| Ipv4Addr::from(u32::from(base).wrapping_add(k)))
            .collect(),
    };
    Ok(Script {
        target: c.target,
        offset: c.offset,
        sources,
        tls,
        sni,
        version: c.mqtt,
        prefix,
        devices,
        mismatch: c.mismatch,
        publish: c.publish,
        payload: vec![b'x'; c.payload],
        disconnect: c.disconnect,
        trickle: c.trickle_ms.map(Duration::from_millis),
        stall_after: c.stall_after,
        timeout: Duration::from_millis(c.timeout_ms),
        keep_alive: c.keep_alive,
    })
}

async fn run(a: RunArgs) -> i32 {
    let s = match script(&a.common) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("run: {e}");
            return 2;
        }
    };
    let stats = Arc::new(Mutex::new(Stats::new()));
    let deadline = Instant::now() + Duration::from_secs(a.max_secs);
    let t0 = Instant::now();
    let mode;
    if let Some(rate) = a.rate {
        mode = format!("open loop {rate}/s");
        let inflight = Arc::new(AtomicUsize::new(0));
        let mut set = tokio::task::JoinSet::new();
        let start = tokio::time::Instant::now();
        for i in 0..a.count {
            let at = start + Duration::from_secs_f64(i as f64 / rate);
            tokio::time::sleep_until(at).await;
            while set.try_join_next().is_some() {}
            if Instant::now() >= deadline {
                break;
            }
            if inflight.load(Ordering::Relaxed) >= a.max_inflight {
                stats.lock().unwrap().error("client-overload");
                continue;
            }
            inflight.fetch_add(1, Ordering::Relaxed);
            let (s, stats, inflight) = (s.clone(), stats.clone(), inflight.clone());
            // Tokio's timers tick in milliseconds: latency counts from the
            // actual start, and how late starts were is reported apart.
            let now = Instant::now();
            stats
                .lock()
                .unwrap()
                .record_lag(now.saturating_duration_since(at.into_std()));
            set.spawn(async move {
                let out = session::once(&s, i, now).await;
                let ok = matches!(out, session::Outcome::Connack { .. });
                let mut st = stats.lock().unwrap();
                st.record(out);
                if ok {
                    st.publishes += s.publish as u64;
                }
                drop(st);
                inflight.fetch_sub(1, Ordering::Relaxed);
            });
        }
        while set.join_next().await.is_some() {}
    } else {
        let c = a.concurrency.unwrap_or(1).max(1);
        mode = format!("closed loop, concurrency {c}");
        let next = Arc::new(AtomicUsize::new(0));
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..c {
            let (s, stats, next) = (s.clone(), stats.clone(), next.clone());
            let count = a.count;
            set.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count || Instant::now() >= deadline {
                        break;
                    }
                    let out = session::once(&s, i, Instant::now()).await;
                    let ok = matches!(out, session::Outcome::Connack { .. });
                    let mut st = stats.lock().unwrap();
                    st.record(out);
                    if ok {
                        st.publishes += s.publish as u64;
                    }
                }
            });
        }
        while set.join_next().await.is_some() {}
    }
    let elapsed = t0.elapsed();
    let st = stats.lock().unwrap();
    report(&a.common, &st, elapsed, &mode, &[])
}

async fn hold(a: HoldArgs) -> i32 {
    let s = match script(&a.common) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("hold: {e}");
            return 2;
        }
    };
    let stats = Arc::new(Mutex::new(Stats::new()));
    let live = Arc::new(AtomicUsize::new(0));
    let hold = session::Hold {
        duration: Duration::from_secs(a.hold_secs),
        publish_interval: (a.publish_interval > 0.0)
            .then(|| Duration::from_secs_f64(a.publish_interval)),
        reconnect: a.reconnect,
        reconnect_jitter: Duration::from_millis(a.reconnect_jitter_ms),
    };
    let t0 = Instant::now();
    let start = tokio::time::Instant::now();
    let mut set = tokio::task::JoinSet::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(a.report_ms.max(100)));
    ticker.tick().await;
    let quiet = a.common.quiet;
    let reporter = {
        let (live, stats) = (live.clone(), stats.clone());
        tokio::spawn(async move {
            loop {
                ticker.tick().await;
                if !quiet {
                    let st = stats.lock().unwrap();
                    eprintln!(
                        "[{:>6.1}s] live sessions {}, connacks {}, errors {}, publishes {}, reconnects {}",
                        t0.elapsed().as_secs_f64(),
                        live.load(Ordering::Relaxed),
                        st.ok,
                        st.errors.values().sum::<u64>(),
                        st.publishes,
                        st.reconnects
                    );
                }
            }
        })
    };
    // SIGINT/SIGTERM: no new sessions; the held ones DISCONNECT and the
    // summary is written (the plateau ends when the caller says so).
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let term = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
        let _ = stop_tx.send(true);
    });
    for i in 0..a.sessions {
        let at = start + Duration::from_secs_f64(i as f64 / a.ramp);
        let mut stop = stop_rx.clone();
        tokio::select! {
            _ = tokio::time::sleep_until(at) => {}
            _ = session::stopped(&mut stop) => break,
        }
        while set.try_join_next().is_some() {}
        let (s, stats, live, hold) = (s.clone(), stats.clone(), live.clone(), hold.clone());
        let stop = stop_rx.clone();
        set.spawn(
            async move { session::held(&s, i, at.into_std(), &hold, &stats, &live, stop).await },
        );
    }
    while set.join_next().await.is_some() {}
    reporter.abort();
    let elapsed = t0.elapsed();
    let st = stats.lock().unwrap();
    let extra = [
        ("sessions", a.sessions as f64),
        ("hold_secs", a.hold_secs as f64),
        ("peak_live", st.peak_live as f64),
        ("reconnects", st.reconnects as f64),
    ];
    report(
        &a.common,
        &st,
        elapsed,
        &format!("hold {} sessions", a.sessions),
        &extra,
    )
}

fn report(c: &Common, st: &Stats, elapsed: Duration, mode: &str, extra: &[(&str, f64)]) -> i32 {
    let secs = elapsed.as_secs_f64();
    let h = &st.latency;
    let q = |p: f64| {
        if h.is_empty() {
            0.0
        } else {
            h.value_at_quantile(p) as f64 / 1000.0
        }
    };
    let max = if h.is_empty() {
        0.0
    } else {
        h.max() as f64 / 1000.0
    };
    if !c.quiet {
        println!(
            "{}{} {} mqtt{} -> {}: {} CONNACKs in {:.2}s = {:.1} connects/s; latency ms p50 {:.3} p99 {:.3} max {:.3}; publishes {}",
            if c.label.is_empty() { String::new() } else { format!("[{}] ", c.label) },
            mode,
            if c.tls.is_some() { "mTLS" } else { "TCP" },
            if c.mqtt == 5 { "5" } else { "3.1.1" },
            c.target,
            st.ok,
            secs,
            st.ok as f64 / secs,
            q(0.5),
            q(0.99),
            max,
            st.publishes
        );
        if !st.lag.is_empty() && st.lag.value_at_quantile(0.99) > 2000 {
            println!(
                "  warning: starts ran late (p99 {:.1} ms, max {:.1} ms): the load generator is saturated",
                st.lag.value_at_quantile(0.99) as f64 / 1000.0,
                st.lag.max() as f64 / 1000.0
            );
        }
        for (k, v) in &st.errors {
            println!("  error {k}: {v}");
        }
        if !st.stall_close.is_empty() {
            println!(
                "  stalled sessions closed by the gateway after p50 {:.0} ms, max {:.0} ms",
                st.stall_close.value_at_quantile(0.5) as f64 / 1000.0,
                st.stall_close.max() as f64 / 1000.0
            );
        }
    }
    if let Some(path) = &c.json {
        let mut errs = String::new();
        for (i, (k, v)) in st.errors.iter().enumerate() {
            if i > 0 {
                errs.push_str(", ");
            }
            errs.push_str(&format!("\"{k}\": {v}"));
        }
        let mut ex = String::new();
        for (k, v) in extra {
            ex.push_str(&format!(", \"{k}\": {v}"));
        }
        let json = format!(
            "{{\"label\": \"{}\", \"mode\": \"{}\", \"tls\": {}, \"mqtt\": {}, \"ok\": {}, \"secs\": {:.6}, \"connects_per_sec\": {:.3}, \"p50_ms\": {:.4}, \"p99_ms\": {:.4}, \"max_ms\": {:.4}, \"publishes\": {}, \"start_lag_p99_ms\": {:.3}, \"errors\": {{{}}}{}}}\n",
            c.label, mode, c.tls.is_some(), c.mqtt, st.ok, secs, st.ok as f64 / secs, q(0.5), q(0.99), max, st.publishes,
            if st.lag.is_empty() { 0.0 } else { st.lag.value_at_quantile(0.99) as f64 / 1000.0 }, errs, ex
        );
        if let Err(e) = std::fs::write(path, json) {
            eprintln!("write {}: {e}", path.display());
            return 1;
        }
    }
    if st.ok == 0 && c.stall_after.is_none() && !c.mismatch {
        return 1;
    }
    0
}
