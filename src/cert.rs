//! The client certificate of a TLS connection, as nginx verified it.
//!
//! Without TLS in the nginx being built against, no connection has a
//! certificate and every identity check refuses with `no_certificate`.

use ngx::ffi::ngx_connection_t;

/// Whether `c` is a TLS connection.
pub fn is_tls(c: &ngx_connection_t) -> bool {
    #[cfg(ngx_feature = "ssl")]
    return !c.ssl.is_null();
    #[cfg(not(ngx_feature = "ssl"))]
    return false;
}

#[cfg(not(ngx_feature = "ssl"))]
pub fn with_peer_certificate<R>(
    _c: &ngx_connection_t,
    f: impl FnOnce(&mqtt_core::policy::PeerCertificate<'_>) -> R,
) -> R {
    f(&mqtt_core::policy::PeerCertificate::Absent)
}

#[cfg(ngx_feature = "ssl")]
pub use tls::with_peer_certificate;

#[cfg(ngx_feature = "ssl")]
mod tls {
    use core::ffi::c_int;
    use core::ptr;

    use mqtt_core::policy::{PeerCertificate, PeerIdentity};
    use ngx::ffi::{
        ngx_connection_t, ASN1_STRING_get0_data, ASN1_STRING_length, NID_subject_alt_name,
        SSL_get_verify_result, X509_EXTENSION_get_data, X509_NAME_get0_der, X509_get_ext,
        X509_get_ext_by_NID, X509_get_subject_name, SSL, X509, X509_V_OK,
    };

    /// Reads the peer certificate of `c` and hands what it says to `f`.
    ///
    /// A certificate counts as verified only when OpenSSL's verify result is
    /// `X509_V_OK`: `ssl_verify_client optional_no_ca` completes the
    /// handshake with certificates that failed verification.
    pub fn with_peer_certificate<R>(
        c: &ngx_connection_t,
        f: impl FnOnce(&PeerCertificate<'_>) -> R,
    ) -> R {
        if c.ssl.is_null() {
            return f(&PeerCertificate::Absent);
        }
        // SAFETY: c.ssl is nginx's live TLS state for this connection; the
        // SSL object outlives this call.
        let ssl = unsafe { (*c.ssl).connection };
        let Some(cert) = PeerCert::of(ssl) else {
            return f(&PeerCertificate::Absent);
        };
        // SAFETY: ssl is valid as above.
        if unsafe { SSL_get_verify_result(ssl) } != X509_V_OK as _ {
            return f(&PeerCertificate::Unverified);
        }
        // SAFETY: the certificate is alive while `cert` is, to the end of
        // this function.
        let parts = unsafe { (subject_der(cert.0), alt_name_value(cert.0)) };
        let identity = match parts {
            (Some(subject), alt_names) => PeerIdentity::from_parts(subject, alt_names).ok(),
            (None, _) => None,
        };
        match identity {
            Some(identity) => f(&PeerCertificate::Verified(identity)),
            None => f(&PeerCertificate::Unreadable),
        }
    }

    /// The peer certificate of a TLS connection, for one call.
    struct PeerCert(*const X509);

    impl PeerCert {
        #[cfg(openssl3)]
        fn of(ssl: *const SSL) -> Option<PeerCert> {
            // SAFETY: ssl is a live SSL object; get0 lends the certificate
            // the SSL object owns, without a reference of its own.
            let cert = unsafe { ngx::ffi::SSL_get0_peer_certificate(ssl) };
            (!cert.is_null()).then_some(PeerCert(cert))
        }

        /// Before OpenSSL 3.0 only the call that takes a reference exists;
        /// the reference is dropped with the `PeerCert`.
        #[cfg(not(openssl3))]
        fn of(ssl: *const SSL) -> Option<PeerCert> {
            // SAFETY: ssl is a live SSL object; the certificate comes with a
            // reference that Drop gives back.
            let cert = unsafe { ngx::ffi::SSL_get_peer_certificate(ssl) };
            (!cert.is_null()).then_some(PeerCert(cert))
        }
    }

    #[cfg(not(openssl3))]
    impl Drop for PeerCert {
        fn drop(&mut self) {
            // SAFETY: the reference SSL_get_peer_certificate took.
            unsafe { ngx::ffi::X509_free(self.0.cast_mut()) };
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
}
