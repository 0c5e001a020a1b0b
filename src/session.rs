//! Per-session state, allocated from the connection pool.

use core::ptr::{self, NonNull};

use ngx::ffi::{ngx_connection_t, ngx_pnalloc, ngx_pool_t, ngx_str_t};

use crate::cert::with_peer_certificate;
use crate::identity::CommonName;
use crate::mqtt::ProtocolLevel;
use crate::policy::{PeerCertificate, RejectReason};

/// What the module decided about a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Waiting for the rest of the CONNECT.
    Pending,
    /// A valid CONNECT that passed the identity policy.
    Accepted,
    /// Not a valid CONNECT, proxied anyway (`mqtt_reject_malformed off`).
    PassedUnparsed,
    Rejected(RejectReason),
}

/// Everything the variables expose. Strings are copies in the connection
/// pool: the preread buffer is reused once proxying starts, and the log
/// phase still reads them.
#[derive(Clone, Copy)]
pub struct SessionCtx {
    pub outcome: Outcome,
    pub level: Option<ProtocolLevel>,
    pub client_id: ngx_str_t,
    pub username: ngx_str_t,
    /// `None` until the certificate has been looked at.
    pub cert_cn: Option<ngx_str_t>,
}

impl SessionCtx {
    pub fn new() -> Self {
        Self {
            outcome: Outcome::Pending,
            level: None,
            client_id: EMPTY,
            username: EMPTY,
            cert_cn: None,
        }
    }

    /// The CN of the verified client certificate, empty without one; read
    /// from the certificate on first use.
    pub fn cert_cn(&mut self, c: &ngx_connection_t) -> ngx_str_t {
        if let Some(cn) = self.cert_cn {
            return cn;
        }
        let cn = with_peer_certificate(c, |cert| cert_cn_copy(c.pool, cert));
        self.cert_cn = Some(cn);
        cn
    }
}

/// Copies the CN of a verified certificate into `pool`; empty otherwise.
pub fn cert_cn_copy(pool: *mut ngx_pool_t, cert: &PeerCertificate<'_>) -> ngx_str_t {
    match cert {
        PeerCertificate::Verified(identity) => match identity.common_name() {
            CommonName::One(cn) => pool_copy(pool, cn.as_bytes()).unwrap_or(EMPTY),
            _ => EMPTY,
        },
        _ => EMPTY,
    }
}

pub const EMPTY: ngx_str_t = ngx_str_t {
    len: 0,
    data: c"".as_ptr() as *mut u8,
};

/// Copies `bytes` into `pool`.
pub fn pool_copy(pool: *mut ngx_pool_t, bytes: &[u8]) -> Option<ngx_str_t> {
    if bytes.is_empty() {
        return Some(EMPTY);
    }
    // SAFETY: pool is the live connection pool; the allocation is unaligned
    // bytes of exactly the requested length.
    let data = NonNull::new(unsafe { ngx_pnalloc(pool, bytes.len()) }.cast::<u8>())?;
    // SAFETY: data has room for bytes.len() bytes and cannot overlap bytes.
    unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), data.as_ptr(), bytes.len()) };
    Some(ngx_str_t {
        len: bytes.len(),
        data: data.as_ptr(),
    })
}

/// The bytes of an `ngx_str_t`.
pub fn str_bytes(s: &ngx_str_t) -> &[u8] {
    if s.len == 0 || s.data.is_null() {
        return &[];
    }
    // SAFETY: a non-empty ngx_str_t points to len readable bytes.
    unsafe { core::slice::from_raw_parts(s.data, s.len) }
}
