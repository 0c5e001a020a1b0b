//! The client certificate of a TLS connection, as nginx verified it.

use core::mem::MaybeUninit;
use core::ptr;

use ngx::ffi::{
    i2d_X509, ngx_connection_t, SSL_get0_peer_certificate, SSL_get_verify_result, X509_V_OK,
};

use crate::identity::PeerIdentity;
use crate::policy::PeerCertificate;

/// DER certificates up to this size are copied onto the stack; larger ones
/// (rare for device certificates) onto the heap.
const STACK_DER_LEN: usize = 4096;

/// Reads the peer certificate of `c` and hands what it says to `f`.
///
/// A certificate counts as verified only when OpenSSL's verify result is
/// `X509_V_OK`: `ssl_verify_client optional_no_ca` completes the handshake
/// with certificates that failed verification.
pub fn with_peer_certificate<R>(
    c: &ngx_connection_t,
    f: impl FnOnce(&PeerCertificate<'_>) -> R,
) -> R {
    if c.ssl.is_null() {
        return f(&PeerCertificate::Absent);
    }
    // SAFETY: c.ssl is nginx's live TLS state for this connection; the SSL
    // object outlives this call, and get0 does not transfer ownership.
    let (ssl, cert) = unsafe {
        let ssl = (*c.ssl).connection;
        (ssl, SSL_get0_peer_certificate(ssl))
    };
    if cert.is_null() {
        return f(&PeerCertificate::Absent);
    }
    // SAFETY: ssl is valid as above.
    if unsafe { SSL_get_verify_result(ssl) } != X509_V_OK as _ {
        return f(&PeerCertificate::Unverified);
    }

    // SAFETY: with a null output pointer i2d_X509 only reports the length.
    let len = unsafe { i2d_X509(cert, ptr::null_mut()) };
    let Ok(len) = usize::try_from(len) else {
        return f(&PeerCertificate::Unreadable);
    };
    // Not zeroed: i2d_X509 writes all `len` bytes that are read back.
    let mut stack = [MaybeUninit::<u8>::uninit(); STACK_DER_LEN];
    let mut heap: Vec<MaybeUninit<u8>> = Vec::new();
    let out: &mut [MaybeUninit<u8>] = if len <= STACK_DER_LEN {
        &mut stack[..len]
    } else {
        heap.resize(len, MaybeUninit::uninit());
        &mut heap
    };
    let mut cursor = out.as_mut_ptr().cast::<u8>();
    // SAFETY: out has room for exactly the `len` bytes i2d_X509 reported.
    let written = unsafe { i2d_X509(cert, &mut cursor) };
    if usize::try_from(written) != Ok(len) {
        return f(&PeerCertificate::Unreadable);
    }
    // SAFETY: i2d_X509 initialised all `len` bytes of out.
    let der = unsafe { core::slice::from_raw_parts(out.as_ptr().cast::<u8>(), len) };
    match PeerIdentity::from_der(der) {
        Ok(identity) => f(&PeerCertificate::Verified(identity)),
        Err(_) => f(&PeerCertificate::Unreadable),
    }
}
