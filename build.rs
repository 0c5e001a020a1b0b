//! Turns what nginx-sys learnt about the nginx being built against into
//! `cfg`s, each declared with `rustc-check-cfg`:
//!
//! * `ngx_feature = "..."`, `ngx_os = "..."`: the `NGX_HAVE_*`/module macros
//!   nginx's configure set (`ngx_feature = "have_epollrdhup"`,
//!   `ngx_feature = "stream_ssl"`, ...), as nginx-sys reports them.
//! * `ngx_peeking_preread`: nginx 1.25.5 or later, whose plain-TCP preread
//!   may peek at the socket (`MSG_PEEK`) instead of reading.
//! * `ngx_stream_virtual_servers`: nginx 1.25.5 or later, whose stream
//!   servers share addresses by `server_name`: the listen sockets are
//!   grouped by port and address (`cmcf->ports`) instead of listed
//!   (`cmcf->listen`), and the SSL module's server configuration is
//!   `ngx_stream_ssl_srv_conf_t` (before, `ngx_stream_ssl_conf_t`).
//! * `openssl = "openssl" | "libressl" | "boringssl" | "awslc"` and
//!   `openssl3`: the TLS library nginx was configured with, read from its
//!   `opensslv.h` through the same include path; `openssl3` is OpenSSL 3.0
//!   or later, which has `SSL_get0_peer_certificate`.
//!
//! nginx-sys passes its `DEP_NGINX_*` metadata to direct dependents only,
//! which is why it is one in Cargo.toml.

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    nginx_cfgs();
    tls_library_cfgs();
}

fn nginx_cfgs() {
    for (cfg, check, values) in [
        (
            "ngx_feature",
            "DEP_NGINX_FEATURES_CHECK",
            "DEP_NGINX_FEATURES",
        ),
        ("ngx_os", "DEP_NGINX_OS_CHECK", "DEP_NGINX_OS"),
    ] {
        println!("cargo::rerun-if-env-changed={check}");
        println!("cargo::rerun-if-env-changed={values}");
        let known = env::var(check).unwrap_or_else(|_| "any()".to_owned());
        println!("cargo::rustc-check-cfg=cfg({cfg}, values({known}))");
        for value in env::var(values).unwrap_or_default().split(',') {
            let value = value.trim();
            if !value.is_empty() {
                println!("cargo::rustc-cfg={cfg}=\"{value}\"");
            }
        }
    }

    println!("cargo::rustc-check-cfg=cfg(ngx_peeking_preread)");
    println!("cargo::rustc-check-cfg=cfg(ngx_stream_virtual_servers)");
    println!("cargo::rerun-if-env-changed=DEP_NGINX_VERSION_NUMBER");
    let version: u64 = env::var("DEP_NGINX_VERSION_NUMBER")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .expect("nginx-sys reports DEP_NGINX_VERSION_NUMBER");
    if version >= 1_025_005 {
        println!("cargo::rustc-cfg=ngx_peeking_preread");
        println!("cargo::rustc-cfg=ngx_stream_virtual_servers");
    }
}

/// The TLS library and its version, from the preprocessor's view of
/// `<openssl/opensslv.h>` with nginx's include path (nginx may have been
/// configured `--with-openssl=DIR` against a library other than the
/// system's).
fn tls_library_cfgs() {
    println!("cargo::rustc-check-cfg=cfg(openssl, values(\"openssl\", \"libressl\", \"boringssl\", \"awslc\"))");
    println!("cargo::rustc-check-cfg=cfg(openssl3)");
    println!("cargo::rerun-if-env-changed=DEP_NGINX_INCLUDE");
    println!("cargo::rerun-if-env-changed=DEP_NGINX_FEATURES");
    let has_ssl = env::var("DEP_NGINX_FEATURES")
        .unwrap_or_default()
        .split(',')
        .any(|f| f.trim() == "ssl");
    if !has_ssl {
        return;
    }

    let probe = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join("tls_version.c");
    fs::write(
        &probe,
        "#include <openssl/opensslv.h>\n\
         #if defined(OPENSSL_IS_AWSLC)\nMQTT_TLS_LIBRARY=awslc\n\
         #elif defined(OPENSSL_IS_BORINGSSL)\nMQTT_TLS_LIBRARY=boringssl\n\
         #elif defined(LIBRESSL_VERSION_NUMBER)\nMQTT_TLS_LIBRARY=libressl\n\
         #else\nMQTT_TLS_LIBRARY=openssl\n#endif\n\
         #ifdef OPENSSL_VERSION_MAJOR\nMQTT_TLS_MAJOR=OPENSSL_VERSION_MAJOR\n\
         #else\nMQTT_TLS_NUMBER=OPENSSL_VERSION_NUMBER\n#endif\n",
    )
    .expect("write the TLS version probe");
    let mut build = cc::Build::new();
    build.file(&probe).cargo_metadata(false);
    if let Some(include) = env::var_os("DEP_NGINX_INCLUDE") {
        build.includes(env::split_paths(&include));
    }
    let expanded = build
        .try_expand()
        .expect("nginx is built with TLS, so <openssl/opensslv.h> must be on its include path");
    // GCC may put a macro's expansion from a system header on lines of its
    // own: read the output as one run of tokens, line markers left out.
    let tokens: Vec<String> = String::from_utf8_lossy(&expanded)
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .flat_map(|line| {
            line.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    let value = |key: &str| {
        let at = tokens.iter().position(|t| t.starts_with(key))?;
        let rest = tokens[at].strip_prefix(key).unwrap_or_default();
        let value = if rest.is_empty() {
            tokens.get(at + 1)?.as_str()
        } else {
            rest
        };
        Some(value.to_owned())
    };

    let library = value("MQTT_TLS_LIBRARY=").unwrap_or_else(|| "openssl".to_owned());
    println!("cargo::rustc-cfg=openssl=\"{library}\"");
    let major = match (value("MQTT_TLS_MAJOR="), value("MQTT_TLS_NUMBER=")) {
        (Some(major), _) => major.parse::<u64>().ok(),
        // 0xMNNFFPPS: major in the top nibble.
        (None, Some(number)) => {
            let digits = number.trim_start_matches("0x").trim_end_matches(['L', 'l']);
            u64::from_str_radix(digits, 16).ok().map(|n| n >> 28)
        }
        (None, None) => None,
    };
    if library == "openssl" && major.is_some_and(|m| m >= 3) {
        println!("cargo::rustc-cfg=openssl3");
    }
}
