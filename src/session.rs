//! Per-session state, allocated from the connection pool.

use core::mem::MaybeUninit;
use core::ptr::{self, NonNull};

use ngx::ffi::{ngx_buf_t, ngx_connection_t, ngx_palloc, ngx_pnalloc, ngx_pool_t, ngx_str_t};

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

/// Size of the buffer inside [`SessionCtx`] that nginx reads the first bytes
/// of a session into, when `preread_buffer_size` is larger. Most CONNECT
/// packets fit; a larger one gets a buffer of its exact size once its fixed
/// header has arrived. nginx itself would allocate `preread_buffer_size`
/// (16k by default) for every session, which costs more than all the rest of
/// the preread together.
pub const FIRST_READ_SIZE: usize = 832;

/// Everything the variables expose, and the buffer the CONNECT is read into.
///
/// The ClientId and Username point into the preread buffer: it belongs to
/// the connection pool, and nginx does not write over bytes once read (the
/// proxy sends them as they are; a later preread handler appends, or peeks
/// the same bytes again).
pub struct SessionCtx {
    pub outcome: Outcome,
    pub level: Option<ProtocolLevel>,
    pub client_id: ngx_str_t,
    pub username: ngx_str_t,
    /// `None` until the certificate has been looked at.
    pub cert_cn: Option<ngx_str_t>,
    first_read: ngx_buf_t,
    first_read_data: MaybeUninit<[u8; FIRST_READ_SIZE]>,
}

// One allocation of at most 1 KiB, which glibc serves from its per-thread
// cache, aligned as ngx_palloc aligns.
const _: () = assert!(size_of::<SessionCtx>() <= 1024);
const _: () = assert!(align_of::<SessionCtx>() <= align_of::<usize>());

impl SessionCtx {
    /// A new context in `pool`, which it never outlives.
    pub fn create(pool: *mut ngx_pool_t) -> Option<&'static mut SessionCtx> {
        // SAFETY: pool is the connection's live pool; ngx_palloc aligns to
        // NGX_ALIGNMENT (a pointer), as much as SessionCtx needs.
        let ctx = NonNull::new(unsafe { ngx_palloc(pool, size_of::<SessionCtx>()) })?
            .cast::<SessionCtx>();
        let p = ctx.as_ptr();
        // SAFETY: p is a fresh allocation for one SessionCtx, which lives as
        // long as the pool and needs no destructor. Each field is written in
        // place; the buffer bytes stay uninitialised until nginx reads into
        // them, and the ngx_buf_t is zeroed, what ngx_calloc_buf makes.
        unsafe {
            ptr::addr_of_mut!((*p).outcome).write(Outcome::Pending);
            ptr::addr_of_mut!((*p).level).write(None);
            ptr::addr_of_mut!((*p).client_id).write(EMPTY);
            ptr::addr_of_mut!((*p).username).write(EMPTY);
            ptr::addr_of_mut!((*p).cert_cn).write(None);
            ptr::addr_of_mut!((*p).first_read).write_bytes(0, 1);
            Some(&mut *p)
        }
    }

    /// The context's own buffer, made empty, with room for `size` bytes (at
    /// most [`FIRST_READ_SIZE`]).
    pub fn first_read_buffer(&mut self, size: usize) -> *mut ngx_buf_t {
        let start = self.first_read_data.as_mut_ptr().cast::<u8>();
        let b = &mut self.first_read;
        b.start = start;
        b.pos = start;
        b.last = start;
        // SAFETY: at most FIRST_READ_SIZE bytes past the start of the data.
        b.end = unsafe { start.add(size.min(FIRST_READ_SIZE)) };
        b.set_temporary(1);
        b
    }

    /// Whether `b` is the context's own buffer.
    pub fn owns_buffer(&self, b: &ngx_buf_t) -> bool {
        ptr::eq(b, &self.first_read)
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

/// `bytes`, which must outlive the string, as an `ngx_str_t`.
pub fn borrowed_str(bytes: &[u8]) -> ngx_str_t {
    if bytes.is_empty() {
        return EMPTY;
    }
    ngx_str_t {
        len: bytes.len(),
        data: bytes.as_ptr().cast_mut(),
    }
}

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
