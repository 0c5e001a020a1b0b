//! Logging with the module's prefix.

/// Writes an error-log line prefixed with "mqtt preread: ".
macro_rules! mqtt_log {
    ($level:expr, $log:expr, $($arg:tt)+) => {
        ngx::ngx_log_error!($level, $log, "mqtt preread: {}", format_args!($($arg)+))
    };
}

/// Writes a stream debug-log line prefixed with "mqtt preread: ".
macro_rules! mqtt_debug {
    ($log:expr, $($arg:tt)+) => {
        ngx::ngx_log_debug!(
            mask: ngx::log::DebugMask::Stream,
            $log,
            "mqtt preread: {}",
            format_args!($($arg)+)
        )
    };
}

pub(crate) use {mqtt_debug, mqtt_log};
