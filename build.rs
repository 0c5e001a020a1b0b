//! Turns the metadata that `nginx-sys` publishes about the nginx build (version,
//! features, OS) into `cfg`s, so the glue can follow the nginx it is built for.

use std::env;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    // Declared unconditionally so `check-cfg` knows them even without nginx.
    println!("cargo::rustc-check-cfg=cfg(ngx_feature, values(any()))");
    println!("cargo::rustc-check-cfg=cfg(ngx_os, values(any()))");
    println!("cargo::rustc-check-cfg=cfg(nginx1_25_5)");

    if env::var_os("CARGO_FEATURE_NGINX").is_none() {
        return;
    }

    for (var, cfg) in [
        ("DEP_NGINX_FEATURES", "ngx_feature"),
        ("DEP_NGINX_OS", "ngx_os"),
    ] {
        if let Ok(values) = env::var(var) {
            for value in values.split(',').filter(|v| !v.is_empty()) {
                println!("cargo::rustc-cfg={cfg}=\"{value}\"");
            }
        }
    }

    // nginx_version is MMMmmmppp, e.g. 1028003 for 1.28.3.
    let version: u64 = env::var("DEP_NGINX_VERSION_NUMBER")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    // Since 1.25.5 plain-TCP preread peeks (MSG_PEEK) instead of reading.
    if version >= 1_025_005 {
        println!("cargo::rustc-cfg=nginx1_25_5");
    }
}
