//! The `sipcti.toml` configuration: parsing, validation with errors that
//! name the key, and the effective configuration printed by
//! `sipcti check-config` (with the Zammad token redacted).
//!
//! * The sections: the file as written, key by key, with defaults
//!   ([`FileConfig`], `file.rs`).
//! * routes and phonebook: `[[routes]]` and `[phonebook]` validation (`routes.rs`).
//! * TOML errors without the token: [`toml_error`] (`toml_error.rs`).
//! * [`Config`]: validation of the whole file (`mod.rs`).

mod file;
mod routes;
mod toml_error;

pub use file::*;
use routes::{parse_phonebook, parse_routes};
pub use toml_error::toml_error;
#[cfg(test)]
use toml_error::{key_path_at, redact_urls_in, scrub_secrets};

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use sipcti_wire::TransportKind;

/// Environment variable that may hold the Zammad CTI URL (it holds the token).
pub const ZAMMAD_URL_ENV: &str = "SIPCTI_ZAMMAD_URL";

/// A configuration error. The message always names the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path given.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TOML syntax error, unknown key or wrong type, already rendered by [`toml_error`]:
    /// `TOML error at line L, column C in `key.path`: message`. Never holds the source
    /// line nor the Zammad URL's path, query, userinfo or fragment.
    #[error("{0}")]
    Toml(String),
    /// A value is present but invalid.
    #[error("{key}: {reason}")]
    Invalid {
        /// Dotted key, e.g. `trunk.uri`, `routes[1].targets`, `phonebook."201"`.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

/// A next hop given by configuration: host (name or IP), port, transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopConfig {
    /// The URI as written.
    pub uri: String,
    /// Host: an IP literal (IPv6 without brackets) or a DNS name.
    pub host: String,
    /// Port (default 5060).
    pub port: u16,
    /// Transport, the URI's `transport` parameter (default UDP).
    pub transport: TransportKind,
}

/// The validated configuration the proxy runs with. Its `Debug` shows `zammad_url` redacted.
#[derive(Clone)]
pub struct Config {
    /// Listen address for UDP and TCP.
    pub listen: SocketAddr,
    /// Address for Via and Record-Route.
    pub advertise: IpAddr,
    /// Address toward the inside (Via / Record-Route on that side).
    pub advertise_inside: IpAddr,
    /// Address toward the trunk.
    pub advertise_trunk: IpAddr,
    /// The trunk.
    pub trunk: HopConfig,
    /// Trunk source networks (empty: filled from the resolved trunk address at start).
    pub trunk_sources: Vec<IpNet>,
    /// Inside networks.
    pub inside_networks: Vec<IpNet>,
    /// Inbound target.
    pub inside_target: HopConfig,
    /// Country code for normalisation.
    pub country_code: Option<String>,
    /// Internal extension length.
    pub max_internal_len: usize,
    /// Inbound routes (validated, numbers normalised), first match wins.
    pub routes: Vec<sipcti_dialog::InboundRoute>,
    /// Phonebook with normalised keys.
    pub phonebook: sipcti_dialog::Phonebook,
    /// Zammad URL (secret: holds the token), or None for stdout.
    pub zammad_url: Option<String>,
    /// CTI body format.
    pub zammad_format: ZammadFormat,
    /// newCall deadline.
    pub newcall_timeout: Duration,
    /// CTI queue bound.
    pub cti_queue: usize,
    /// CTI give-up age.
    pub cti_give_up: Duration,
    /// Limits.
    pub limits: LimitsSection,
    /// Timers.
    pub timers: TimersSection,
    /// The `[admin]` HTTP listen address (validated: loopback unless
    /// `admin.allow_remote`); `None`: no admin server.
    pub admin: Option<SocketAddr>,
    /// The file as read (for printing).
    pub file: FileConfig,
}

impl std::fmt::Debug for Config {
    /// Like a derived `Debug`, with `zammad_url` in [`sipcti_cti::redact_url`]'s form.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("advertise", &self.advertise)
            .field("advertise_inside", &self.advertise_inside)
            .field("advertise_trunk", &self.advertise_trunk)
            .field("trunk", &self.trunk)
            .field("trunk_sources", &self.trunk_sources)
            .field("inside_networks", &self.inside_networks)
            .field("inside_target", &self.inside_target)
            .field("country_code", &self.country_code)
            .field("max_internal_len", &self.max_internal_len)
            .field("routes", &self.routes)
            .field("phonebook", &self.phonebook)
            .field(
                "zammad_url",
                &self.zammad_url.as_deref().map(sipcti_cti::redact_url),
            )
            .field("zammad_format", &self.zammad_format)
            .field("newcall_timeout", &self.newcall_timeout)
            .field("cti_queue", &self.cti_queue)
            .field("cti_give_up", &self.cti_give_up)
            .field("limits", &self.limits)
            .field("timers", &self.timers)
            .field("admin", &self.admin)
            .field("file", &self.file)
            .finish()
    }
}

/// Parse a SIP URI used as a configured hop (`trunk.uri`, `inside.target`).
///
/// Errors name `key`.
pub fn parse_hop(key: &'static str, uri: &str) -> Result<HopConfig, ConfigError> {
    parse_hop_named(key, uri)
}

/// [`parse_hop`] with a key built at run time (`routes[1].targets`).
fn parse_hop_named(key: &str, uri: &str) -> Result<HopConfig, ConfigError> {
    let u = sipcti_wire::Uri::parse(uri)
        .map_err(|e| invalid(key, format!("not a SIP URI ({})", e.reason())))?;
    if !u.is_sip() {
        return Err(invalid(key, "must be a sip: URI"));
    }
    if u.host.is_empty() {
        return Err(invalid(key, "has no host"));
    }
    let transport = match u.transport().map(|t| t.to_ascii_lowercase()) {
        None => TransportKind::Udp,
        Some(t) if t == "udp" => TransportKind::Udp,
        Some(t) if t == "tcp" => TransportKind::Tcp,
        Some(t) => {
            return Err(invalid(
                key,
                format!("transport={t} is not supported (udp, tcp)"),
            ))
        }
    };
    let host = u
        .host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok(HopConfig {
        uri: uri.to_string(),
        host,
        port: u.port.unwrap_or(5060),
        transport,
    })
}

/// `[admin]`: the listen address, refused when it is not a loopback
/// address and `allow_remote` is not set (the endpoints have no
/// authentication).
fn parse_admin(a: &AdminSection) -> Result<SocketAddr, ConfigError> {
    let addr: SocketAddr = a
        .listen
        .parse()
        .map_err(|_| invalid("admin.listen", "must be IP:PORT, e.g. 127.0.0.1:9060"))?;
    if !addr.ip().is_loopback() && !a.allow_remote {
        return Err(invalid(
            "admin.listen",
            "not a loopback address: /metrics, /health and /ready have no authentication; \
             set admin.allow_remote = true to serve them on this address anyway",
        ));
    }
    Ok(addr)
}

fn parse_nets(key: &'static str, list: &[String]) -> Result<Vec<IpNet>, ConfigError> {
    list.iter()
        .map(|s| {
            let s = s.trim();
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| invalid(key, format!("{s:?} is not an address or CIDR network")))
        })
        .collect()
}

impl Config {
    /// Read and validate a configuration file. `SIPCTI_ZAMMAD_URL`, when
    /// set, overrides `zammad.url`.
    ///
    /// Errors: unreadable file, TOML errors (naming the key), invalid values.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let env = std::env::var(ZAMMAD_URL_ENV).ok().filter(|s| !s.is_empty());
        Config::from_toml(&text, env)
    }

    /// Parse and validate configuration text; `env_url` overrides `zammad.url`.
    pub fn from_toml(text: &str, env_url: Option<String>) -> Result<Config, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        Config::validate(file, env_url)
    }

    fn validate(file: FileConfig, env_url: Option<String>) -> Result<Config, ConfigError> {
        let listen: SocketAddr = file
            .sip
            .listen
            .parse()
            .map_err(|_| invalid("sip.listen", "must be IP:PORT, e.g. 0.0.0.0:5060"))?;
        let ip_of =
            |key: &'static str, v: &Option<String>| -> Result<Option<IpAddr>, ConfigError> {
                v.as_deref()
                    .map(|a| {
                        a.trim_start_matches('[')
                            .trim_end_matches(']')
                            .parse::<IpAddr>()
                            .map_err(|_| invalid(key, "must be an IP address"))
                    })
                    .transpose()
            };
        let adv_inside = ip_of("sip.advertise_inside", &file.sip.advertise_inside)?;
        let adv_trunk = ip_of("sip.advertise_trunk", &file.sip.advertise_trunk)?;
        let advertise = match ip_of("sip.advertise", &file.sip.advertise)? {
            Some(a) => a,
            None if adv_inside.is_some() && adv_trunk.is_some() => {
                adv_inside.unwrap_or(listen.ip())
            }
            None if listen.ip().is_unspecified() => return Err(invalid(
                "sip.advertise",
                "required when sip.listen is 0.0.0.0 or [::]: the address phones and trunk reach",
            )),
            None => listen.ip(),
        };
        let trunk = parse_hop("trunk.uri", &file.trunk.uri)?;
        let trunk_sources = parse_nets("trunk.sources", &file.trunk.sources)?;
        let inside_networks = parse_nets("inside.networks", &file.inside.networks)?;
        if inside_networks.is_empty() {
            return Err(invalid("inside.networks", "needs at least one network"));
        }
        let inside_target = parse_hop("inside.target", &file.inside.target)?;
        if let Some(cc) = &file.numbers.country_code {
            if cc.is_empty() || cc.len() > 3 || !cc.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid(
                    "numbers.country_code",
                    "must be 1 to 3 digits without +, e.g. \"49\"",
                ));
            }
        }
        let zammad_url = env_url.or_else(|| file.zammad.url.clone());
        if let Some(u) = &zammad_url {
            let parsed = url::Url::parse(u).map_err(|_| {
                invalid(
                    "zammad.url",
                    format!("not a URL: {}", sipcti_cti::redact_url(u)),
                )
            })?;
            if parsed.scheme() != "http" && parsed.scheme() != "https" {
                return Err(invalid("zammad.url", "must be http:// or https://"));
            }
        }
        if file.zammad.newcall_timeout_ms == 0 || file.zammad.newcall_timeout_ms > 30_000 {
            return Err(invalid("zammad.newcall_timeout_ms", "must be 1..=30000 ms"));
        }
        if file.sip.threads > 64 {
            return Err(invalid("sip.threads", "must be 0..=64 (0: one per core)"));
        }
        if file.zammad.max_in_flight == 0 || file.zammad.max_in_flight > 1024 {
            return Err(invalid("zammad.max_in_flight", "must be 1..=1024"));
        }
        if file.zammad.newcall_slots > 1024 {
            return Err(invalid("zammad.newcall_slots", "must be 0..=1024"));
        }
        if file.zammad.outbox_sync_ms > 10_000 {
            return Err(invalid("zammad.outbox_sync_ms", "must be 0..=10000 ms"));
        }
        if file.zammad.queue_capacity == 0 {
            return Err(invalid("zammad.queue_capacity", "must be at least 1"));
        }
        let l = &file.limits;
        if l.max_message_bytes < 1024 || l.max_message_bytes > 1 << 20 {
            return Err(invalid(
                "limits.max_message_bytes",
                "must be 1024..=1048576 bytes",
            ));
        }
        if l.max_headers < 16 {
            return Err(invalid("limits.max_headers", "must be at least 16"));
        }
        if l.max_transactions == 0 || l.max_calls == 0 || l.max_tcp_connections == 0 {
            return Err(invalid(
                "limits",
                "max_transactions, max_calls and max_tcp_connections must be at least 1",
            ));
        }
        if l.max_tcp_per_address == 0 || l.max_tcp_outbound == 0 {
            return Err(invalid(
                "limits",
                "max_tcp_per_address and max_tcp_outbound must be at least 1",
            ));
        }
        if l.tcp_message_timeout_ms < 100 {
            return Err(invalid(
                "limits.tcp_message_timeout_ms",
                "must be at least 100 ms",
            ));
        }
        if l.inside_rate_per_s == 0 || l.trunk_rate_per_s == 0 {
            return Err(invalid(
                "limits",
                "inside_rate_per_s and trunk_rate_per_s must be at least 1",
            ));
        }
        if l.source_share_percent == 0 || l.source_share_percent > 100 {
            return Err(invalid("limits.source_share_percent", "must be 1..=100"));
        }
        let t = &file.timers;
        if t.t1_ms == 0 || t.t1_ms > 10_000 {
            return Err(invalid("timers.t1_ms", "must be 1..=10000"));
        }
        if t.wait_ms < 100 || t.wait_ms > 64 * t.t1_ms.max(500) {
            return Err(invalid(
                "timers.wait_ms",
                "must be 100 ms ..= 64*T1 (RFC 3261 Timer J)",
            ));
        }
        if t.timer_c_s < 1 {
            return Err(invalid("timers.timer_c_s", "must be at least 1 s"));
        }
        if t.max_call_duration_s < 60 {
            return Err(invalid(
                "timers.max_call_duration_s",
                "must be at least 60 s",
            ));
        }
        let admin = file.admin.as_ref().map(parse_admin).transpose()?;
        let max_internal_len = file.numbers.max_internal_len.unwrap_or(6);
        let cc = file.numbers.country_code.as_deref();
        let routes = parse_routes(&file.routes, &inside_networks, cc, max_internal_len)?;
        let phonebook = parse_phonebook(&file.phonebook, cc, max_internal_len)?;
        Ok(Config {
            listen,
            advertise,
            advertise_inside: adv_inside.unwrap_or(advertise),
            advertise_trunk: adv_trunk.unwrap_or(advertise),
            trunk,
            trunk_sources,
            inside_networks,
            inside_target,
            country_code: file.numbers.country_code.clone(),
            max_internal_len,
            routes,
            phonebook,
            zammad_url,
            zammad_format: file.zammad.format,
            newcall_timeout: Duration::from_millis(file.zammad.newcall_timeout_ms),
            cti_queue: file.zammad.queue_capacity,
            cti_give_up: Duration::from_secs(file.zammad.give_up_after_s),
            limits: file.limits.clone(),
            timers: file.timers.clone(),
            admin,
            file,
        })
    }

    /// The call tracker's settings (the same for `run` and `replay`).
    pub fn tracker_config(&self) -> sipcti_dialog::TrackerConfig {
        sipcti_dialog::TrackerConfig {
            country_code: self.country_code.clone(),
            max_internal_len: self.max_internal_len,
            max_call_duration: Duration::from_secs(self.timers.max_call_duration_s),
            max_calls: self.limits.max_calls,
            routes: self.routes.clone(),
            phonebook: self.phonebook.clone(),
            ..sipcti_dialog::TrackerConfig::default()
        }
    }

    /// The wire layer's limits: message size (bytes) and header count.
    pub fn wire_limits(&self) -> sipcti_wire::Limits {
        sipcti_wire::Limits {
            max_message_bytes: self.limits.max_message_bytes,
            max_headers: self.limits.max_headers,
        }
    }

    /// The effective configuration as TOML, with the Zammad URL redacted
    /// (the token never appears). Used by `sipcti check-config`.
    pub fn effective_toml(&self) -> String {
        let mut f = self.file.clone();
        f.sip.advertise = Some(self.advertise.to_string());
        f.sip.advertise_inside = Some(self.advertise_inside.to_string());
        f.sip.advertise_trunk = Some(self.advertise_trunk.to_string());
        f.zammad.url = self.zammad_url.as_deref().map(sipcti_cti::redact_url);
        let mut out = toml::to_string_pretty(&f).unwrap_or_else(|e| format!("# {e}\n"));
        if self.zammad_url.is_none() {
            out.push_str("# zammad.url not set: CTI events are written as JSON lines to stdout\n");
        }
        out
    }
}
#[cfg(test)]
mod route_tests;
#[cfg(test)]
mod tests;
