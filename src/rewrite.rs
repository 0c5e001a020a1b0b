//! The CONNECT rewrite (`mqtt on; mqtt_set_connect ...`).
//!
//! The preread handler, once it has accepted a CONNECT, evaluates the
//! `mqtt_set_connect` values and builds the rewritten packet
//! ([`prepare`]). What reaches the upstream is decided in the stream body
//! filter ([`rewrite_filter`]), on the bytes going from the device to the
//! upstream: it passes nginx's own PROXY protocol header, drops the device's
//! CONNECT (checking, byte for byte, that it is the packet that was parsed)
//! and puts the rewritten one in its place; everything after it passes
//! untouched. The filter sees the same bytes whether nginx's preread read
//! them or only peeked at them, so both work alike.

use core::mem::MaybeUninit;
use core::ptr::{self, NonNull};
use std::panic::{catch_unwind, AssertUnwindSafe};

use mqtt_core::packet::rewrite::{plan_rewrite, ConnectRewrite, FieldEdit, RewriteError};
use mqtt_core::packet::{Connect, ProtocolLevel};
use mqtt_core::policy::RejectReason;
use ngx::ffi::{
    ngx_buf_t, ngx_chain_t, ngx_connection_t, ngx_create_temp_buf, ngx_int_t, ngx_palloc,
    ngx_pool_t, ngx_str_t, ngx_stream_filter_pt, ngx_stream_session_t, ngx_stream_top_filter,
    ngx_uint_t, NGX_LOG_ALERT,
};

use crate::conf::MqttSrvConf;
use crate::log::{mqtt_debug, mqtt_log};
use crate::preread::session_ctx;
use crate::refusal::refuse;
use crate::session::{str_bytes, EMPTY};
use crate::set_connect::{entries, Field};
use crate::stream::{Session, NGX_DECLINED, NGX_ERROR};
use crate::Module;

/// The longest PROXY protocol v1 header (`NGX_PROXY_PROTOCOL_V1_MAX_HEADER`).
const PROXY_HEADER_MAX: usize = 107;

/// A session's CONNECT and what replaces it on the way to the upstream,
/// allocated with the rewritten packet's bytes right behind it.
pub struct PendingRewrite {
    /// The device's CONNECT, as the preread handler parsed it.
    original: ngx_str_t,
    /// A read-only buffer over the rewritten CONNECT.
    replacement: ngx_buf_t,
    /// The chain link that passes `replacement` on, so that none is taken
    /// from the pool.
    link: ngx_chain_t,
    state: FilterState,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FilterState {
    /// Nothing from the device has passed yet.
    Start,
    /// Inside nginx's PROXY protocol header, `seen` bytes of it so far.
    ProxyHeader { seen: usize },
    /// `dropped` bytes of the device's CONNECT taken out so far.
    Dropping { dropped: usize },
    /// The rewritten CONNECT has gone; the rest passes as it is.
    Done,
}

/// User Properties evaluated without a heap allocation; more spill over.
const INLINE_PROPERTIES: usize = 8;

/// Room on the stack for the `mqtt_set_connect` values the module writes
/// itself (text with variables); longer ones come from the pool.
const SCRATCH: usize = 512;

/// After an accepted CONNECT in a server with `mqtt on`: builds the
/// rewritten CONNECT for the filter, or refuses the session if it cannot be
/// built (it is never forwarded unrewritten). `packet` holds the device's
/// CONNECT; `limit` is `preread_buffer_size`, for the refusal's log line.
pub fn prepare(
    s: &mut Session<'_>,
    conf: &MqttSrvConf,
    connect: &Connect<'_>,
    packet: &[u8],
    limit: usize,
) -> ngx_int_t {
    // The values first: evaluating them may run this module's variable
    // getters, which borrow the session's context. They live in `scratch`
    // where they fit, otherwise in the session's pool, until the rewritten
    // packet has been written.
    let mut scratch = [MaybeUninit::<u8>::uninit(); SCRATCH];
    let mut used = 0;
    let mut fields: [Option<ngx_str_t>; 3] = [None; 3];
    let mut properties = [(EMPTY, EMPTY); INLINE_PROPERTIES];
    let mut spilled = Vec::new();
    let mut count = 0;
    for entry in entries(conf) {
        let Ok((value, n)) = entry
            .value
            .evaluate_into(s, scratch.get_mut(used..).unwrap_or_default())
        else {
            return NGX_ERROR;
        };
        used += n;
        match entry.field {
            Field::ClientId => fields[0] = Some(value),
            Field::Username => fields[1] = Some(value),
            Field::Password => fields[2] = Some(value),
            Field::UserProperty => {
                let Some(name) = entry.name.evaluate(s) else {
                    return NGX_ERROR;
                };
                match properties.get_mut(count) {
                    Some(slot) => *slot = (name, value),
                    None => spilled.push((name, value)),
                }
                count += 1;
            }
        }
    }
    // An empty value removes the username or password, as NGINX Plus's
    // module does.
    fn edit(value: &Option<ngx_str_t>) -> FieldEdit<'_> {
        match value.as_ref().map(str_bytes) {
            None => FieldEdit::Keep,
            Some([]) => FieldEdit::Remove,
            Some(bytes) => FieldEdit::Set(bytes),
        }
    }
    fn pair((name, value): &(ngx_str_t, ngx_str_t)) -> (&[u8], &[u8]) {
        (str_bytes(name), str_bytes(value))
    }
    let mut inline = [(&[][..], &[][..]); INLINE_PROPERTIES];
    for (slot, property) in inline
        .iter_mut()
        .zip(&properties[..count.min(INLINE_PROPERTIES)])
    {
        *slot = pair(property);
    }
    let all: Vec<(&[u8], &[u8])>;
    let user_properties = if spilled.is_empty() {
        &inline[..count]
    } else {
        all = properties.iter().chain(&spilled).map(pair).collect();
        &all[..]
    };
    let rewrite = ConnectRewrite {
        client_id: fields[0].as_ref().map(str_bytes),
        username: edit(&fields[1]),
        password: edit(&fields[2]),
        user_properties,
    };

    let Some((c, ctx)) = session_ctx(s) else {
        return NGX_ERROR;
    };
    let plan = match plan_rewrite(packet, connect, &rewrite, conf.rewrite_limit()) {
        Ok(plan) => plan,
        Err(RewriteError::TooLarge) => {
            return refuse(
                c,
                conf,
                ctx,
                RejectReason::RewriteTooLarge,
                Some(connect),
                limit,
            )
        }
        Err(error) => {
            return refuse(
                c,
                conf,
                ctx,
                RejectReason::RewriteFailed(error),
                Some(connect),
                limit,
            )
        }
    };
    if plan.password_dropped {
        mqtt_debug!(
            c.log,
            "password left out with the username: MQTT 3.x has no password alone"
        );
    }
    if plan.user_properties_dropped {
        mqtt_debug!(
            c.log,
            "user properties left out: MQTT {} has none",
            connect.level.name()
        );
    }
    let Some(original) = packet.get(..connect.packet_len) else {
        return NGX_ERROR;
    };
    let size = size_of::<PendingRewrite>() + plan.len();
    // SAFETY: the pool is the connection's; ngx_palloc aligns as a pointer.
    let room = ctx
        .take_tail(c.buffer, size)
        .or_else(|| NonNull::new(unsafe { ngx_palloc(c.pool, size) }.cast::<u8>()));
    let Some(mut pending) =
        room.and_then(|room| PendingRewrite::create(room, size, original, plan.len()))
    else {
        return NGX_ERROR;
    };
    // SAFETY: the bytes behind the PendingRewrite, plan.len() of them, are
    // this function's until the filter reads them.
    let out = unsafe { pending.as_mut().replacement_bytes() };
    if plan.write(out) != plan.len() {
        return NGX_ERROR;
    }
    ctx.rewrite = Some(pending);
    mqtt_debug!(
        c.log,
        "CONNECT rewritten for the upstream: {} bytes, was {}",
        plan.len(),
        connect.packet_len
    );
    NGX_DECLINED
}

impl PendingRewrite {
    /// The state, in `room` (`size` bytes aligned as a pointer, which live
    /// as long as the session), with the `len` bytes of the rewritten
    /// CONNECT behind it.
    fn create(
        room: NonNull<u8>,
        size: usize,
        original: &[u8],
        len: usize,
    ) -> Option<NonNull<Self>> {
        if size < size_of::<PendingRewrite>().checked_add(len)?
            || room.as_ptr().align_offset(align_of::<PendingRewrite>()) != 0
        {
            return None;
        }
        let p = room.cast::<PendingRewrite>();
        // SAFETY: p has room for the struct and len bytes after it, aligned
        // (checked); the struct is written whole (the buffer zeroed first,
        // as ngx_calloc_buf makes it) and needs no destructor.
        unsafe {
            let data = p.as_ptr().cast::<u8>().add(size_of::<PendingRewrite>());
            let mut replacement: ngx_buf_t = core::mem::zeroed();
            replacement.start = data;
            replacement.pos = data;
            replacement.last = data.add(len);
            replacement.end = replacement.last;
            replacement.set_memory(1);
            replacement.set_flush(1);
            replacement.tag = ptr::addr_of!(crate::ngx_stream_mqtt_preread_module)
                .cast_mut()
                .cast();
            p.as_ptr().write(PendingRewrite {
                original: crate::session::borrowed_str(original),
                replacement,
                link: ngx_chain_t {
                    buf: ptr::null_mut(),
                    next: ptr::null_mut(),
                },
                state: FilterState::Start,
            });
            // It stays where it is for the rest of the session.
            (*p.as_ptr()).link.buf = ptr::addr_of_mut!((*p.as_ptr()).replacement);
        }
        Some(p)
    }

    /// The bytes of the rewritten CONNECT, behind the struct.
    ///
    /// # Safety
    /// No other reference to those bytes may be alive.
    unsafe fn replacement_bytes(&mut self) -> &mut [u8] {
        let b = &self.replacement;
        // SAFETY: [start, end) is the allocation's tail, made by create().
        unsafe { core::slice::from_raw_parts_mut(b.start, b.end.offset_from(b.start) as usize) }
    }
}

static mut NEXT_FILTER: ngx_stream_filter_pt = None;

/// Puts the rewrite filter on top of the stream filter chain
/// (postconfiguration, once per configuration cycle).
pub fn install_filter() {
    // SAFETY: filters are chained at configuration time, in the one thread
    // nginx configures in; every stream module's postconfiguration that
    // installs a filter does the same.
    unsafe {
        NEXT_FILTER = ngx_stream_top_filter;
        ngx_stream_top_filter = Some(rewrite_filter);
    }
}

/// The stream body filter: on the way from the device to the upstream, the
/// device's CONNECT is replaced by the rewritten one; on the way back, the
/// packet boundaries of a session that may be taken over are followed.
unsafe extern "C" fn rewrite_filter(
    s: *mut ngx_stream_session_t,
    chain: *mut ngx_chain_t,
    from_upstream: ngx_uint_t,
) -> ngx_int_t {
    // SAFETY: read once per call; written only at configuration time.
    let Some(next) = (unsafe { NEXT_FILTER }) else {
        return NGX_ERROR;
    };
    // SAFETY: nginx passes the live session whose data this is, and runs no
    // handler of this module meanwhile.
    let session = unsafe { Session::from_ptr(s) };
    let mut chain = chain;
    if let (Some(mut session), false) = (session, chain.is_null()) {
        if from_upstream == 0 {
            match rewrite(&mut session, chain) {
                Ok(rewritten) => chain = rewritten,
                Err(what) => {
                    mqtt_log!(NGX_LOG_ALERT, session.connection().log, "{}, closing", what);
                    return NGX_ERROR;
                }
            }
        } else if follow_downstream(&mut session, chain).is_err() {
            return NGX_ERROR;
        }
    }
    // SAFETY: the next filter of the chain, with the arguments nginx gave.
    unsafe { next(s, chain, from_upstream) }
}

/// The chain to pass on to the upstream: `chain`, or while the device's
/// CONNECT has not gone by, the chain with the rewritten CONNECT in its
/// place.
fn rewrite(s: &mut Session<'_>, chain: *mut ngx_chain_t) -> Result<*mut ngx_chain_t, &'static str> {
    let (c, ctx) = s.connection_and_ctx::<Module>();
    let Some(mut pending) = ctx.and_then(|ctx| ctx.rewrite) else {
        return Ok(chain);
    };
    // SAFETY: the PendingRewrite prepare() stored, in the connection pool;
    // only this filter uses it, one call at a time.
    let pending = unsafe { pending.as_mut() };
    if pending.state == FilterState::Done {
        return Ok(chain);
    }
    catch_unwind(AssertUnwindSafe(|| put_in_place(c, pending, chain)))
        .unwrap_or(Err("internal error while rewriting CONNECT"))
}

/// Follows the packets on their way to an MQTT 5 device that a takeover
/// may tell to go.
fn follow_downstream(s: &mut Session<'_>, chain: *const ngx_chain_t) -> Result<(), ()> {
    if !s
        .srv_conf::<Module>()
        .is_some_and(|conf| conf.limit_conn_takeover)
    {
        return Ok(());
    }
    let (_, Some(ctx)) = s.connection_and_ctx::<Module>() else {
        return Ok(());
    };
    if ctx.held.is_none() || ctx.level != Some(ProtocolLevel::V5) {
        return Ok(());
    }
    catch_unwind(AssertUnwindSafe(|| {
        let mut link = chain;
        // SAFETY: the proxy's chain of valid links and memory buffers,
        // whose [pos, last) is initialised; only read here.
        while let Some(cl) = unsafe { link.as_ref() } {
            link = cl.next;
            if let Some(buf) = unsafe { cl.buf.as_ref() } {
                let bytes = unsafe { core::slice::from_raw_parts(buf.pos, size(buf)) };
                ctx.downstream.feed(bytes);
            }
        }
    }))
    .map_err(|_| ())
}

/// The chain to pass on in place of `input`: the device's bytes up to and
/// through its CONNECT are consumed from `input`'s buffers (the proxy reuses
/// a buffer once it is consumed), a PROXY protocol header before the CONNECT
/// is passed on as a copy, and the rewritten CONNECT goes where the device's
/// was. The proxy's own chain links are left as they are.
fn put_in_place(
    c: &ngx_connection_t,
    pending: &mut PendingRewrite,
    input: *mut ngx_chain_t,
) -> Result<*mut ngx_chain_t, &'static str> {
    const OUT_OF_MEMORY: &str = "out of memory while rewriting CONNECT";
    let original = str_bytes(&pending.original);
    let mut out = ChainBuilder::new(c.pool);
    let mut link = input;
    // SAFETY: input is the proxy's chain of valid links and buffers.
    while let Some(cl) = unsafe { link.as_ref() } {
        link = cl.next;
        let b = cl.buf;
        // SAFETY: every link of the chain has a valid buffer.
        let buf = unsafe { &mut *b };
        let carried = (buf.last_buf(), buf.flush());
        if pending.state == FilterState::Done || size(buf) == 0 {
            out.push(b).ok_or(OUT_OF_MEMORY)?;
            continue;
        }
        while size(buf) > 0 {
            // SAFETY: [pos, last) of a memory buffer is initialised.
            let bytes = unsafe { core::slice::from_raw_parts(buf.pos, size(buf)) };
            let taken = match pending.state {
                FilterState::Start => {
                    pending.state = if bytes.first() == Some(&b'P') {
                        FilterState::ProxyHeader { seen: 0 }
                    } else {
                        FilterState::Dropping { dropped: 0 }
                    };
                    0
                }
                FilterState::ProxyHeader { seen } => {
                    let end = bytes.iter().position(|&b| b == b'\n');
                    let n = end.map_or(bytes.len(), |i| i + 1);
                    if seen + n > PROXY_HEADER_MAX {
                        return Err("PROXY protocol header too long before the CONNECT");
                    }
                    out.push_copy(&bytes[..n]).ok_or(OUT_OF_MEMORY)?;
                    pending.state = match end {
                        Some(_) => FilterState::Dropping { dropped: 0 },
                        None => FilterState::ProxyHeader { seen: seen + n },
                    };
                    n
                }
                FilterState::Dropping { dropped } => {
                    let rest = original.get(dropped..).unwrap_or_default();
                    let n = rest.len().min(bytes.len());
                    if bytes.get(..n) != rest.get(..n) {
                        return Err("bytes on the way to the upstream are not the CONNECT that was accepted");
                    }
                    if dropped + n == original.len() {
                        out.push_own(&mut pending.link);
                        pending.state = FilterState::Done;
                    } else {
                        pending.state = FilterState::Dropping {
                            dropped: dropped + n,
                        };
                    }
                    n
                }
                FilterState::Done => {
                    out.push(b).ok_or(OUT_OF_MEMORY)?;
                    break;
                }
            };
            // SAFETY: taken is at most the bytes between pos and last.
            buf.pos = unsafe { buf.pos.add(taken) };
        }
        // A buffer consumed whole may have carried the end of the stream or
        // a flush: what went out in its place carries them on.
        if size(buf) == 0 {
            out.carry(carried);
        }
    }
    Ok(out.head)
}

fn size(b: &ngx_buf_t) -> usize {
    // SAFETY: pos and last point into the same buffer, pos <= last.
    unsafe { b.last.offset_from(b.pos) }.max(0) as usize
}

/// A chain of new links, from the connection pool.
struct ChainBuilder {
    pool: *mut ngx_pool_t,
    head: *mut ngx_chain_t,
    last: *mut ngx_chain_t,
    /// The last buffer appended is one of this builder's own.
    last_is_own: bool,
}

impl ChainBuilder {
    fn new(pool: *mut ngx_pool_t) -> Self {
        ChainBuilder {
            pool,
            head: ptr::null_mut(),
            last: ptr::null_mut(),
            last_is_own: false,
        }
    }

    /// Appends a link to `b`, a buffer of the proxy's.
    fn push(&mut self, b: *mut ngx_buf_t) -> Option<()> {
        self.last_is_own = false;
        self.link(b)
    }

    fn link(&mut self, b: *mut ngx_buf_t) -> Option<()> {
        // SAFETY: pool is the connection's live pool.
        let cl = NonNull::new(unsafe { ngx::ffi::ngx_alloc_chain_link(self.pool) })?.as_ptr();
        // SAFETY: cl is a fresh link.
        unsafe { (*cl).buf = b };
        self.append(cl);
        Some(())
    }

    /// Appends `cl`, a link whose buffer is set.
    fn append(&mut self, cl: *mut ngx_chain_t) {
        // SAFETY: cl is a valid link; last, when set, is the previous one.
        unsafe {
            (*cl).next = ptr::null_mut();
            match self.last.as_mut() {
                Some(last) => last.next = cl,
                None => self.head = cl,
            }
        }
        self.last = cl;
    }

    /// Appends a copy of `bytes` in a buffer of its own.
    fn push_copy(&mut self, bytes: &[u8]) -> Option<()> {
        // SAFETY: pool is the connection's live pool.
        let b = NonNull::new(unsafe { ngx_create_temp_buf(self.pool, bytes.len()) })?.as_ptr();
        // SAFETY: the new buffer has room for bytes.len() bytes.
        unsafe {
            ptr::copy_nonoverlapping(bytes.as_ptr(), (*b).pos, bytes.len());
            (*b).last = (*b).pos.add(bytes.len());
        }
        self.last_is_own = true;
        self.link(b)
    }

    /// Appends `cl`, a link of this module's over a buffer of its own, both
    /// alive as long as the session. The filters after this one copy the
    /// links they keep, as nginx's write filter does.
    fn push_own(&mut self, cl: &mut ngx_chain_t) {
        self.last_is_own = true;
        self.append(cl);
    }

    /// Sets `last_buf` and `flush` on the last buffer appended, if either is
    /// set in `carried` and the buffer is one of this builder's own.
    fn carry(&mut self, (last_buf, flush): (u32, u32)) {
        if !self.last_is_own {
            return;
        }
        // SAFETY: last, when set, is a link of this builder.
        let Some(last) = (unsafe { self.last.as_mut() }) else {
            return;
        };
        // SAFETY: its buffer is valid.
        let b = unsafe { &mut *last.buf };
        if last_buf == 1 {
            b.set_last_buf(1);
        }
        if flush == 1 {
            b.set_flush(1);
        }
    }
}
