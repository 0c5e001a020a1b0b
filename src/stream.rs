//! A typed layer over nginx's stream module ABI, which ngx does not wrap:
//! the per-module configuration and context slots (the C macros
//! `ngx_stream_get_module_srv_conf`, `ngx_stream_get_module_ctx`, ...), the
//! session handed to a handler, and the phase tables. Every `unsafe` block
//! of the glue that touches a stream structure is here.
//!
//! The shape follows ngx's `HttpModule*` traits, so that a stream API in ngx
//! can take its place.

use core::ffi::{c_char, c_void, CStr};
use core::marker::PhantomData;
use core::ptr::{self, NonNull};

use ngx::core::NGX_CONF_ERROR;
use ngx::core::NGX_CONF_OK;
use ngx::ffi::{
    ngx_array_push, ngx_conf_t, ngx_connection_t, ngx_flag_t, ngx_int_t, ngx_log_t, ngx_module_t,
    ngx_pcalloc, ngx_str_t, ngx_stream_complex_value_t, ngx_stream_conf_ctx_t,
    ngx_stream_core_main_conf_t, ngx_stream_core_module, ngx_stream_core_srv_conf_t,
    ngx_stream_handler_pt, ngx_stream_phases_NGX_STREAM_LOG_PHASE,
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

    /// `ngx_stream_get_flushed_variable()`: the session's value of the
    /// indexed variable `index`; `None` when it fails to evaluate.
    pub fn flushed_variable(
        &mut self,
        index: ngx_uint_t,
    ) -> Option<&ngx::ffi::ngx_stream_variable_value_t> {
        // SAFETY: index was given by ngx_stream_get_variable_index for this
        // stream block; the getter that runs borrows the session itself.
        // The value lives in the session's pool.
        unsafe { ngx::ffi::ngx_stream_get_flushed_variable(self.raw.as_ptr(), index).as_ref() }
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

/// `ngx_stream_ssl_preread_srv_conf_t`, which nginx does not export.
#[repr(C)]
struct SslPrereadSrvConf {
    enabled: ngx_flag_t,
}

/// Whether `ssl_preread on` is set in the server of `cscf`; `module` is
/// `ngx_stream_ssl_preread_module` (from [`StreamConf::module_named`]).
pub fn ssl_preread_enabled(cscf: &ngx_stream_core_srv_conf_t, module: &ngx_module_t) -> bool {
    // SAFETY: cscf is a parsed server's core configuration; the ssl_preread
    // module's slot of its srv_conf array holds that module's
    // configuration, whose only field is the `ssl_preread` flag.
    unsafe {
        (*(*cscf.ctx).srv_conf.add(module.ctx_index))
            .cast::<SslPrereadSrvConf>()
            .as_ref()
            .is_some_and(|conf| conf.enabled == 1)
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

/// The stream SSL module, for its server configuration (`ssl_verify_client`).
#[cfg(ngx_feature = "stream_ssl")]
struct StreamSsl;

#[cfg(all(ngx_feature = "stream_ssl", ngx_stream_virtual_servers))]
type SslSrvConf = ngx::ffi::ngx_stream_ssl_srv_conf_t;
#[cfg(all(ngx_feature = "stream_ssl", not(ngx_stream_virtual_servers)))]
type SslSrvConf = ngx::ffi::ngx_stream_ssl_conf_t;

// SAFETY: ngx_stream_ssl_module's srv_conf is its server configuration
// (SslSrvConf in the nginx being built against); its context is never read
// through this type.
#[cfg(ngx_feature = "stream_ssl")]
unsafe impl StreamModule for StreamSsl {
    type SrvConf = SslSrvConf;
    type Ctx = ();
    fn module() -> &'static ngx_module_t {
        // SAFETY: a static of nginx's, indexed once at configuration time.
        unsafe { &*ptr::addr_of!(ngx::ffi::ngx_stream_ssl_module) }
    }
}

/// Whether a server's devices can present a client certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientCertificates {
    /// No `listen ... ssl`: plain TCP.
    NoTls,
    /// TLS with `ssl_verify_client off`: nginx asks for no certificate.
    NotRequested,
    /// TLS with `ssl_verify_client on`, `optional` or `optional_no_ca`.
    Requested,
}

/// The `stream {}` block during postconfiguration: its core main
/// configuration, its servers and their module configurations.
pub struct StreamConf<'cf> {
    cf: *mut ngx_conf_t,
    cmcf: &'cf mut ngx_stream_core_main_conf_t,
    log: *mut ngx_log_t,
}

impl<'cf> StreamConf<'cf> {
    /// # Safety
    /// `cf` is the configuration of a `stream {}` block whose parsing and
    /// merging are done (a stream module's postconfiguration).
    pub unsafe fn from_conf(cf: *mut ngx_conf_t) -> Option<Self> {
        // SAFETY: the caller's contract; the core module's main_conf slot
        // holds its ngx_stream_core_main_conf_t.
        let (cmcf, log) = unsafe {
            let ctx = (*cf).ctx.cast::<ngx_stream_conf_ctx_t>();
            let cmcf = (*(*ctx).main_conf.add(StreamCore::module().ctx_index))
                .cast::<ngx_stream_core_main_conf_t>()
                .as_mut()?;
            (cmcf, (*cf).log)
        };
        Some(StreamConf { cf, cmcf, log })
    }

    /// The preread handlers installed so far, by the modules configured
    /// before this one: nginx runs a phase's handlers in reverse order of
    /// installation, so these run after a handler installed now.
    pub fn preread_handlers(&self) -> usize {
        self.cmcf.phases[ngx_stream_phases_NGX_STREAM_PREREAD_PHASE as usize]
            .handlers
            .nelts
    }

    /// The module called `name` (`ngx_stream_ssl_preread_module`), if this
    /// nginx has it, built in or loaded.
    pub fn module_named(&self, name: &CStr) -> Option<&'static ngx_module_t> {
        // SAFETY: during configuration the cycle's modules array holds
        // modules_n valid module pointers, each with its name; modules live
        // as long as the process (or their loaded object, which outlives
        // the cycle).
        unsafe {
            let cycle = &*(*self.cf).cycle;
            let modules = core::slice::from_raw_parts(cycle.modules, cycle.modules_n);
            modules
                .iter()
                .filter_map(|m| m.as_ref())
                .find(|m| !m.name.is_null() && CStr::from_ptr(m.name) == name)
        }
    }

    /// The configuration's log: `nginx -t` and the start-up log.
    pub fn log(&self) -> *mut ngx_log_t {
        self.log
    }

    /// Each server's core configuration with M's configuration of it, and
    /// whether its devices can present a client certificate.
    pub fn servers<M: StreamModule>(
        &mut self,
    ) -> impl Iterator<
        Item = (
            &mut ngx_stream_core_srv_conf_t,
            &mut M::SrvConf,
            ClientCertificates,
        ),
    > + '_ {
        let elts = self
            .cmcf
            .servers
            .elts
            .cast::<*mut ngx_stream_core_srv_conf_t>();
        let cmcf: *const ngx_stream_core_main_conf_t = &*self.cmcf;
        (0..self.cmcf.servers.nelts).filter_map(move |i| {
            // SAFETY: servers is an array of nelts server core
            // configurations, each distinct; each has a srv_conf array with
            // a slot per module, M's made by create_srv_conf::<M>. One
            // server's pair is handed out at a time. The main configuration
            // is only read, and only its listen records, which the pair does
            // not cover.
            unsafe {
                let cscf = *elts.add(i);
                let certificates = client_certificates(cmcf, cscf.cast_const());
                let cscf = cscf.as_mut()?;
                let conf = (*(*cscf.ctx).srv_conf.add(M::module().ctx_index))
                    .cast::<M::SrvConf>()
                    .as_mut()?;
                Some((cscf, conf, certificates))
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

/// Whether the server `cscf` of `cmcf` takes client certificates: it has
/// a `listen ... ssl` and an `ssl_verify_client` other than `off`.
///
/// # Safety
/// `cmcf` is a stream block's core main configuration after parsing and
/// merging, and `cscf` null or one of its servers.
#[cfg(ngx_feature = "stream_ssl")]
unsafe fn client_certificates(
    cmcf: *const ngx_stream_core_main_conf_t,
    cscf: *const ngx_stream_core_srv_conf_t,
) -> ClientCertificates {
    // SAFETY: the caller's contract; a server's srv_conf array has a slot
    // for the SSL module, holding its server configuration.
    unsafe {
        if cscf.is_null() || !has_ssl_listener(&*cmcf, cscf) {
            return ClientCertificates::NoTls;
        }
        let sscf = (*(*(*cscf).ctx).srv_conf.add(StreamSsl::module().ctx_index))
            .cast::<SslSrvConf>()
            .as_ref();
        match sscf {
            Some(sscf) if sscf.verify != 0 => ClientCertificates::Requested,
            _ => ClientCertificates::NotRequested,
        }
    }
}

#[cfg(not(ngx_feature = "stream_ssl"))]
unsafe fn client_certificates(
    _cmcf: *const ngx_stream_core_main_conf_t,
    _cscf: *const ngx_stream_core_srv_conf_t,
) -> ClientCertificates {
    ClientCertificates::NoTls
}

/// Whether one of the addresses `cscf` listens on has `ssl`. Since 1.25.5
/// each address of each port lists its servers.
///
/// # Safety
/// As for [`client_certificates`].
#[cfg(all(ngx_feature = "stream_ssl", ngx_stream_virtual_servers))]
unsafe fn has_ssl_listener(
    cmcf: &ngx_stream_core_main_conf_t,
    cscf: *const ngx_stream_core_srv_conf_t,
) -> bool {
    use ngx::ffi::{ngx_stream_conf_addr_t, ngx_stream_conf_port_t};
    // SAFETY: ports is null or an array of ngx_stream_conf_port_t, each
    // with an array of ngx_stream_conf_addr_t, each with an array of
    // server pointers: what ngx_stream_add_listen built while parsing.
    unsafe {
        let Some(ports) = cmcf.ports.as_ref() else {
            return false;
        };
        array::<ngx_stream_conf_port_t>(ports).iter().any(|port| {
            array::<ngx_stream_conf_addr_t>(&port.addrs)
                .iter()
                .any(|addr| {
                    addr.opt.ssl() != 0
                        && array::<*mut ngx_stream_core_srv_conf_t>(&addr.servers)
                            .iter()
                            .any(|&server| ptr::eq(server, cscf))
                })
        })
    }
}

/// Whether one of the `listen` directives of `cscf` has `ssl`. Before
/// 1.25.5 the listens are one array, each naming its server's context.
///
/// # Safety
/// As for [`client_certificates`].
#[cfg(all(ngx_feature = "stream_ssl", not(ngx_stream_virtual_servers)))]
unsafe fn has_ssl_listener(
    cmcf: &ngx_stream_core_main_conf_t,
    cscf: *const ngx_stream_core_srv_conf_t,
) -> bool {
    // SAFETY: listen is an array of ngx_stream_listen_t, one per listen
    // directive; cscf is a live server configuration.
    unsafe {
        let ctx = (*cscf).ctx;
        array::<ngx::ffi::ngx_stream_listen_t>(&cmcf.listen)
            .iter()
            .any(|listen| listen.ctx == ctx && listen.ssl() != 0)
    }
}

/// The elements of an `ngx_array_t`.
///
/// # Safety
/// `a` holds `nelts` initialised elements of type `T` (or none), which
/// outlive the returned slice and are not written while it lives.
#[cfg(ngx_feature = "stream_ssl")]
unsafe fn array<T>(a: &ngx::ffi::ngx_array_t) -> &[T] {
    if a.elts.is_null() || a.nelts == 0 {
        return &[];
    }
    // SAFETY: the caller's contract.
    unsafe { core::slice::from_raw_parts(a.elts.cast::<T>(), a.nelts) }
}
