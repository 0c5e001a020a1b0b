//! The client certificate of a TLS connection, as nginx verified it.

use core::ffi::c_int;
use core::ptr;

use ngx::ffi::{
    ngx_connection_t, ASN1_STRING_get0_data, ASN1_STRING_length, NID_subject_alt_name,
    SSL_get0_peer_certificate, SSL_get_verify_result, X509_EXTENSION_get_data, X509_NAME_get0_der,
    X509_get_ext, X509_get_ext_by_NID, X509_get_subject_name, X509, X509_V_OK,
};

use crate::identity::PeerIdentity;
use crate::policy::PeerCertificate;

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
    // SAFETY: cert is the live peer certificate, which the SSL object owns
    // for the whole call.
    let parts = unsafe { (subject_der(cert), alt_name_value(cert)) };
    let identity = match parts {
        (Some(subject), alt_names) => PeerIdentity::from_parts(subject, alt_names).ok(),
        (None, _) => None,
    };
    match identity {
        Some(identity) => f(&PeerCertificate::Verified(identity)),
        None => f(&PeerCertificate::Unreadable),
    }
}

/// The DER of the certificate's subject `Name`, which OpenSSL keeps from
/// decoding the certificate: nothing is re-encoded or copied.
///
/// # Safety
/// `cert` must be a valid certificate that outlives `'a`.
unsafe fn subject_der<'a>(cert: *const X509) -> Option<&'a [u8]> {
    let name = X509_get_subject_name(cert);
    let mut der: *const u8 = ptr::null();
    let mut len = 0usize;
    if name.is_null() || X509_NAME_get0_der(name, &mut der, &mut len) != 1 || der.is_null() {
        return None;
    }
    Some(core::slice::from_raw_parts(der, len))
}

/// The value of the certificate's subjectAltName extension (the DER of its
/// `GeneralNames`), if it has one.
///
/// # Safety
/// `cert` must be a valid certificate that outlives `'a`.
unsafe fn alt_name_value<'a>(cert: *const X509) -> Option<&'a [u8]> {
    let index = X509_get_ext_by_NID(cert, NID_subject_alt_name as c_int, -1);
    if index < 0 {
        return None;
    }
    let extension = X509_get_ext(cert, index);
    if extension.is_null() {
        return None;
    }
    let value = X509_EXTENSION_get_data(extension);
    if value.is_null() {
        return None;
    }
    let (data, len) = (ASN1_STRING_get0_data(value), ASN1_STRING_length(value));
    let len = usize::try_from(len).ok()?;
    (!data.is_null()).then(|| core::slice::from_raw_parts(data, len))
}
