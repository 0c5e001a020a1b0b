//! A small layer over the stream-module C macros that bindgen cannot see
//! (`ngx_stream_get_module_srv_conf` and friends).

use core::ffi::c_void;
use core::ptr::NonNull;

use ngx::ffi::{
    ngx_array_push, ngx_conf_t, ngx_connection_t, ngx_module_t, ngx_stream_conf_ctx_t,
    ngx_stream_core_main_conf_t, ngx_stream_core_module, ngx_stream_core_srv_conf_t,
    ngx_stream_handler_pt, ngx_stream_phases_NGX_STREAM_LOG_PHASE,
    ngx_stream_phases_NGX_STREAM_PREREAD_PHASE, ngx_stream_session_t,
};

/// Access to a stream session's connection and per-module slots.
///
/// The objects behind these references belong to nginx, not to the session
/// struct, and a worker runs one handler at a time; so a shared session
/// reference may hand out mutable access to them.
#[allow(clippy::mut_from_ref)]
pub trait SessionExt {
    fn connection(&self) -> &mut ngx_connection_t;
    /// `ngx_stream_get_module_srv_conf(s, module)`.
    fn srv_conf<T>(&self, module: &ngx_module_t) -> Option<&'static T>;
    /// `ngx_stream_get_module_ctx(s, module)`.
    fn module_ctx<T>(&self, module: &ngx_module_t) -> Option<&mut T>;
    /// `ngx_stream_set_ctx(s, ctx, module)`.
    fn set_module_ctx<T>(&mut self, module: &ngx_module_t, ctx: NonNull<T>);
    /// The core module's server configuration, which every session has.
    fn core_srv_conf(&self) -> &'static ngx_stream_core_srv_conf_t;
}

impl SessionExt for ngx_stream_session_t {
    fn connection(&self) -> &mut ngx_connection_t {
        // SAFETY: a live session always owns a valid connection, and nginx runs
        // one handler at a time per worker, so no other reference is active.
        unsafe { &mut *self.connection }
    }

    fn srv_conf<T>(&self, module: &ngx_module_t) -> Option<&'static T> {
        // SAFETY: srv_conf has one slot per stream module, indexed by
        // ctx_index; the slot holds the `T` that module's create_srv_conf made,
        // allocated from the cycle's pool, which outlives every session.
        unsafe { (*self.srv_conf.add(module.ctx_index)).cast::<T>().as_ref() }
    }

    fn module_ctx<T>(&self, module: &ngx_module_t) -> Option<&mut T> {
        // SAFETY: ctx has one slot per stream module; ours holds either null
        // or the `T` that set_module_ctx stored, allocated from the session's
        // connection pool and so alive as long as the session.
        unsafe { (*self.ctx.add(module.ctx_index)).cast::<T>().as_mut() }
    }

    fn set_module_ctx<T>(&mut self, module: &ngx_module_t, ctx: NonNull<T>) {
        // SAFETY: as in module_ctx; the slot is ours to write.
        unsafe { *self.ctx.add(module.ctx_index) = ctx.as_ptr().cast::<c_void>() }
    }

    fn core_srv_conf(&self) -> &'static ngx_stream_core_srv_conf_t {
        // SAFETY: the core module is always present and has a srv conf.
        let module = unsafe { &*core::ptr::addr_of!(ngx_stream_core_module) };
        self.srv_conf(module).expect("stream core srv conf")
    }
}

/// `ngx_stream_conf_get_module_main_conf(cf, ngx_stream_core_module)`.
///
/// # Safety
/// `cf` must be a configuration being parsed inside a `stream {}` block.
pub unsafe fn core_main_conf(
    cf: *mut ngx_conf_t,
) -> Option<&'static mut ngx_stream_core_main_conf_t> {
    let ctx = (*cf).ctx.cast::<ngx_stream_conf_ctx_t>();
    let index = (*core::ptr::addr_of!(ngx_stream_core_module)).ctx_index;
    (*(*ctx).main_conf.add(index))
        .cast::<ngx_stream_core_main_conf_t>()
        .as_mut()
}

/// `ngx_stream_conf_get_module_srv_conf(cscf, module)` for a server's core
/// configuration: the server-level configuration of another module.
///
/// # Safety
/// `cscf` must be a stream server's core configuration after parsing.
pub unsafe fn server_module_conf<T>(
    cscf: &ngx_stream_core_srv_conf_t,
    module: &ngx_module_t,
) -> Option<&'static mut T> {
    (*(*cscf.ctx).srv_conf.add(module.ctx_index))
        .cast::<T>()
        .as_mut()
}

/// Appends `handler` to the preread phase.
///
/// # Safety
/// Must run in a stream module's postconfiguration.
pub unsafe fn push_preread_handler(
    cmcf: &mut ngx_stream_core_main_conf_t,
    handler: ngx_stream_handler_pt,
) -> bool {
    let phase = &mut cmcf.phases[ngx_stream_phases_NGX_STREAM_PREREAD_PHASE as usize];
    let slot = ngx_array_push(&mut phase.handlers).cast::<ngx_stream_handler_pt>();
    if slot.is_null() {
        return false;
    }
    slot.write(handler);
    true
}

/// Puts `handler` first in the log phase, so it runs before the access log
/// writes `$status` and the variables.
///
/// # Safety
/// Must run in a stream module's postconfiguration.
pub unsafe fn prepend_log_handler(
    cmcf: &mut ngx_stream_core_main_conf_t,
    handler: ngx_stream_handler_pt,
) -> bool {
    let handlers = &mut cmcf.phases[ngx_stream_phases_NGX_STREAM_LOG_PHASE as usize].handlers;
    if ngx_array_push(handlers).is_null() {
        return false;
    }
    let elts = handlers.elts.cast::<ngx_stream_handler_pt>();
    core::ptr::copy(elts, elts.add(1), handlers.nelts - 1);
    elts.write(handler);
    true
}

/// The servers of the `stream {}` block being configured.
///
/// # Safety
/// `cmcf` must be the stream core main configuration after parsing.
pub unsafe fn servers(
    cmcf: &ngx_stream_core_main_conf_t,
) -> impl Iterator<Item = &'static mut ngx_stream_core_srv_conf_t> + '_ {
    let elts = cmcf.servers.elts.cast::<*mut ngx_stream_core_srv_conf_t>();
    (0..cmcf.servers.nelts).filter_map(move |i| (*elts.add(i)).as_mut())
}
