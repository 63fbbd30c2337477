//! The `sipcti.toml` configuration: parsing, validation with errors that
//! name the key, and the effective configuration printed by
//! `sipcti check-config` (with the Zammad token redacted).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

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
    /// TOML syntax error, unknown key or wrong type (serde names the key).
    #[error("{0}")]
    Toml(String),
    /// A value is present but invalid.
    #[error("{key}: {reason}")]
    Invalid {
        /// Dotted key, e.g. `trunk.uri`.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

/// The file as written (all keys, with defaults). See the README for each key.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `[sip]`: where the proxy listens.
    pub sip: SipSection,
    /// `[trunk]`: the SIP provider.
    pub trunk: TrunkSection,
    /// `[inside]`: phones / PBX.
    pub inside: InsideSection,
    /// `[numbers]`: number normalisation.
    #[serde(default)]
    pub numbers: NumbersSection,
    /// `[zammad]`: the CTI endpoint.
    #[serde(default)]
    pub zammad: ZammadSection,
    /// `[limits]`: bounds on messages, connections and tables.
    #[serde(default)]
    pub limits: LimitsSection,
    /// `[timers]`: proxy timers.
    #[serde(default)]
    pub timers: TimersSection,
}

/// `[sip]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SipSection {
    /// UDP and TCP listen address, e.g. `0.0.0.0:5060`.
    pub listen: String,
    /// The address put into Via and Record-Route. Required when `listen`
    /// is an unspecified address (0.0.0.0 / ::).
    #[serde(default)]
    pub advertise: Option<String>,
    /// The address the phones / PBX reach sipcti at, when it differs from
    /// the trunk's (a host with a LAN and a public interface). Default: `advertise`.
    #[serde(default)]
    pub advertise_inside: Option<String>,
    /// The address the trunk reaches sipcti at. Default: `advertise`.
    #[serde(default)]
    pub advertise_trunk: Option<String>,
}

/// `[trunk]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkSection {
    /// SIP URI of the provider's proxy, e.g. `sip:sip.provider.example:5060;transport=udp`.
    pub uri: String,
    /// Networks (CIDR or single addresses) whose requests count as coming
    /// from the trunk. Default: the resolved address of `uri`.
    #[serde(default)]
    pub sources: Vec<String>,
}

/// `[inside]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InsideSection {
    /// Networks of the phones / PBX allowed to place calls.
    pub networks: Vec<String>,
    /// Where inbound calls go (a PBX or one phone), a SIP URI.
    pub target: String,
}

/// `[numbers]` section.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NumbersSection {
    /// Country code without `+`, e.g. `"49"`: national `030...` becomes `4930...`.
    #[serde(default)]
    pub country_code: Option<String>,
    /// Numbers with at most this many digits are internal extensions (default 6).
    #[serde(default)]
    pub max_internal_len: Option<usize>,
}

/// Body format of CTI requests.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ZammadFormat {
    /// `application/json` (default).
    #[default]
    Json,
    /// `application/x-www-form-urlencoded` with `user[]` arrays.
    Form,
}

/// `[zammad]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ZammadSection {
    /// `https://zammad.example/api/v1/cti/TOKEN`; or set `SIPCTI_ZAMMAD_URL`.
    /// Absent: events are printed as JSON lines on stdout.
    #[serde(default)]
    pub url: Option<String>,
    /// `json` (default) or `form`.
    #[serde(default)]
    pub format: ZammadFormat,
    /// How long the INVITE waits for Zammad's answer to `newCall`, in ms.
    #[serde(default = "default_newcall_timeout")]
    pub newcall_timeout_ms: u64,
    /// CTI events buffered at most while Zammad is slow or down.
    #[serde(default = "default_queue")]
    pub queue_capacity: usize,
    /// An event not delivered within this many seconds is dropped (counted, logged).
    #[serde(default = "default_give_up")]
    pub give_up_after_s: u64,
    /// Concurrent HTTP requests to Zammad (different calls; one call's
    /// events are always sent one after the other). Default 16.
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
}

fn default_newcall_timeout() -> u64 {
    1500
}
fn default_queue() -> usize {
    10_000
}
fn default_give_up() -> u64 {
    3600
}
fn default_in_flight() -> usize {
    16
}

impl Default for ZammadSection {
    fn default() -> Self {
        ZammadSection {
            url: None,
            format: ZammadFormat::Json,
            newcall_timeout_ms: default_newcall_timeout(),
            queue_capacity: default_queue(),
            give_up_after_s: default_give_up(),
            max_in_flight: default_in_flight(),
        }
    }
}

/// `[limits]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Largest SIP message accepted, in bytes (default 65536).
    pub max_message_bytes: usize,
    /// Most header lines in one message (default 256).
    pub max_headers: usize,
    /// Most inbound TCP connections at once, from phones, PBX and trunk
    /// (default 1024). Outbound connections have their own
    /// `max_tcp_outbound` permits.
    pub max_tcp_connections: usize,
    /// Idle TCP connections are closed after this many seconds (default 300).
    pub tcp_idle_timeout_s: u64,
    /// Most open transactions; beyond it new requests get 503 (default 100000).
    pub max_transactions: usize,
    /// Most tracked calls (default 100000).
    pub max_calls: usize,
    /// Most inbound TCP connections from one IP address at once (default 64).
    /// Connections from addresses that are neither inside nor trunk are
    /// closed at accept and never count.
    pub max_tcp_per_address: usize,
    /// Outbound TCP connections (to the trunk or a phone) have their own
    /// pool of this many permits, so inbound connections cannot starve
    /// them (default 256).
    pub max_tcp_outbound: usize,
    /// A SIP message that has started arriving on a TCP connection must be
    /// complete within this many ms, however slowly it trickles in;
    /// otherwise the connection is closed (default 10000).
    pub tcp_message_timeout_ms: u64,
    /// Per-source admission (in the spirit of Kamailio's pike): new
    /// transactions one inside address may start per second, sustained
    /// (default 20; a PBX for 200 phones starts far fewer). In-dialog requests of live calls (BYE, ACK,
    /// re-INVITE) are never refused for load.
    pub inside_rate_per_s: u32,
    /// Burst allowance on top of `inside_rate_per_s` (default 100).
    pub inside_burst: u32,
    /// The same for each trunk source address (default 2000/s).
    pub trunk_rate_per_s: u32,
    /// Burst allowance on top of `trunk_rate_per_s` (default 4000).
    pub trunk_burst: u32,
    /// Share of `max_transactions` that one source address may hold, in
    /// percent (default 50).
    pub source_share_percent: u8,
    /// A source over its rate is refused (503 with Retry-After) for this
    /// many seconds (default 5, Kamailio htable ban style).
    pub ban_s: u64,
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            max_message_bytes: 65_536,
            max_headers: 256,
            max_tcp_connections: 1024,
            tcp_idle_timeout_s: 300,
            max_transactions: 100_000,
            max_calls: 100_000,
            max_tcp_per_address: 64,
            max_tcp_outbound: 256,
            tcp_message_timeout_ms: 10_000,
            inside_rate_per_s: 20,
            inside_burst: 100,
            trunk_rate_per_s: 2000,
            trunk_burst: 4000,
            source_share_percent: 50,
            ban_s: 5,
        }
    }
}

/// `[timers]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimersSection {
    /// RFC 3261 T1 in ms (default 500).
    pub t1_ms: u64,
    /// Timer C, the proxy's INVITE timeout, in seconds (default 180, RFC 3261 16.6 step 11).
    pub timer_c_s: u64,
    /// An answered call is closed after this many seconds without BYE (default 14400).
    pub max_call_duration_s: u64,
    /// A transaction is kept this many ms after its final response to
    /// absorb retransmissions (default 5000, Kamailio tm's `wt_timer`).
    pub wait_ms: u64,
}

impl Default for TimersSection {
    fn default() -> Self {
        TimersSection {
            t1_ms: 500,
            timer_c_s: 180,
            max_call_duration_s: 4 * 3600,
            wait_ms: 5000,
        }
    }
}

/// Transport named by a URI's `transport` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum UriTransport {
    /// UDP (default).
    Udp,
    /// TCP.
    Tcp,
}

/// A next hop given by configuration: host (name or IP), port, transport.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HopConfig {
    /// The URI as written.
    pub uri: String,
    /// Host: an IP literal (IPv6 without brackets) or a DNS name.
    pub host: String,
    /// Port (default 5060).
    pub port: u16,
    /// Transport (default UDP).
    pub transport: UriTransport,
}

/// The validated configuration the proxy runs with.
#[derive(Debug, Clone)]
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
    /// The file as read (for printing).
    pub file: FileConfig,
}

/// Parse a SIP URI used as a configured hop (`trunk.uri`, `inside.target`).
///
/// Errors name `key`.
pub fn parse_hop(key: &'static str, uri: &str) -> Result<HopConfig, ConfigError> {
    let u = sipcti_transport::Uri::parse(uri)
        .map_err(|e| invalid(key, format!("not a SIP URI ({})", e.reason())))?;
    if !u.is_sip() {
        return Err(invalid(key, "must be a sip: URI"));
    }
    if u.host.is_empty() {
        return Err(invalid(key, "has no host"));
    }
    let transport = match u.transport().map(|t| t.to_ascii_lowercase()) {
        None => UriTransport::Udp,
        Some(t) if t == "udp" => UriTransport::Udp,
        Some(t) if t == "tcp" => UriTransport::Tcp,
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
        let file: FileConfig =
            toml::from_str(text).map_err(|e| ConfigError::Toml(e.to_string()))?;
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
        if file.zammad.max_in_flight == 0 || file.zammad.max_in_flight > 1024 {
            return Err(invalid("zammad.max_in_flight", "must be 1..=1024"));
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
            max_internal_len: file.numbers.max_internal_len.unwrap_or(6),
            zammad_url,
            zammad_format: file.zammad.format,
            newcall_timeout: Duration::from_millis(file.zammad.newcall_timeout_ms),
            cti_queue: file.zammad.queue_capacity,
            cti_give_up: Duration::from_secs(file.zammad.give_up_after_s),
            limits: file.limits.clone(),
            timers: file.timers.clone(),
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
            ..sipcti_dialog::TrackerConfig::default()
        }
    }

    /// The wire layer's limits: message size (bytes) and header count.
    pub fn wire_limits(&self) -> sipcti_transport::Limits {
        sipcti_transport::Limits {
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
mod tests {
    use super::*;

    const GOOD: &str = r#"
[sip]
listen = "127.0.0.1:5060"
[trunk]
uri = "sip:127.0.0.2:5060;transport=udp"
sources = ["127.0.0.2/32"]
[inside]
networks = ["127.0.0.3/32"]
target = "sip:127.0.0.3:5060"
[numbers]
country_code = "49"
[zammad]
url = "http://127.0.0.1:8080/api/v1/cti/SECRETTOKEN"
"#;

    #[test]
    fn the_loopback_fixture_is_valid() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/sipcti.toml");
        let c = Config::from_toml(&std::fs::read_to_string(path).unwrap(), None).unwrap();
        assert_eq!(c.inside_target.host, "127.0.0.3");
        assert_eq!(c.trunk_sources.len(), 1);
        let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/zammad-rules.toml");
        let r = sipcti_cti::Rules::from_toml_str(&std::fs::read_to_string(rules).unwrap()).unwrap();
        assert_eq!(r.caller_id_for("49301234567"), Some("4930111222"));
    }

    #[test]
    fn good_config_loads() {
        let c = Config::from_toml(GOOD, None).unwrap();
        assert_eq!(c.listen, "127.0.0.1:5060".parse().unwrap());
        assert_eq!(c.trunk.port, 5060);
        assert_eq!(c.trunk.transport, UriTransport::Udp);
        assert_eq!(c.newcall_timeout, Duration::from_millis(1500));
        assert_eq!(c.country_code.as_deref(), Some("49"));
    }

    #[test]
    fn effective_config_hides_token() {
        let c = Config::from_toml(GOOD, None).unwrap();
        let t = c.effective_toml();
        assert!(!t.contains("SECRETTOKEN"), "{t}");
        assert!(t.contains("/api/v1/cti/"), "{t}");
    }

    #[test]
    fn side_addresses_default_to_advertise_and_can_differ() {
        let c = Config::from_toml(GOOD, None).unwrap();
        assert_eq!(
            (c.advertise_inside, c.advertise_trunk),
            (c.advertise, c.advertise)
        );
        let two = GOOD.replace(
            "listen = \"127.0.0.1:5060\"",
            "listen = \"0.0.0.0:5060\"\nadvertise_inside = \"192.168.10.2\"\nadvertise_trunk = \"203.0.113.10\"",
        );
        let c = Config::from_toml(&two, None).unwrap();
        assert_eq!(c.advertise_inside.to_string(), "192.168.10.2");
        assert_eq!(c.advertise_trunk.to_string(), "203.0.113.10");
        let bad = two.replace("203.0.113.10", "nope");
        let e = Config::from_toml(&bad, None).unwrap_err().to_string();
        assert!(e.starts_with("sip.advertise_trunk:"), "{e}");
    }

    #[test]
    fn env_url_overrides_file() {
        let c = Config::from_toml(GOOD, Some("https://z.example/api/v1/cti/ENV".into())).unwrap();
        assert_eq!(
            c.zammad_url.as_deref(),
            Some("https://z.example/api/v1/cti/ENV")
        );
    }

    #[test]
    fn errors_name_the_key() {
        let bad = GOOD.replace("127.0.0.3/32", "not-a-net");
        let e = Config::from_toml(&bad, None).unwrap_err().to_string();
        assert!(e.starts_with("inside.networks:"), "{e}");
        let bad = GOOD.replace("sip:127.0.0.2:5060;transport=udp", "http://x");
        let e = Config::from_toml(&bad, None).unwrap_err().to_string();
        assert!(e.starts_with("trunk.uri:"), "{e}");
        let bad = GOOD.replace("127.0.0.1:5060", "0.0.0.0:5060");
        let e = Config::from_toml(&bad, None).unwrap_err().to_string();
        assert!(e.starts_with("sip.advertise:"), "{e}");
        let bad = GOOD.replace("[numbers]", "[numbers]\nbogus = 1");
        let e = Config::from_toml(&bad, None).unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
        let bad = GOOD.replace("country_code = \"49\"", "country_code = \"+49\"");
        let e = Config::from_toml(&bad, None).unwrap_err().to_string();
        assert!(e.starts_with("numbers.country_code:"), "{e}");
    }
}
