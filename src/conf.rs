//! Directives and their server-level configuration (the rewrite's
//! `mqtt_set_connect` is parsed in [`set_connect`]).

use core::ffi::c_void;
use core::mem::offset_of;
use core::ptr::{self, NonNull};

use mqtt_core::policy::{ClientIdPolicy, SanKind};
use ngx::ffi::{
    ngx_array_t, ngx_bufs_t, ngx_command_t, ngx_conf_enum_t, ngx_conf_set_bufs_slot,
    ngx_conf_set_enum_slot, ngx_conf_set_flag_slot, ngx_flag_t, ngx_str_t,
    ngx_stream_content_handler_pt, ngx_uint_t, NGX_CONF_FLAG, NGX_CONF_TAKE1, NGX_CONF_TAKE12,
    NGX_CONF_TAKE2, NGX_CONF_TAKE23, NGX_CONF_TAKE3, NGX_CONF_UNSET, NGX_STREAM_MAIN_CONF,
    NGX_STREAM_SRV_CONF, NGX_STREAM_SRV_CONF_OFFSET,
};
use ngx::ngx_string;

use crate::limit::{directives as limit, ConnZone, LimitRef, RateZone};
use crate::stream::Merge;
use crate::{metrics, set_connect};

const UNSET_FLAG: ngx_flag_t = NGX_CONF_UNSET as ngx_flag_t;
const UNSET_UINT: ngx_uint_t = ngx_uint_t::MAX; // NGX_CONF_UNSET_UINT

/// Server configuration; every field is merged from `stream {}` into `server {}`.
pub struct MqttSrvConf {
    /// `mqtt_preread`
    pub preread: ngx_flag_t,
    /// `mqtt_client_id_match`, one of the `POLICY_*` values.
    pub client_id_match: ngx_uint_t,
    /// `mqtt_reject_malformed`
    pub reject_malformed: ngx_flag_t,
    /// `mqtt_reject_connack`
    pub reject_connack: ngx_flag_t,
    /// `mqtt`: rewrite the CONNECT on its way to the upstream.
    pub rewrite: ngx_flag_t,
    /// `mqtt_buffers`: `num * size` bounds the rewritten CONNECT.
    pub buffers: ngx_bufs_t,
    /// `mqtt_set_connect`, an array of [`set_connect::SetConnect`] (server level only;
    /// null without any).
    pub set_connect: *mut ngx_array_t,
    /// Whether a preread handler that runs after this module's may need room
    /// in the preread buffer (set at postconfiguration).
    pub room_for_later_handlers: bool,
    /// The server's content handler (`proxy_pass`), wrapped by the gate that
    /// keeps undecided sessions away from the upstream.
    pub content_handler: ngx_stream_content_handler_pt,
    /// `mqtt_limit_connect`: the zone and the burst.
    pub limit_connect: LimitRef<RateZone>,
    /// `mqtt_limit_conn`: the zone and the number of sessions.
    pub limit_conn: LimitRef<ConnZone>,
    pub limit_conn_takeover: bool,
    /// `mqtt_metrics`: where this server's sessions are counted (server
    /// level only).
    pub metrics: Option<NonNull<metrics::CountedServer>>,
}

impl MqttSrvConf {
    /// Whether the module parses CONNECTs in this server.
    pub fn enabled(&self) -> bool {
        self.preread == 1
            || self.policy() != ClientIdPolicy::Off
            || self.rewrites()
            || self.limits()
            || self.metrics.is_some()
    }

    /// Whether admission control applies to this server's sessions.
    pub fn limits(&self) -> bool {
        self.limit_connect.is_set() || self.limit_conn.is_set()
    }

    /// Whether the first CONNECT is rewritten on its way to the upstream.
    pub fn rewrites(&self) -> bool {
        self.rewrite == 1
    }

    /// The largest rewritten CONNECT `mqtt_buffers` allows.
    pub fn rewrite_limit(&self) -> usize {
        usize::try_from(self.buffers.num)
            .unwrap_or(0)
            .saturating_mul(self.buffers.size)
    }

    pub fn policy(&self) -> ClientIdPolicy {
        match self.client_id_match {
            POLICY_CN => ClientIdPolicy::Cn,
            POLICY_SAN => ClientIdPolicy::San(SanKind::Any),
            POLICY_SAN_DNS => ClientIdPolicy::San(SanKind::Dns),
            POLICY_SAN_URI => ClientIdPolicy::San(SanKind::Uri),
            POLICY_SAN_EMAIL => ClientIdPolicy::San(SanKind::Email),
            POLICY_CN_OR_SAN => ClientIdPolicy::CnOrSan,
            _ => ClientIdPolicy::Off,
        }
    }

    /// Whether a session may reach the upstream only after an accepted
    /// CONNECT. A CONNECT that is to be rewritten, or whose key is to be
    /// limited, must have been parsed, whatever `mqtt_reject_malformed` says.
    pub fn requires_connect(&self) -> bool {
        self.reject_malformed == 1
            || self.policy() != ClientIdPolicy::Off
            || self.rewrites()
            || self.limits()
    }
}

const POLICY_OFF: ngx_uint_t = 0;
const POLICY_CN: ngx_uint_t = 1;
const POLICY_SAN: ngx_uint_t = 2;
const POLICY_CN_OR_SAN: ngx_uint_t = 3;
const POLICY_SAN_DNS: ngx_uint_t = 4;
const POLICY_SAN_URI: ngx_uint_t = 5;
const POLICY_SAN_EMAIL: ngx_uint_t = 6;

static mut CLIENT_ID_MATCH_VALUES: [ngx_conf_enum_t; 8] = [
    ngx_conf_enum_t {
        name: ngx_string!("off"),
        value: POLICY_OFF,
    },
    ngx_conf_enum_t {
        name: ngx_string!("cn"),
        value: POLICY_CN,
    },
    ngx_conf_enum_t {
        name: ngx_string!("san"),
        value: POLICY_SAN,
    },
    ngx_conf_enum_t {
        name: ngx_string!("san_dns"),
        value: POLICY_SAN_DNS,
    },
    ngx_conf_enum_t {
        name: ngx_string!("san_uri"),
        value: POLICY_SAN_URI,
    },
    ngx_conf_enum_t {
        name: ngx_string!("san_email"),
        value: POLICY_SAN_EMAIL,
    },
    ngx_conf_enum_t {
        name: ngx_string!("cn_or_san"),
        value: POLICY_CN_OR_SAN,
    },
    ngx_conf_enum_t {
        name: ngx_str_t {
            len: 0,
            data: ptr::null_mut(),
        },
        value: 0,
    },
];

const CONTEXT: ngx_uint_t = (NGX_STREAM_MAIN_CONF | NGX_STREAM_SRV_CONF) as ngx_uint_t;

const MAIN: ngx_uint_t = NGX_STREAM_MAIN_CONF as ngx_uint_t;

pub static mut COMMANDS: [ngx_command_t; 14] = [
    ngx_command_t {
        name: ngx_string!("mqtt_preread"),
        type_: CONTEXT | NGX_CONF_FLAG as ngx_uint_t,
        set: Some(ngx_conf_set_flag_slot),
        conf: NGX_STREAM_SRV_CONF_OFFSET,
        offset: offset_of!(MqttSrvConf, preread),
        post: ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("mqtt_client_id_match"),
        type_: CONTEXT | NGX_CONF_TAKE1 as ngx_uint_t,
        set: Some(ngx_conf_set_enum_slot),
        conf: NGX_STREAM_SRV_CONF_OFFSET,
        offset: offset_of!(MqttSrvConf, client_id_match),
        // Only the address is taken; nginx reads the table.
        post: ptr::addr_of_mut!(CLIENT_ID_MATCH_VALUES).cast::<c_void>(),
    },
    ngx_command_t {
        name: ngx_string!("mqtt_reject_malformed"),
        type_: CONTEXT | NGX_CONF_FLAG as ngx_uint_t,
        set: Some(ngx_conf_set_flag_slot),
        conf: NGX_STREAM_SRV_CONF_OFFSET,
        offset: offset_of!(MqttSrvConf, reject_malformed),
        post: ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("mqtt_reject_connack"),
        type_: CONTEXT | NGX_CONF_FLAG as ngx_uint_t,
        set: Some(ngx_conf_set_flag_slot),
        conf: NGX_STREAM_SRV_CONF_OFFSET,
        offset: offset_of!(MqttSrvConf, reject_connack),
        post: ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("mqtt"),
        type_: CONTEXT | NGX_CONF_FLAG as ngx_uint_t,
        set: Some(ngx_conf_set_flag_slot),
        conf: NGX_STREAM_SRV_CONF_OFFSET,
        offset: offset_of!(MqttSrvConf, rewrite),
        post: ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("mqtt_buffers"),
        type_: CONTEXT | NGX_CONF_TAKE2 as ngx_uint_t,
        set: Some(ngx_conf_set_bufs_slot),
        conf: NGX_STREAM_SRV_CONF_OFFSET,
        offset: offset_of!(MqttSrvConf, buffers),
        post: ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("mqtt_set_connect"),
        type_: (NGX_STREAM_SRV_CONF | NGX_CONF_TAKE23) as ngx_uint_t,
        set: Some(set_connect::set_connect),
        conf: NGX_STREAM_SRV_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("mqtt_rewrite_buffer_size"),
        type_: (NGX_STREAM_SRV_CONF | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(set_connect::rewrite_buffer_size),
        conf: NGX_STREAM_SRV_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("mqtt_limit_connect_zone"),
        type_: MAIN | NGX_CONF_TAKE3 as ngx_uint_t,
        set: Some(limit::limit_connect_zone),
        conf: NGX_STREAM_SRV_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("mqtt_limit_connect"),
        type_: CONTEXT | NGX_CONF_TAKE12 as ngx_uint_t,
        set: Some(limit::limit_connect),
        conf: NGX_STREAM_SRV_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("mqtt_limit_conn_zone"),
        type_: MAIN | NGX_CONF_TAKE2 as ngx_uint_t,
        set: Some(limit::limit_conn_zone),
        conf: NGX_STREAM_SRV_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("mqtt_limit_conn"),
        type_: CONTEXT | NGX_CONF_TAKE23 as ngx_uint_t,
        set: Some(limit::limit_conn),
        conf: NGX_STREAM_SRV_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("mqtt_metrics"),
        type_: (NGX_STREAM_SRV_CONF | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(metrics::set_metrics),
        conf: NGX_STREAM_SRV_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    },
    ngx_command_t::empty(),
];

impl Default for MqttSrvConf {
    fn default() -> Self {
        MqttSrvConf {
            preread: UNSET_FLAG,
            client_id_match: UNSET_UINT,
            reject_malformed: UNSET_FLAG,
            reject_connack: UNSET_FLAG,
            rewrite: UNSET_FLAG,
            // ngx_conf_set_bufs_slot's "unset".
            buffers: ngx_bufs_t { num: 0, size: 0 },
            set_connect: ptr::null_mut(),
            room_for_later_handlers: false,
            content_handler: None,
            limit_connect: LimitRef::UNSET,
            limit_conn: LimitRef::UNSET,
            limit_conn_takeover: false,
            metrics: None,
        }
    }
}

impl Merge for MqttSrvConf {
    fn merge(&mut self, prev: &Self) {
        merge(&mut self.preread, prev.preread, UNSET_FLAG, 0);
        merge(
            &mut self.client_id_match,
            prev.client_id_match,
            UNSET_UINT,
            POLICY_OFF,
        );
        merge(
            &mut self.reject_malformed,
            prev.reject_malformed,
            UNSET_FLAG,
            1,
        );
        merge(&mut self.reject_connack, prev.reject_connack, UNSET_FLAG, 1);
        merge(&mut self.rewrite, prev.rewrite, UNSET_FLAG, 0);
        if !self.limit_connect.is_set() {
            self.limit_connect = prev.limit_connect;
        }
        if !self.limit_conn.is_set() {
            self.limit_conn = prev.limit_conn;
            self.limit_conn_takeover = prev.limit_conn_takeover;
        }
        // ngx_conf_merge_bufs_value, with NGINX Plus's default of 100 1k.
        if self.buffers.num == 0 {
            self.buffers = if prev.buffers.num != 0 {
                prev.buffers
            } else {
                ngx_bufs_t {
                    num: 100,
                    size: 1024,
                }
            };
        }
    }
}

/// `ngx_conf_merge_value` / `ngx_conf_merge_uint_value`.
fn merge<T: Copy + PartialEq>(value: &mut T, prev: T, unset: T, default: T) {
    if *value == unset {
        *value = if prev == unset { default } else { prev };
    }
}
