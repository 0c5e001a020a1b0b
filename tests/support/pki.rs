//! A test PKI made with the openssl CLI: root CA → intermediate CA → server
//! and client certificates (ECDSA P-256, X.509 v3), so that nginx's
//! `ssl_verify_depth 2` is exercised, plus an expired client certificate,
//! one from a CA nginx does not trust, and one the intermediate CA revoked
//! (with a CRL for each CA, as `ssl_crl` needs for every level of the chain).
//!
//! Making it takes ~60 openssl runs. nextest runs every test in its own
//! process, so besides the per-process `OnceLock` the PKI is kept on disk
//! under `CARGO_TARGET_TMPDIR`, keyed by the day (certificates are valid for
//! 30 days), and shared by all the test processes of that day.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Bump when the set of certificates changes, so stale caches are not used.
const LAYOUT_VERSION: u32 = 2;

/// A client certificate: its chain (leaf then intermediate) and key, both PEM.
#[derive(Clone, Debug)]
pub struct ClientCert {
    pub name: &'static str,
    /// Leaf followed by the CA that issued it (what a device presents).
    pub chain: PathBuf,
    /// PKCS#8 private key.
    pub key: PathBuf,
}

/// How to make one client certificate.
struct ClientSpec {
    /// File name stem, also what tests ask for.
    name: &'static str,
    /// `openssl req -subj` text (slash form, `\` escapes special characters).
    subject: &'static str,
    /// `subjectAltName` value, if any.
    san: Option<&'static str>,
}

/// Client certificates signed by the intermediate CA and valid now.
const CLIENTS: &[ClientSpec] = &[
    ClientSpec {
        name: "thing001",
        subject: "/O=Acme/CN=thing001",
        san: None,
    },
    ClientSpec {
        name: "thing002",
        subject: "/O=Acme/CN=thing002",
        san: None,
    },
    ClientSpec {
        name: "thing003",
        subject: "/O=Acme/CN=thing003",
        san: None,
    },
    // Characters that RFC 4514 text forms escape: the ClientId must equal
    // the raw CN, not its escaped rendering.
    ClientSpec {
        name: "comma",
        subject: "/CN=dev,7",
        san: None,
    },
    ClientSpec {
        name: "plus",
        subject: "/CN=dev\\+8",
        san: None,
    },
    ClientSpec {
        name: "utf8",
        subject: "/CN=gerät-9",
        san: None,
    },
    // An O holding a comma, and one that reads like a second CN in a naive
    // split of the one-line subject.
    ClientSpec {
        name: "acme-comma",
        subject: "/O=Acme, Inc/CN=acme-1",
        san: None,
    },
    ClientSpec {
        name: "spoof",
        subject: "/O=Acme, CN=spoofed/CN=real-cn",
        san: None,
    },
    // Two CN attributes: ambiguous, so `cn` matching must refuse it.
    ClientSpec {
        name: "twin",
        subject: "/CN=twin-a/CN=twin-b",
        san: None,
    },
    ClientSpec {
        name: "san",
        subject: "/CN=san-holder",
        san: Some("URI:urn:device:san-uri-1,DNS:san-dns-1.example,email:san-mail@example.com"),
    },
];

/// The whole PKI, as files.
#[derive(Debug)]
pub struct Pki {
    pub dir: PathBuf,
    /// The root CA certificate: what clients trust for the server.
    pub root: PathBuf,
    /// Intermediate + root: nginx's `ssl_client_certificate`.
    pub ca_chain: PathBuf,
    /// Server leaf + intermediate, CN=localhost, SAN localhost/127.0.0.1.
    pub server_chain: PathBuf,
    pub server_key: PathBuf,
    /// The CRLs of the root and the intermediate CA: nginx's `ssl_crl`.
    /// The intermediate's revokes `revoked`.
    pub crl: PathBuf,
    clients: BTreeMap<&'static str, ClientCert>,
}

impl Pki {
    /// A client certificate by name: the names in `CLIENTS`, plus
    /// `expired` (CN=thing-expired), `untrusted` (CN=thing001 from a CA
    /// nginx does not know) and `revoked` (CN=thing-revoked, in the CRL).
    pub fn client(&self, name: &str) -> &ClientCert {
        self.clients
            .get(name)
            .unwrap_or_else(|| panic!("no client certificate {name:?}"))
    }
}

/// The PKI, made on first use.
pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let day = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs()
            / 86400;
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let dir = base.join(format!("e2e-pki-v{LAYOUT_VERSION}-{day}"));
        if !dir.join("complete").exists() {
            std::fs::create_dir_all(base).expect("create CARGO_TARGET_TMPDIR");
            let staging = tempfile::Builder::new()
                .prefix("e2e-pki-staging-")
                .tempdir_in(base)
                .expect("staging dir");
            generate(staging.path());
            std::fs::write(staging.path().join("complete"), b"").expect("marker");
            // Another test process may have won the race: then its copy is used.
            if std::fs::rename(staging.path(), &dir).is_err() {
                assert!(dir.join("complete").exists(), "PKI rename failed");
            }
        }
        load(&dir)
    })
}

fn load(dir: &Path) -> Pki {
    let mut clients = BTreeMap::new();
    let names = CLIENTS
        .iter()
        .map(|c| c.name)
        .chain(["expired", "untrusted", "revoked"]);
    for name in names {
        clients.insert(
            name,
            ClientCert {
                name,
                chain: dir.join(format!("{name}.chain.pem")),
                key: dir.join(format!("{name}.key")),
            },
        );
    }
    Pki {
        dir: dir.to_path_buf(),
        root: dir.join("root.pem"),
        ca_chain: dir.join("ca-chain.pem"),
        server_chain: dir.join("server.chain.pem"),
        server_key: dir.join("server.key"),
        crl: dir.join("crl-chain.pem"),
        clients,
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn keygen(dir: &Path, name: &str) {
    let key = format!("{name}.key");
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &key,
        ],
    );
}

fn self_signed_ca(dir: &Path, name: &str, subject: &str) {
    keygen(dir, name);
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-sha256",
            "-days",
            "3650",
            "-key",
            &format!("{name}.key"),
            "-subj",
            subject,
            "-out",
            &format!("{name}.pem"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// Makes `<name>.key` and `<name>.pem` signed by `ca` with the extensions
/// in `extensions` (an openssl extension-file body).
fn issue(dir: &Path, ca: &str, name: &str, subject: &str, extensions: &str, serial: u32) {
    keygen(dir, name);
    let csr = format!("{name}.csr");
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-utf8",
            "-key",
            &format!("{name}.key"),
            "-subj",
            subject,
            "-out",
            &csr,
        ],
    );
    let ext = format!("{name}.ext");
    std::fs::write(dir.join(&ext), extensions).expect("write extensions");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-sha256",
            "-days",
            "30",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-set_serial",
            &serial.to_string(),
            "-extfile",
            &ext,
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

fn concat(dir: &Path, out: &str, parts: &[&str]) {
    let mut text = String::new();
    for part in parts {
        text.push_str(&std::fs::read_to_string(dir.join(part)).expect("read PEM"));
    }
    std::fs::write(dir.join(out), text).expect("write PEM bundle");
}

const CLIENT_EXT: &str = "basicConstraints=critical,CA:FALSE\n\
     keyUsage=critical,digitalSignature\n\
     extendedKeyUsage=clientAuth\n\
     subjectKeyIdentifier=hash\n\
     authorityKeyIdentifier=keyid\n";

fn generate(dir: &Path) {
    self_signed_ca(dir, "root", "/O=MQTT e2e/CN=e2e Root CA");
    issue(
        dir,
        "root",
        "intermediate",
        "/O=MQTT e2e/CN=e2e Intermediate CA",
        "basicConstraints=critical,CA:TRUE,pathlen:0\n\
         keyUsage=critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier=hash\n\
         authorityKeyIdentifier=keyid\n",
        1,
    );
    concat(dir, "ca-chain.pem", &["intermediate.pem", "root.pem"]);

    issue(
        dir,
        "intermediate",
        "server",
        "/CN=localhost",
        "basicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth\n\
         subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        2,
    );
    concat(dir, "server.chain.pem", &["server.pem", "intermediate.pem"]);

    for (serial, spec) in (10..).zip(CLIENTS) {
        let mut ext = CLIENT_EXT.to_owned();
        if let Some(san) = spec.san {
            ext.push_str(&format!("subjectAltName={san}\n"));
        }
        issue(dir, "intermediate", spec.name, spec.subject, &ext, serial);
        concat(
            dir,
            &format!("{}.chain.pem", spec.name),
            &[&format!("{}.pem", spec.name), "intermediate.pem"],
        );
    }

    // Expired: `openssl x509 -req` (3.0) cannot backdate, `openssl ca` can.
    keygen(dir, "expired");
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            "expired.key",
            "-subj",
            "/CN=thing-expired",
            "-out",
            "expired.csr",
        ],
    );
    std::fs::create_dir_all(dir.join("ca-db")).expect("ca-db");
    std::fs::write(dir.join("ca-db/index.txt"), b"").expect("index");
    std::fs::write(dir.join("ca-db/serial"), b"1000\n").expect("serial");
    std::fs::write(
        dir.join("ca.cnf"),
        format!(
            "[ca]\ndefault_ca = ca_default\n\
             [ca_default]\ndatabase = ca-db/index.txt\nnew_certs_dir = ca-db\nserial = ca-db/serial\n\
             default_md = sha256\npolicy = policy_any\nunique_subject = no\n\
             [policy_any]\ncommonName = supplied\n\
             [client_ext]\n{CLIENT_EXT}"
        ),
    )
    .expect("ca.cnf");
    openssl(
        dir,
        &[
            "ca",
            "-batch",
            "-notext",
            "-config",
            "ca.cnf",
            "-cert",
            "intermediate.pem",
            "-keyfile",
            "intermediate.key",
            "-in",
            "expired.csr",
            "-out",
            "expired.pem",
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20200201000000Z",
            "-extensions",
            "client_ext",
        ],
    );
    concat(
        dir,
        "expired.chain.pem",
        &["expired.pem", "intermediate.pem"],
    );

    // Revoked by the intermediate CA. `openssl ca` keeps the revocation in
    // its database and writes the CRL from it; the root's CRL (revoking
    // nothing) covers the intermediate's own certificate.
    issue(
        dir,
        "intermediate",
        "revoked",
        "/O=Acme/CN=thing-revoked",
        CLIENT_EXT,
        50,
    );
    concat(
        dir,
        "revoked.chain.pem",
        &["revoked.pem", "intermediate.pem"],
    );
    openssl(
        dir,
        &[
            "ca",
            "-revoke",
            "revoked.pem",
            "-config",
            "ca.cnf",
            "-cert",
            "intermediate.pem",
            "-keyfile",
            "intermediate.key",
        ],
    );
    gen_crl(dir, "ca.cnf", "intermediate");
    std::fs::create_dir_all(dir.join("root-db")).expect("root-db");
    std::fs::write(dir.join("root-db/index.txt"), b"").expect("root index");
    std::fs::write(
        dir.join("root-ca.cnf"),
        "[ca]\ndefault_ca = ca_default\n\
         [ca_default]\ndatabase = root-db/index.txt\ndefault_md = sha256\n",
    )
    .expect("root-ca.cnf");
    gen_crl(dir, "root-ca.cnf", "root");
    concat(dir, "crl-chain.pem", &["intermediate.crl", "root.crl"]);

    // Same CN as a legitimate device, issued by a CA nginx does not trust.
    self_signed_ca(dir, "rogue-ca", "/O=Rogue/CN=Rogue CA");
    issue(
        dir,
        "rogue-ca",
        "untrusted",
        "/O=Acme/CN=thing001",
        CLIENT_EXT,
        99,
    );
    concat(
        dir,
        "untrusted.chain.pem",
        &["untrusted.pem", "rogue-ca.pem"],
    );
}

/// `<ca>.crl`, the CRL of CA `<ca>` (`<ca>.pem`, `<ca>.key`) from the
/// `openssl ca` database that `config` names, valid for 30 days.
fn gen_crl(dir: &Path, config: &str, ca: &str) {
    let (cert, key, out) = (
        format!("{ca}.pem"),
        format!("{ca}.key"),
        format!("{ca}.crl"),
    );
    openssl(
        dir,
        &[
            "ca", "-gencrl", "-crldays", "30", "-config", config, "-cert", &cert, "-keyfile", &key,
            "-out", &out,
        ],
    );
}
