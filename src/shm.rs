//! Shared memory zones: one slab pool that every worker process maps, kept
//! across `nginx -s reload` when a zone keeps its name and size (nginx then
//! hands the new cycle the old mapping, as it does for `limit_req_zone`).
//!
//! A zone's kind ([`ZoneKind`]) says what lives at the start of its pool
//! (`Shared`) and what each configuration cycle knows of it (`Conf`: the
//! key, the rate, the servers to count). The per-cycle part, a [`Zone`], is
//! what `ngx_shm_zone_t.data` points to.

use core::ffi::c_void;
use core::ptr::{self, NonNull};

use ngx::core::SlabPool;
use ngx::ffi::{
    ngx_conf_t, ngx_int_t, ngx_palloc, ngx_parse_size, ngx_shared_memory_add, ngx_shm_zone_t,
    ngx_slab_alloc, ngx_slab_pool_t, ngx_str_t,
};

use crate::session::str_bytes;
use crate::stream::{NGX_ERROR, NGX_OK};

/// What one kind of zone keeps.
///
/// # Safety
/// `create` returns a pointer into the pool it is given, to a `Shared`
/// that is fully initialised and needs no destructor; `Shared` is safe to
/// use from several processes at once through `&Shared` (atomics, or data
/// behind the pool's mutex).
pub unsafe trait ZoneKind: Sized + 'static {
    /// At the start of the zone's slab pool, shared by all workers.
    type Shared: 'static;
    /// What the configuration says about the zone, for one cycle.
    type Conf: Default;
    /// A name for the kind, for messages ("mqtt_limit_conn_zone").
    const DIRECTIVE: &'static str;

    /// What tells this kind's zones from any other: the address of a
    /// `static` of the kind's own, the same in every process and every
    /// cycle that loads this module.
    fn tag() -> *const u8;

    /// Lays out the state of a new zone in its pool, in the master process
    /// before any worker maps it.
    fn create(pool: &SlabPool, zone: &Zone<Self>) -> Option<NonNull<Self::Shared>>;

    /// Called in the master once the cycle's zone has its state, new or
    /// kept from the previous cycle; `false` fails the configuration.
    fn bind(_zone: &mut Zone<Self>) -> bool {
        true
    }
}

/// One cycle's view of a zone (`ngx_shm_zone_t.data`), allocated from the
/// configuration pool.
pub struct Zone<K: ZoneKind> {
    shm_zone: NonNull<ngx_shm_zone_t>,
    shared: *mut K::Shared,
    pub conf: K::Conf,
}

impl<K: ZoneKind> Zone<K> {
    /// The zone `name` of this kind, added to the cycle, or the one added
    /// earlier under that name. `size` 0 refers to a zone whose size a
    /// later directive sets, as `limit_req zone=...` does before its
    /// `limit_req_zone`. `Err` is a message for the configuration.
    pub fn add(
        cf: *mut ngx_conf_t,
        name: &ngx_str_t,
        size: usize,
    ) -> Result<NonNull<Zone<K>>, String> {
        let mut name = *name;
        // SAFETY: cf is the configuration being parsed; nginx only compares
        // the tag.
        let shm_zone =
            unsafe { ngx_shared_memory_add(cf, &mut name, size, K::tag().cast_mut().cast()) };
        let Some(mut shm_zone) = NonNull::new(shm_zone) else {
            // nginx has logged why (the name is a zone of another kind, or
            // of another size).
            return Err(String::new());
        };
        // SAFETY: ngx_shared_memory_add returns the cycle's zone, which
        // lives as long as the cycle; only the configuration thread runs.
        let z = unsafe { shm_zone.as_mut() };
        if let Some(zone) = NonNull::new(z.data.cast::<Zone<K>>()) {
            return Ok(zone);
        }
        // SAFETY: the configuration pool outlives the cycle; ngx_palloc
        // aligns as a pointer, which is all Zone needs.
        let zone = unsafe { ngx_palloc((*cf).pool, size_of::<Zone<K>>()) }.cast::<Zone<K>>();
        let Some(zone) = NonNull::new(zone) else {
            return Err("out of memory".into());
        };
        // SAFETY: a fresh allocation of one Zone, which needs no destructor.
        unsafe {
            zone.as_ptr().write(Zone {
                shm_zone,
                shared: ptr::null_mut(),
                conf: K::Conf::default(),
            })
        };
        z.data = zone.as_ptr().cast();
        z.init = Some(init_zone::<K>);
        Ok(zone)
    }

    /// The zone's name.
    pub fn name(&self) -> &[u8] {
        // SAFETY: the shm zone lives as long as the cycle, as this does.
        str_bytes(unsafe { &self.shm_zone.as_ref().shm.name })
    }

    /// The log of the cycle that maps the zone.
    pub fn log(&self) -> *mut ngx::ffi::ngx_log_t {
        // SAFETY: as in name().
        unsafe { self.shm_zone.as_ref().shm.log }
    }

    /// The shared state; `None` at configuration time, before nginx has
    /// mapped the zone.
    pub fn shared(&self) -> Option<&K::Shared> {
        // SAFETY: set by init_zone to the state at the start of the pool,
        // mapped in every worker for the life of the cycle; K's contract
        // makes it shareable.
        unsafe { self.shared.as_ref() }
    }

    /// The zone's slab pool; `None` before nginx has mapped the zone.
    pub fn pool(&self) -> Option<SlabPool> {
        if self.shared.is_null() {
            return None;
        }
        // SAFETY: the zone is mapped (its state is set) and stays so for
        // the life of the cycle.
        unsafe { SlabPool::from_shm_zone(self.shm_zone.as_ref()) }
    }
}

/// `ngx_shm_zone_t.init`: keeps the previous cycle's state when nginx kept
/// the mapping (`old` is that cycle's `Zone`), otherwise lays out a new one.
unsafe extern "C" fn init_zone<K: ZoneKind>(
    shm_zone: *mut ngx_shm_zone_t,
    old: *mut c_void,
) -> ngx_int_t {
    // SAFETY: nginx passes a zone this module added, whose data is the
    // cycle's Zone<K> (the tag makes it ours); `old` is null or the previous
    // cycle's Zone<K>, alive until that cycle is freed after this call.
    let (zone, old) = unsafe {
        (
            &mut *(*shm_zone).data.cast::<Zone<K>>(),
            old.cast::<Zone<K>>().as_ref(),
        )
    };
    if let Some(old) = old {
        zone.shared = old.shared;
    } else {
        // SAFETY: the zone is mapped; nginx has initialised its slab pool.
        let Some(pool) = (unsafe { SlabPool::from_shm_zone(zone.shm_zone.as_ref()) }) else {
            return NGX_ERROR;
        };
        let shpool: *mut ngx_slab_pool_t = ptr::from_ref(pool.as_ref()).cast_mut();
        // SAFETY: shm.exists is set only where the mapping outlives the
        // master (Windows); the state is then where the first master put it.
        if unsafe { zone.shm_zone.as_ref().shm.exists } != 0 {
            // SAFETY: as above.
            zone.shared = unsafe { (*shpool).data.cast() };
        } else {
            let Some(shared) = K::create(&pool, zone) else {
                return NGX_ERROR;
            };
            zone.shared = shared.as_ptr();
            // SAFETY: only the master runs; the pool's header is its own.
            unsafe {
                (*shpool).data = shared.as_ptr().cast();
                set_log_ctx(shpool, K::DIRECTIVE, zone.name());
            }
        }
    }
    if K::bind(zone) {
        NGX_OK
    } else {
        NGX_ERROR
    }
}

/// What nginx appends to the slab allocator's "no memory" messages.
///
/// # Safety
/// `shpool` is a mapped pool that no other process uses yet.
unsafe fn set_log_ctx(shpool: *mut ngx_slab_pool_t, directive: &str, name: &[u8]) {
    let text = format!(" in {directive} \"{}\"\0", String::from_utf8_lossy(name));
    // SAFETY: the caller's contract; the copy is NUL-terminated.
    unsafe {
        let p = ngx_slab_alloc(shpool, text.len()).cast::<u8>();
        if !p.is_null() {
            ptr::copy_nonoverlapping(text.as_ptr(), p, text.len());
            (*shpool).log_ctx = p;
        }
    }
}

/// Parses `zone=NAME:SIZE` (`NAME` alone where `size_required` is false, a
/// reference to a zone defined elsewhere). Sizes take nginx's suffixes
/// (`10m`, `512k`); a zone smaller than 8 pages cannot hold a slab pool.
pub fn parse_zone_arg(arg: &ngx_str_t, size_required: bool) -> Result<(ngx_str_t, usize), String> {
    let bytes = str_bytes(arg);
    let Some(spec) = bytes.strip_prefix(b"zone=") else {
        return Err(format!(
            "invalid parameter \"{}\"",
            String::from_utf8_lossy(bytes)
        ));
    };
    let (name, size) = match spec.iter().position(|&b| b == b':') {
        Some(colon) => {
            let (name, rest) = spec.split_at(colon);
            (name, rest.get(1..))
        }
        None => (spec, None),
    };
    if name.is_empty() {
        return Err(format!(
            "invalid zone name \"{}\"",
            String::from_utf8_lossy(bytes)
        ));
    }
    // The name points into the directive's argument, which the
    // configuration pool keeps.
    let name_str = ngx_str_t {
        len: name.len(),
        data: name.as_ptr().cast_mut(),
    };
    let size = match size {
        None if size_required => {
            return Err(format!(
                "no zone size in \"{}\"",
                String::from_utf8_lossy(bytes)
            ))
        }
        None => 0,
        Some(size) => {
            let mut s = ngx_str_t {
                len: size.len(),
                data: size.as_ptr().cast_mut(),
            };
            // SAFETY: s points to the argument's bytes, which ngx_parse_size
            // only reads.
            let n = unsafe { ngx_parse_size(&mut s) };
            // SAFETY: a plain read of a global set at start-up.
            let page = unsafe { ngx::ffi::ngx_pagesize };
            if n < 0 || (n as usize) < 8 * page {
                return Err(format!(
                    "zone \"{}\" is too small",
                    String::from_utf8_lossy(name)
                ));
            }
            n as usize
        }
    };
    Ok((name_str, size))
}
