//! A minimal MQTT broker stand-in: answers every CONNECT with an accepting
//! CONNACK (in the CONNECT's protocol version) and PINGREQ with PINGRESP,
//! drops PUBLISHes, and closes on DISCONNECT or end of stream. It keeps
//! per-listener counts, printed when it stops, which show how a gateway's
//! hash spread the sessions.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

use crate::mqtt;

pub async fn run(addrs: Vec<SocketAddr>, max_secs: u64) -> i32 {
    let mut counters = Vec::new();
    for addr in addrs {
        let l = match TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("responder: bind {addr}: {e}");
                return 1;
            }
        };
        let n = Arc::new(AtomicU64::new(0));
        counters.push((addr, n.clone()));
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = l.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = sock.set_nodelay(true);
                let n = n.clone();
                tokio::spawn(async move {
                    let (r, mut w) = sock.into_split();
                    let mut r = BufReader::new(r);
                    let mut body = Vec::new();
                    while let Ok(Some(first)) = mqtt::read_packet(&mut r, &mut body, 1 << 20).await
                    {
                        let reply: &[u8] = match first >> 4 {
                            mqtt::CONNECT => {
                                n.fetch_add(1, Ordering::Relaxed);
                                mqtt::connack(mqtt::connect_version(&body))
                            }
                            mqtt::PINGREQ => &mqtt::pingresp(),
                            mqtt::DISCONNECT => break,
                            _ => continue,
                        };
                        if w.write_all(reply).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
    }
    println!("responder ready");
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    let limit = async {
        if max_secs == 0 {
            std::future::pending::<()>().await
        } else {
            tokio::time::sleep(Duration::from_secs(max_secs)).await
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = limit => {}
    }
    for (addr, n) in counters {
        println!("responder {addr}: {} CONNECTs", n.load(Ordering::Relaxed));
    }
    0
}
