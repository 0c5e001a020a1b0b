//! Directives and their server-level configuration.

use core::ffi::c_void;
use core::mem::offset_of;
use core::ptr;

use mqtt_core::policy::ClientIdPolicy;
use ngx::ffi::{
    ngx_command_t, ngx_conf_enum_t, ngx_conf_set_enum_slot, ngx_conf_set_flag_slot, ngx_flag_t,
    ngx_str_t, ngx_stream_content_handler_pt, ngx_uint_t, NGX_CONF_FLAG, NGX_CONF_TAKE1,
    NGX_CONF_UNSET, NGX_STREAM_MAIN_CONF, NGX_STREAM_SRV_CONF, NGX_STREAM_SRV_CONF_OFFSET,
};
use ngx::ngx_string;

use crate::stream::Merge;

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
    /// The server's content handler (`proxy_pass`), wrapped by the gate that
    /// keeps undecided sessions away from the upstream.
    pub content_handler: ngx_stream_content_handler_pt,
}

impl MqttSrvConf {
    /// Whether the module parses CONNECTs in this server.
    pub fn enabled(&self) -> bool {
        self.preread == 1 || self.policy() != ClientIdPolicy::Off
    }

    pub fn policy(&self) -> ClientIdPolicy {
        match self.client_id_match {
            POLICY_CN => ClientIdPolicy::Cn,
            POLICY_SAN => ClientIdPolicy::San,
            POLICY_CN_OR_SAN => ClientIdPolicy::CnOrSan,
            _ => ClientIdPolicy::Off,
        }
    }

    /// Whether a session may reach the upstream only after an accepted CONNECT.
    pub fn requires_connect(&self) -> bool {
        self.reject_malformed == 1 || self.policy() != ClientIdPolicy::Off
    }
}

const POLICY_OFF: ngx_uint_t = 0;
const POLICY_CN: ngx_uint_t = 1;
const POLICY_SAN: ngx_uint_t = 2;
const POLICY_CN_OR_SAN: ngx_uint_t = 3;

static mut CLIENT_ID_MATCH_VALUES: [ngx_conf_enum_t; 5] = [
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

pub static mut COMMANDS: [ngx_command_t; 5] = [
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
    ngx_command_t::empty(),
];

impl Default for MqttSrvConf {
    fn default() -> Self {
        MqttSrvConf {
            preread: UNSET_FLAG,
            client_id_match: UNSET_UINT,
            reject_malformed: UNSET_FLAG,
            reject_connack: UNSET_FLAG,
            content_handler: None,
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
    }
}

/// `ngx_conf_merge_value` / `ngx_conf_merge_uint_value`.
fn merge<T: Copy + PartialEq>(value: &mut T, prev: T, unset: T, default: T) {
    if *value == unset {
        *value = if prev == unset { default } else { prev };
    }
}
