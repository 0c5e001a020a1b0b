//! The benchmark PKI: one CA, a server certificate for localhost/127.0.0.1,
//! and one ECDSA P-256 client certificate per device with CN = its ClientId.
//!
//! Files in the output directory:
//!   ca.pem, ca.key          the CA (what the gateways trust for clients)
//!   server.pem, server.key  server leaf (+ CA in server-chain.pem)
//!   server.bundle.pem       leaf + CA + key, for HAProxy's `crt`
//!   devices.pem             per device: its certificate then its PKCS#8 key
//!   device-0.pem/.key       the first device, for command-line tools

use std::fs;
use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

pub fn device_id(prefix: &str, i: usize) -> String {
    format!("{prefix}{i:06}")
}

pub fn generate(dir: &Path, devices: usize, prefix: &str) -> Result<(), Error> {
    fs::create_dir_all(dir)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "mqtt bench CA");
    ca_params
        .distinguished_name
        .push(DnType::OrganizationName, "bench");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca_key_pem = ca_key.serialize_pem();
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key)?;
    fs::write(dir.join("ca.pem"), ca.pem())?;
    fs::write(dir.join("ca.key"), &ca_key_pem)?;

    let mut sp = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    sp.distinguished_name.push(DnType::CommonName, "localhost");
    sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let skey = KeyPair::generate()?;
    let scert = sp.signed_by(&skey, &ca)?;
    fs::write(dir.join("server.pem"), scert.pem())?;
    fs::write(dir.join("server.key"), skey.serialize_pem())?;
    fs::write(
        dir.join("server-chain.pem"),
        format!("{}{}", scert.pem(), ca.pem()),
    )?;
    fs::write(
        dir.join("server.bundle.pem"),
        format!("{}{}{}", scert.pem(), ca.pem(), skey.serialize_pem()),
    )?;

    let mut bundle = String::with_capacity(devices * 1200);
    for i in 0..devices {
        let id = device_id(prefix, i);
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.distinguished_name
            .push(DnType::OrganizationName, "bench devices");
        p.distinguished_name.push(DnType::CommonName, id.as_str());
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let k = KeyPair::generate()?;
        let c = p.signed_by(&k, &ca)?;
        if i == 0 {
            fs::write(dir.join("device-0.pem"), c.pem())?;
            fs::write(dir.join("device-0.key"), k.serialize_pem())?;
        }
        bundle.push_str(&c.pem());
        bundle.push_str(&k.serialize_pem());
    }
    fs::write(dir.join("devices.pem"), bundle)?;
    fs::write(dir.join("prefix"), prefix)?;
    Ok(())
}

/// One rustls client configuration per device (its certificate as the
/// client identity), trusting the bench CA, with session resumption off so
/// every connection is a full handshake.
pub fn client_configs(
    dir: &Path,
    offset: usize,
    limit: usize,
) -> Result<Vec<Arc<rustls::ClientConfig>>, Error> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(dir.join("ca.pem"))? {
        roots.add(c?)?;
    }
    let roots = Arc::new(roots);
    let bundle = dir.join("devices.pem");
    let certs = CertificateDer::pem_file_iter(&bundle)?;
    let keys = PrivatePkcs8KeyDer::pem_file_iter(&bundle)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut out = Vec::new();
    for (cert, key) in certs.zip(keys).skip(offset).take(limit) {
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots.clone())
            .with_client_auth_cert(vec![cert?], PrivateKeyDer::Pkcs8(key?))?;
        cfg.resumption = rustls::client::Resumption::disabled();
        out.push(Arc::new(cfg));
    }
    if out.is_empty() {
        return Err(format!("no device certificates in {}", bundle.display()).into());
    }
    Ok(out)
}

pub fn prefix(dir: &Path) -> String {
    fs::read_to_string(dir.join("prefix")).unwrap_or_else(|_| "dev-".to_string())
}
