//! Per-session state, allocated from the connection pool.

use core::mem::MaybeUninit;
use core::ptr::{self, NonNull};

use ngx::ffi::{ngx_buf_t, ngx_connection_t, ngx_palloc, ngx_pnalloc, ngx_pool_t, ngx_str_t};

use crate::cert::with_peer_certificate;
use crate::limit::Held;
use crate::metrics::SessionMetrics;
use crate::rewrite::PendingRewrite;
use mqtt_core::packet::boundary::PacketBoundary;
use mqtt_core::packet::{ConnectFramer, ProtocolLevel};
use mqtt_core::policy::{CommonName, PeerCertificate, RejectReason};

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
pub const FIRST_READ_SIZE: usize = 800;

/// Everything the variables expose, and where the module's own first-read
/// buffer is.
///
/// The ClientId and Username point into the preread buffer: it belongs to
/// the connection pool, and nginx does not write over bytes once read (the
/// proxy sends them as they are; a later preread handler appends, or peeks
/// the same bytes again).
pub struct SessionCtx {
    pub outcome: Outcome,
    /// When the growing buffer is worth parsing again.
    pub framer: ConnectFramer,
    pub level: Option<ProtocolLevel>,
    pub client_id: ngx_str_t,
    pub username: ngx_str_t,
    /// `None` until the certificate has been looked at.
    pub cert_cn: Option<ngx_str_t>,
    /// The CONNECT to put in place of the device's (`mqtt on`).
    pub rewrite: Option<NonNull<PendingRewrite>>,
    /// Where the session counts as live (`mqtt_limit_conn`).
    pub held: Option<Held>,
    /// Where the bytes from the upstream to the device stand, followed for
    /// an MQTT 5 session that may be taken over (and told so between two
    /// packets).
    pub downstream: PacketBoundary,
    /// What `mqtt_metrics` needs to count the session.
    pub metrics: SessionMetrics,
    /// The buffer beside the context in the same allocation. nginx reads
    /// into it and the parsed fields point into it, so it is reached only
    /// through this pointer, never through a reference to the context.
    first_read: NonNull<FirstRead>,
}

struct FirstRead {
    buf: ngx_buf_t,
    data: MaybeUninit<[u8; FIRST_READ_SIZE]>,
}

/// The context and its buffer, allocated together.
#[repr(C)]
struct SessionAlloc {
    ctx: SessionCtx,
    first_read: FirstRead,
}

// One allocation of at most 1 KiB, which glibc serves from its per-thread
// cache, aligned as ngx_palloc aligns.
const _: () = assert!(size_of::<SessionAlloc>() <= 1024);
const _: () = assert!(align_of::<SessionAlloc>() <= align_of::<usize>());

impl SessionCtx {
    /// A new context in `pool`, which it never outlives.
    pub fn create(pool: *mut ngx_pool_t) -> Option<NonNull<SessionCtx>> {
        // SAFETY: pool is the connection's live pool; ngx_palloc aligns to
        // NGX_ALIGNMENT (a pointer), as much as SessionAlloc needs.
        let alloc = NonNull::new(unsafe { ngx_palloc(pool, size_of::<SessionAlloc>()) })?
            .cast::<SessionAlloc>();
        let p = alloc.as_ptr();
        // SAFETY: p is a fresh allocation for one SessionAlloc, which lives
        // as long as the pool and needs no destructor. The context is
        // written whole; of the buffer, only the ngx_buf_t is zeroed (what
        // ngx_calloc_buf makes): its bytes stay uninitialised until nginx
        // reads into them.
        unsafe {
            let first_read = NonNull::new_unchecked(ptr::addr_of_mut!((*p).first_read));
            ptr::addr_of_mut!((*first_read.as_ptr()).buf).write_bytes(0, 1);
            ptr::addr_of_mut!((*p).ctx).write(SessionCtx {
                outcome: Outcome::Pending,
                framer: ConnectFramer::default(),
                level: None,
                client_id: EMPTY,
                username: EMPTY,
                cert_cn: None,
                rewrite: None,
                held: None,
                downstream: PacketBoundary::Between,
                metrics: SessionMetrics::start(),
                first_read,
            });
        }
        // repr(C): the context is at the start of the allocation.
        Some(alloc.cast())
    }

    /// The context's own buffer, made empty, with room for `size` bytes (at
    /// most [`FIRST_READ_SIZE`]).
    pub fn first_read_buffer(&mut self, size: usize) -> *mut ngx_buf_t {
        let fr = self.first_read.as_ptr();
        // SAFETY: fr is the FirstRead of this context's allocation, alive as
        // long as the context; no reference to it exists. The end is at most
        // FIRST_READ_SIZE bytes past the start of its data.
        unsafe {
            let start = ptr::addr_of_mut!((*fr).data).cast::<u8>();
            let b = ptr::addr_of_mut!((*fr).buf);
            (*b).start = start;
            (*b).pos = start;
            (*b).last = start;
            (*b).end = start.add(size.min(FIRST_READ_SIZE));
            (*b).set_temporary(1);
            b
        }
    }

    /// Room for `size` bytes, aligned as a pointer, at the end of the
    /// context's own buffer when it is `b` and has that much free past what
    /// was read: taken from the buffer for good by moving its end, so that
    /// nothing nginx reads later (it reads at most up to `end`) lands there.
    /// Spares the connection pool a block of its own for a small allocation.
    pub fn take_tail(&mut self, b: *mut ngx_buf_t, size: usize) -> Option<NonNull<u8>> {
        if !self.owns_buffer(b) {
            return None;
        }
        let fr = self.first_read.as_ptr();
        // SAFETY: b is this context's buffer (checked), inside the same
        // allocation; no reference to it exists. The region is within
        // [last, end) of its data.
        unsafe {
            let b = ptr::addr_of_mut!((*fr).buf);
            let room = (*b).end.offset_from((*b).last) as usize;
            let end = (*b).end as usize;
            let start = end.checked_sub(size)? & !(align_of::<usize>() - 1);
            if size > room || start < (*b).last as usize {
                return None;
            }
            let region = (*b).end.sub(end - start);
            (*b).end = region;
            NonNull::new(region)
        }
    }

    /// Whether `b` is the context's own buffer.
    pub fn owns_buffer(&self, b: *const ngx_buf_t) -> bool {
        // SAFETY: only the address of the field is taken.
        ptr::eq(b, unsafe { ptr::addr_of!((*self.first_read.as_ptr()).buf) })
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
