//! A typed layer over nginx's stream module ABI, which ngx does not wrap:
//! the per-module configuration and context slots (the C macros
//! `ngx_stream_get_module_srv_conf`, `ngx_stream_get_module_ctx`, ...), the
//! session handed to a handler, and the phase tables. Every `unsafe` block
//! of the glue that touches a stream structure is here.
//!
//! The shape follows ngx's `HttpModule*` traits, so that a stream API in ngx
//! can take its place.

use core::ffi::{c_char, c_void};
use core::marker::PhantomData;
use core::ptr::{self, NonNull};

use ngx::core::NGX_CONF_ERROR;
use ngx::core::NGX_CONF_OK;
use ngx::ffi::{
    ngx_array_push, ngx_conf_t, ngx_connection_t, ngx_int_t, ngx_module_t, ngx_pcalloc, ngx_str_t,
    ngx_stream_complex_value_t, ngx_stream_conf_ctx_t, ngx_stream_core_main_conf_t,
    ngx_stream_core_module, ngx_stream_core_srv_conf_t, ngx_stream_handler_pt,
    ngx_stream_phase_handler_t, ngx_stream_phases_NGX_STREAM_LOG_PHASE,
    ngx_stream_phases_NGX_STREAM_PREREAD_PHASE, ngx_stream_session_t, ngx_uint_t,
};

pub const NGX_OK: ngx_int_t = ngx::ffi::NGX_OK as ngx_int_t;
pub const NGX_ERROR: ngx_int_t = ngx::ffi::NGX_ERROR as ngx_int_t;
pub const NGX_AGAIN: ngx_int_t = ngx::ffi::NGX_AGAIN as ngx_int_t;
pub const NGX_DECLINED: ngx_int_t = ngx::ffi::NGX_DECLINED as ngx_int_t;

/// A stream module with a server configuration and a per-session context.
///
/// # Safety
/// `module()` must be the module whose `create_srv_conf` makes a
/// `Self::SrvConf` (as [`create_srv_conf`] does), and its context slot must
/// only ever hold a `Self::Ctx` stored through [`Session::set_ctx`].
pub unsafe trait StreamModule {
    type SrvConf: 'static;
    type Ctx: 'static;
    fn module() -> &'static ngx_module_t;
}

/// Merging a server configuration with the one it inherits from.
pub trait Merge {
    fn merge(&mut self, prev: &Self);
}

/// `create_srv_conf` for a module whose configuration starts as `Default`.
pub unsafe extern "C" fn create_srv_conf<M: StreamModule>(cf: *mut ngx_conf_t) -> *mut c_void
where
    M::SrvConf: Default,
{
    // SAFETY: cf is the configuration being parsed; its pool outlives the
    // cycle, and ngx_pcalloc aligns for any configuration struct.
    let conf = unsafe { ngx_pcalloc((*cf).pool, size_of::<M::SrvConf>()) }.cast::<M::SrvConf>();
    if !conf.is_null() {
        // SAFETY: a fresh allocation of the right size; the configuration
        // lives as long as the pool and needs no destructor.
        unsafe { conf.write(M::SrvConf::default()) };
    }
    conf.cast()
}

/// `merge_srv_conf` through [`Merge`].
pub unsafe extern "C" fn merge_srv_conf<M: StreamModule>(
    _cf: *mut ngx_conf_t,
    prev: *mut c_void,
    conf: *mut c_void,
) -> *mut c_char
where
    M::SrvConf: Merge,
{
    // SAFETY: nginx passes the two levels' configurations, both made by
    // create_srv_conf::<M> and distinct.
    match unsafe {
        (
            prev.cast::<M::SrvConf>().as_ref(),
            conf.cast::<M::SrvConf>().as_mut(),
        )
    } {
        (Some(prev), Some(conf)) => {
            conf.merge(prev);
            NGX_CONF_OK
        }
        _ => NGX_CONF_ERROR,
    }
}

/// A live stream session, for the duration `'a` of one handler call.
///
/// What it hands out follows who owns what: the server configurations
/// belong to the cycle and are shared (`&'a`); the connection and this
/// module's context are exclusive to the handler and borrowed from `&mut
/// self`, so no two mutable references to one object can exist.
pub struct Session<'a> {
    raw: NonNull<ngx_stream_session_t>,
    _handler_call: PhantomData<&'a mut ngx_stream_session_t>,
}

impl<'a> Session<'a> {
    /// # Safety
    /// `s` is the session nginx passed to the running handler, and nothing
    /// else refers to it, its connection or the module contexts for `'a`.
    pub unsafe fn from_ptr(s: *mut ngx_stream_session_t) -> Option<Self> {
        Some(Session {
            raw: NonNull::new(s)?,
            _handler_call: PhantomData,
        })
    }

    pub fn as_ptr(&mut self) -> *mut ngx_stream_session_t {
        self.raw.as_ptr()
    }

    fn raw(&self) -> &ngx_stream_session_t {
        // SAFETY: from_ptr's contract: a live session.
        unsafe { self.raw.as_ref() }
    }

    pub fn status(&self) -> ngx_uint_t {
        self.raw().status
    }

    pub fn set_status(&mut self, status: ngx_uint_t) {
        // SAFETY: from_ptr's contract: no other reference to the session.
        unsafe { self.raw.as_mut().status = status };
    }

    pub fn connection(&self) -> &ngx_connection_t {
        // SAFETY: a live session always has a valid connection.
        unsafe { &*self.raw().connection }
    }

    /// `ngx_stream_get_module_srv_conf(s, M)`.
    pub fn srv_conf<M: StreamModule>(&self) -> Option<&'a M::SrvConf> {
        // SAFETY: srv_conf has a slot per stream module, indexed by
        // ctx_index; M's slot holds the M::SrvConf made by create_srv_conf,
        // in the cycle's pool, which outlives the session. Configurations
        // are not written after the configuration is loaded.
        unsafe {
            (*self.raw().srv_conf.add(M::module().ctx_index))
                .cast::<M::SrvConf>()
                .as_ref()
        }
    }

    /// The stream core module's server configuration (`preread_buffer_size`).
    pub fn core_srv_conf(&self) -> Option<&'a ngx_stream_core_srv_conf_t> {
        self.srv_conf::<StreamCore>()
    }

    /// Whether another handler of the current phase runs after the one
    /// running now. nginx runs a phase's handlers in reverse order of
    /// registration, each phase's handlers side by side in the phase
    /// engine with the same checker.
    pub fn later_handler_in_phase(&self) -> bool {
        let index = StreamCore::module().ctx_index;
        // SAFETY: main_conf has a slot per stream module; the core module's
        // holds its main configuration, in the cycle's pool. Its phase
        // engine ends with the content phase's entry, so the entry after the
        // running one exists.
        unsafe {
            let Some(cmcf) = (*self.raw().main_conf.add(index))
                .cast::<ngx_stream_core_main_conf_t>()
                .as_ref()
            else {
                return false;
            };
            let Ok(current) = usize::try_from(self.raw().phase_handler) else {
                return false;
            };
            let ph = cmcf.phase_engine.handlers.add(current);
            let checker = |ph: *const ngx_stream_phase_handler_t| (*ph).checker.map(|f| f as usize);
            checker(ph.add(1)) == checker(ph)
        }
    }

    /// `ngx_stream_complex_value()`: `cv` evaluated for this session, in its
    /// pool; `None` when a variable fails to evaluate.
    pub fn complex_value(&mut self, cv: &ngx_stream_complex_value_t) -> Option<ngx_str_t> {
        let mut value = ngx_str_t {
            len: 0,
            data: ptr::null_mut(),
        };
        // SAFETY: cv was compiled for this stream block at configuration
        // time; nginx reads it and writes only the result. Variable getters
        // that run meanwhile borrow the session themselves: nothing of it is
        // borrowed here.
        let rc = unsafe {
            ngx::ffi::ngx_stream_complex_value(
                self.raw.as_ptr(),
                ptr::from_ref(cv).cast_mut(),
                &mut value,
            )
        };
        (rc == NGX_OK).then_some(value)
    }

    /// `ngx_stream_get_module_ctx(s, M)`.
    pub fn ctx<M: StreamModule>(&self) -> Option<&M::Ctx> {
        // SAFETY: the slot holds null or the M::Ctx set_ctx stored, which
        // lives in the connection pool as long as the session.
        unsafe { self.ctx_slot::<M>().cast::<M::Ctx>().as_ref() }
    }

    /// The connection and M's context at once: distinct objects, so both may
    /// be borrowed mutably together.
    pub fn connection_and_ctx<M: StreamModule>(
        &mut self,
    ) -> (&mut ngx_connection_t, Option<&mut M::Ctx>) {
        // SAFETY: as in ctx(), exclusive by from_ptr's contract; the context
        // is a pool allocation of its own, not part of the connection.
        let ctx = unsafe { self.ctx_slot::<M>().cast::<M::Ctx>().as_mut() };
        // SAFETY: a live session always has a valid connection, exclusive by from_ptr's contract.
        let c = unsafe { &mut *self.raw().connection };
        (c, ctx)
    }

    /// `ngx_stream_set_ctx(s, ctx, M)`. `ctx` must live as long as the
    /// session (an allocation from its connection pool).
    pub fn set_ctx<M: StreamModule>(&mut self, ctx: NonNull<M::Ctx>) {
        // SAFETY: M's slot in the session's context array, ours to write.
        unsafe { *self.raw().ctx.add(M::module().ctx_index) = ctx.as_ptr().cast() };
    }

    fn ctx_slot<M: StreamModule>(&self) -> *mut c_void {
        // SAFETY: ctx has a slot per stream module, indexed by ctx_index.
        unsafe { *self.raw().ctx.add(M::module().ctx_index) }
    }
}

/// The stream core module, for its server configuration.
struct StreamCore;

// SAFETY: ngx_stream_core_module's srv_conf is an ngx_stream_core_srv_conf_t;
// its context is never read through this type.
unsafe impl StreamModule for StreamCore {
    type SrvConf = ngx_stream_core_srv_conf_t;
    type Ctx = ();
    fn module() -> &'static ngx_module_t {
        // SAFETY: a static of nginx's, indexed once at configuration time.
        unsafe { &*ptr::addr_of!(ngx_stream_core_module) }
    }
}

/// The `stream {}` block during postconfiguration: its core main
/// configuration, its servers and their module configurations.
pub struct StreamConf<'cf> {
    cmcf: &'cf mut ngx_stream_core_main_conf_t,
}

impl<'cf> StreamConf<'cf> {
    /// # Safety
    /// `cf` is the configuration of a `stream {}` block whose parsing and
    /// merging are done (a stream module's postconfiguration).
    pub unsafe fn from_conf(cf: *mut ngx_conf_t) -> Option<Self> {
        // SAFETY: the caller's contract; the core module's main_conf slot
        // holds its ngx_stream_core_main_conf_t.
        let cmcf = unsafe {
            let ctx = (*cf).ctx.cast::<ngx_stream_conf_ctx_t>();
            (*(*ctx).main_conf.add(StreamCore::module().ctx_index))
                .cast::<ngx_stream_core_main_conf_t>()
                .as_mut()?
        };
        Some(StreamConf { cmcf })
    }

    /// Each server's core configuration with M's configuration of it.
    pub fn servers<M: StreamModule>(
        &mut self,
    ) -> impl Iterator<Item = (&mut ngx_stream_core_srv_conf_t, &mut M::SrvConf)> + '_ {
        let elts = self
            .cmcf
            .servers
            .elts
            .cast::<*mut ngx_stream_core_srv_conf_t>();
        (0..self.cmcf.servers.nelts).filter_map(move |i| {
            // SAFETY: servers is an array of nelts server core
            // configurations, each distinct; each has a srv_conf array with
            // a slot per module, M's made by create_srv_conf::<M>. One
            // server's pair is handed out at a time.
            unsafe {
                let cscf = (*elts.add(i)).as_mut()?;
                let conf = (*(*cscf.ctx).srv_conf.add(M::module().ctx_index))
                    .cast::<M::SrvConf>()
                    .as_mut()?;
                Some((cscf, conf))
            }
        })
    }

    /// Appends `handler` to the preread phase; false when out of memory.
    pub fn push_preread_handler(&mut self, handler: ngx_stream_handler_pt) -> bool {
        let phase = &mut self.cmcf.phases[ngx_stream_phases_NGX_STREAM_PREREAD_PHASE as usize];
        // SAFETY: the phase's handler array, which nginx sized for
        // ngx_stream_handler_pt elements; postconfiguration may add to it.
        unsafe {
            let slot = ngx_array_push(&mut phase.handlers).cast::<ngx_stream_handler_pt>();
            if slot.is_null() {
                return false;
            }
            slot.write(handler);
        }
        true
    }

    /// Puts `handler` first in the log phase, so it runs before the access
    /// log writes `$status` and the variables; false when out of memory.
    pub fn prepend_log_handler(&mut self, handler: ngx_stream_handler_pt) -> bool {
        let handlers =
            &mut self.cmcf.phases[ngx_stream_phases_NGX_STREAM_LOG_PHASE as usize].handlers;
        // SAFETY: as in push_preread_handler; after the push the array holds
        // nelts initialised elements, moved up by one to free the first.
        unsafe {
            if ngx_array_push(handlers).is_null() {
                return false;
            }
            let elts = handlers.elts.cast::<ngx_stream_handler_pt>();
            ptr::copy(elts, elts.add(1), handlers.nelts - 1);
            elts.write(handler);
        }
        true
    }
}
