//! The `sipcti.toml` configuration: parsing, validation with errors that
//! name the key, and the effective configuration printed by
//! `sipcti check-config` (with the Zammad token redacted).

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
    /// `[[routes]]`: inbound routes by dialled number, first match wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteSection>,
    /// `[phonebook]`: number or extension -> person, for Zammad's `user`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub phonebook: BTreeMap<String, String>,
}

/// One `[[routes]]` entry: inbound calls from the trunk to `number` go to
/// `targets` instead of `inside.target`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    /// The dialled number, normalised like Zammad's `to`; a trailing `*`
    /// makes it a prefix.
    pub number: String,
    /// Where the call goes: one SIP URI
    /// (`sip:user@host[:port][;transport=udp|tcp]`, host an IP address in
    /// `inside.networks`), or 2 to 16 of them, a ring group (an INVITE is
    /// forked to all in parallel, RFC 3261 16.7); registered users come later.
    pub targets: Vec<String>,
    /// Zammad's `queue` on the call's `newCall` (at most 250 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
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

/// `[zammad]` section. Its `Debug` shows `url` redacted.
#[derive(Clone, Deserialize, Serialize)]
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

impl std::fmt::Debug for ZammadSection {
    /// Like a derived `Debug`, with `url` in [`sipcti_cti::redact_url`]'s form.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZammadSection")
            .field("url", &self.url.as_deref().map(sipcti_cti::redact_url))
            .field("format", &self.format)
            .field("newcall_timeout_ms", &self.newcall_timeout_ms)
            .field("queue_capacity", &self.queue_capacity)
            .field("give_up_after_s", &self.give_up_after_s)
            .field("max_in_flight", &self.max_in_flight)
            .finish()
    }
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

/// Validate `[[routes]]` with `country_code` and `max_internal_len` (the
/// tracker's normalisation). Errors name the key, e.g. `routes[1].targets`
/// (0-based index, as written in the file's order).
fn parse_routes(
    routes: &[RouteSection],
    inside_networks: &[IpNet],
    country_code: Option<&str>,
    max_internal_len: usize,
) -> Result<Vec<sipcti_dialog::InboundRoute>, ConfigError> {
    if routes.len() > sipcti_dialog::MAX_ROUTES {
        return Err(invalid(
            "routes",
            format!("at most {} routes", sipcti_dialog::MAX_ROUTES),
        ));
    }
    let mut out = Vec::with_capacity(routes.len());
    for (i, r) in routes.iter().enumerate() {
        let key = |k: &str| format!("routes[{i}].{k}");
        let number = sipcti_dialog::NumberPattern::parse(&r.number, country_code, max_internal_len)
            .map_err(|why| invalid(key("number"), format!("{:?} {why}", r.number)))?;
        if r.targets.is_empty() {
            return Err(invalid(key("targets"), "needs one target (a SIP URI)"));
        }
        if r.targets.len() > sipcti_dialog::MAX_GROUP {
            return Err(invalid(
                key("targets"),
                format!(
                    "at most {} targets in a ring group",
                    sipcti_dialog::MAX_GROUP
                ),
            ));
        }
        let mut targets = Vec::with_capacity(r.targets.len());
        for target in &r.targets {
            targets.push(check_route_target(
                &key("targets"),
                target,
                inside_networks,
            )?);
        }
        let queue = match &r.queue {
            None => None,
            Some(q) if q.trim().is_empty() => {
                return Err(invalid(key("queue"), "must not be empty (leave it out)"))
            }
            Some(q) if q.chars().count() > sipcti_dialog::MAX_QUEUE_LEN => {
                return Err(invalid(
                    key("queue"),
                    format!(
                        "at most {} characters (Zammad cuts longer ones)",
                        sipcti_dialog::MAX_QUEUE_LEN
                    ),
                ))
            }
            Some(q) => Some(q.clone()),
        };
        out.push(sipcti_dialog::InboundRoute::group(
            number,
            &targets,
            queue,
            country_code,
            max_internal_len,
        ));
    }
    Ok(out)
}

/// One route target as written: a SIP URI with a user whose host is an IP
/// address in `inside_networks`. Returns it trimmed; errors name `tkey`.
fn check_route_target<'a>(
    tkey: &str,
    target: &'a str,
    inside_networks: &[IpNet],
) -> Result<&'a str, ConfigError> {
    let t = target.trim();
    if !t.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("sip:")) {
        return Err(invalid(
                tkey.to_string(),
                format!(
                    "{t:?}: a registered user as a target is not supported yet: give a SIP URI, sip:user@host[:port][;transport=udp|tcp]"
                ),
            ));
    }
    let tkey = tkey.to_string();
    let hop = parse_hop_named(&tkey, t)?;
    let u = sipcti_wire::Uri::parse(t)
        .map_err(|e| invalid(tkey.to_string(), format!("not a SIP URI ({})", e.reason())))?;
    if u.user.is_none_or(str::is_empty) {
        return Err(invalid(
            tkey.to_string(),
            format!("{t:?} has no user: write sip:user@host[:port]"),
        ));
    }
    let ip: IpAddr = hop.host.parse().map_err(|_| {
        invalid(
            tkey.to_string(),
            format!("{t:?}: the host must be an IP address in inside.networks"),
        )
    })?;
    if !inside_networks.iter().any(|n| n.contains(&ip)) {
        return Err(invalid(
                tkey.to_string(),
                format!(
                    "{t:?}: {ip} is not in inside.networks (in-dialog requests from the trunk may only go inside)"
                ),
            ));
    }
    Ok(t)
}

/// Validate `[phonebook]`: keys normalised like numbers (two keys that
/// normalise alike are an error), names non-empty.
fn parse_phonebook(
    book: &BTreeMap<String, String>,
    country_code: Option<&str>,
    max_internal_len: usize,
) -> Result<sipcti_dialog::Phonebook, ConfigError> {
    if book.len() > sipcti_dialog::MAX_PHONEBOOK {
        return Err(invalid(
            "phonebook",
            format!("at most {} entries", sipcti_dialog::MAX_PHONEBOOK),
        ));
    }
    let mut out = sipcti_dialog::Phonebook::new();
    for (k, name) in book {
        let key = format!("phonebook.{k:?}");
        let n = sipcti_dialog::normalize_number(k, country_code, max_internal_len);
        if n.is_empty() {
            return Err(invalid(key, "the number or extension is empty"));
        }
        if name.trim().is_empty() {
            return Err(invalid(key, "the name is empty"));
        }
        if out.insert(n.clone(), name.trim().to_string()).is_some() {
            return Err(invalid(
                key,
                format!("another entry is the same number ({n})"),
            ));
        }
    }
    Ok(out)
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

/// Render a TOML error of `text` without leaking the Zammad token.
///
/// toml's own `Display` quotes the offending source line, which for any typo near
/// `zammad.url` is the token. This gives instead `TOML error at line L, column C in
/// `key.path`: message` (line and column 1-based, the column counted in characters; the key
/// path guessed from the enclosing `[table]` header and the bare key before `=` on that line,
/// left out when the line has none), where the message is toml's, on one line, with every
/// URL-looking text replaced by [`sipcti_cti::redact_url`]'s form and every piece of a `url`
/// key's raw value (as written, even when it does not parse) replaced by `***`.
pub fn toml_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let message = scrub_secrets(text, &e.message().trim().replace('\n', "; "));
    let mut out = String::from("TOML error");
    if let Some(span) = e.span() {
        let start = span.start.min(text.len());
        let before = &text.as_bytes()[..start];
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let line_no = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count()
            + 1;
        out.push_str(&format!(" at line {line_no}, column {column}"));
        if let Some(key) = key_path_at(text, line_no) {
            out.push_str(&format!(" in `{key}`"));
        }
    }
    out.push_str(": ");
    out.push_str(&message);
    ConfigError::Toml(out)
}

/// A bare or dotted TOML key (`zammad.url`, `max_in_flight`), nothing else: the only key
/// text [`toml_error`] repeats, so that a line holding a value (a token) is never echoed.
fn bare_key(s: &str) -> Option<String> {
    let k: String = s
        .trim()
        .split('.')
        .map(|p| p.trim().trim_matches('"').trim_matches('\''))
        .collect::<Vec<_>>()
        .join(".");
    let ok = !k.is_empty()
        && k.len() <= 64
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    ok.then_some(k)
}

/// The key path of 1-based line `line_no` of `text`: the last `[table]` header at or above
/// it, joined with the bare key before `=` on that line. None when neither is found.
fn key_path_at(text: &str, line_no: usize) -> Option<String> {
    let lines: Vec<&str> = text.split('\n').collect();
    let idx = line_no.checked_sub(1)?;
    let header_of = |l: &str| -> Option<String> {
        let t = l.trim();
        let inner = t.strip_prefix('[')?;
        let end = inner.find(']')?;
        bare_key(inner[..end].trim_start_matches('['))
    };
    let line = lines.get(idx).copied().unwrap_or("");
    if let Some(h) = header_of(line) {
        return Some(h);
    }
    let table = lines[..idx.min(lines.len())]
        .iter()
        .rev()
        .find_map(|l| header_of(l));
    let key = line.split_once('=').and_then(|(k, _)| bare_key(k));
    match (table, key) {
        (Some(t), Some(k)) => Some(format!("{t}.{k}")),
        (t, k) => t.or(k),
    }
}

/// The raw values of every `url` key in `text` (`url = ...`, `zammad.url = ...`, quoted or
/// not, `=` present or not), split into the pieces that may be the token: the value as
/// written, the value without quotes, and each piece between URL delimiters (`/ ? # @ : = &`)
/// of at least 4 characters.
fn url_secrets(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let t = line.trim_start();
        let rest = ["zammad.url", "\"url\"", "'url'", "url"]
            .iter()
            .find_map(|k| t.strip_prefix(k));
        let Some(rest) = rest else { continue };
        if rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            continue; // another key (`url_x`)
        }
        let value = rest.trim().trim_start_matches('=').trim();
        if value.is_empty() {
            continue;
        }
        out.push(value.to_string());
        let unquoted = value.trim_matches(|c| c == '"' || c == '\'');
        out.push(unquoted.to_string());
        // the scheme and the host may be shown; a query key (`token=`) is not a secret
        let (scheme, after) = unquoted.split_once("://").unwrap_or(("", unquoted));
        let authority = after.split(['/', '?', '#']).next().unwrap_or("");
        let host_port = authority.rsplit('@').next().unwrap_or("");
        let host = host_port.rsplit_once(':').map_or(host_port, |(h, _)| h);
        out.extend(
            unquoted
                .split(['/', '?', '#', '@', ':', '&', '"', '\'', ' ', ';'])
                .map(|p| p.split_once('=').map_or(p, |(_, v)| v))
                .filter(|p| p.chars().count() >= 4 && *p != scheme && *p != host)
                .map(str::to_string),
        );
    }
    // longest first, so a value is replaced whole before its pieces
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

/// `msg` with URL-looking text redacted and the pieces of `text`'s `url` values hidden.
fn scrub_secrets(text: &str, msg: &str) -> String {
    let mut out = redact_urls_in(msg);
    for secret in url_secrets(text) {
        if out.contains(&secret) {
            out = out.replace(&secret, "***");
        }
    }
    out
}

/// Replace every `scheme://...` run in `s` (up to whitespace, a quote, a backtick or a comma)
/// by its [`sipcti_cti::redact_url`] form.
fn redact_urls_in(s: &str) -> String {
    let stop = |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | ',' | '<' | '>');
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let scheme_start = rest[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |j| {
                j + rest[j..].chars().next().map_or(1, char::len_utf8)
            });
        let end = rest[i + 3..].find(stop).map_or(rest.len(), |j| i + 3 + j);
        out.push_str(&rest[..scheme_start]);
        out.push_str(&sipcti_cti::redact_url(&rest[scheme_start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
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
        let r =
            sipcti_zammad_double::Rules::from_toml_str(&std::fs::read_to_string(rules).unwrap())
                .unwrap();
        assert_eq!(r.caller_id_for("49301234567"), Some("4930111222"));
    }

    #[test]
    fn good_config_loads() {
        let c = Config::from_toml(GOOD, None).unwrap();
        assert_eq!(c.listen, "127.0.0.1:5060".parse().unwrap());
        assert_eq!(c.trunk.port, 5060);
        assert_eq!(c.trunk.transport, TransportKind::Udp);
        assert_eq!(c.newcall_timeout, Duration::from_millis(1500));
        assert_eq!(c.country_code.as_deref(), Some("49"));
    }

    #[test]
    fn effective_config_hides_token() {
        let c = Config::from_toml(GOOD, None).unwrap();
        let t = c.effective_toml();
        assert!(!t.contains("SECRETTOKEN"), "{t}");
        assert!(t.contains("url = \"http://127.0.0.1:8080/***\""), "{t}");
        let d = format!("{c:?}");
        assert!(
            !d.contains("SECRETTOKEN") && d.contains("127.0.0.1:8080/***"),
            "{d}"
        );
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

    /// The secret used in every leak test below.
    const SECRET: &str = "S3CR3TT0K3N";

    /// Zammad URLs with the token in every place a token can be.
    pub(crate) fn url_shapes() -> Vec<String> {
        [
            "https://z.example/api/v1/cti/{S}",
            "https://z.example/{S}/api/v1/cti/x",
            "https://z.example/api/v1/cti?token={S}",
            "https://user:{S}@z.example/api/v1/cti/x",
            "https://z.example:8443/api/v1/cti/x#{S}",
        ]
        .iter()
        .map(|u| u.replace("{S}", SECRET))
        .collect()
    }

    /// Realistic typos on or around `zammad.url` (`{U}` is the URL); each must fail to parse.
    pub(crate) const TYPOS: &[(&str, &str)] = &[
        ("missing opening quote", "url = {U}\""),
        ("missing closing quote", "url = \"{U}"),
        ("unquoted", "url = {U}"),
        ("duplicate key", "url = \"{U}\"\nurl = \"{U}\""),
        ("missing =", "url \"{U}\""),
        ("wrong type (array)", "url = [\"{U}\"]"),
        ("wrong type (table)", "url = { u = \"{U}\" }"),
        ("url in the wrong key", "format = \"{U}\""),
        (
            "unknown key next to url",
            "url = \"{U}\"\nurl_token = \"{U}\"",
        ),
        ("misspelt key", "ulr = \"{U}\""),
        ("bad escape", "url = \"{U}\\q\""),
        ("mixed quotes", "url = '{U}\""),
        ("trailing garbage", "url = \"{U}\" x"),
        ("unclosed multi-line string", "url = \"\"\"{U}"),
        ("url in the wrong table", "[limits]\nurl = \"{U}\""),
        ("table twice", "[zammad]\nurl = \"{U}\""),
        ("dotted key twice", "zammad.url = \"{U}\""),
        ("newline in value", "url = \"{U}\nx\""),
        ("control character", "url = \"{U}\u{1}\""),
    ];

    /// GOOD with its `url` line replaced by `line`.
    pub(crate) fn with_url_line(line: &str) -> String {
        GOOD.replace(
            "url = \"http://127.0.0.1:8080/api/v1/cti/SECRETTOKEN\"",
            line,
        )
    }

    /// Every typo with every URL shape: the error (Display and Debug) never shows the token,
    /// never shows the source line, and says where the error is.
    #[test]
    fn toml_errors_never_show_the_token() {
        for (name, typo) in TYPOS {
            for url in url_shapes() {
                let text = with_url_line(&typo.replace("{U}", &url));
                let e = match Config::from_toml(&text, None) {
                    Ok(_) => panic!("{name}: parsed"),
                    Err(e) => e,
                };
                let shown = format!("{e}\n{e:?}");
                if std::env::var_os("SIPCTI_SHOW_ERRORS").is_some() {
                    eprintln!("{name}: {e}");
                }
                assert!(!shown.contains(SECRET), "{name} / {url}:\n{shown}");
                // nothing past the host either
                assert!(
                    !shown.contains("/api") && !shown.contains("user"),
                    "{name} / {url}:\n{shown}"
                );
                assert!(shown.contains("line "), "{name}: {shown}");
                assert!(!e.to_string().contains('\n'), "{name}: {e}");
            }
        }
    }

    /// The error names the line (1-based), the column and the key path.
    #[test]
    fn toml_errors_name_line_column_and_key() {
        let text = with_url_line("url = \"https://z.example/api/v1/cti/x");
        let line = text.lines().position(|l| l.starts_with("url = ")).unwrap() + 1;
        let e = Config::from_toml(&text, None).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("TOML error at line {line}, column ")),
            "{e}"
        );
        assert!(e.contains("in `zammad.url`"), "{e}");
        let e = Config::from_toml(&with_url_line("url = 5"), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("line {line}, column 7 in `zammad.url`")),
            "{e}"
        );
        assert!(e.contains("expected a string"), "{e}");
    }

    /// Valid URLs of every shape load, and neither `check-config`'s output nor `Debug` shows
    /// the token; an invalid env URL's error does not either.
    #[test]
    fn valid_urls_of_every_shape_are_redacted() {
        for url in url_shapes() {
            let c = Config::from_toml(&with_url_line(&format!("url = \"{url}\"")), None)
                .unwrap_or_else(|e| panic!("{url}: {e}"));
            let shown = format!("{}\n{c:?}\n{:?}", c.effective_toml(), c.file);
            assert!(!shown.contains(SECRET), "{url}:\n{shown}");
            assert!(shown.contains("z.example"), "{shown}");
            let e = Config::from_toml(GOOD, Some(url.replace("https://", "https://exa mple/")))
                .unwrap_err();
            assert!(!format!("{e} {e:?}").contains(SECRET), "{e}");
            let e = Config::from_toml(GOOD, Some(url.replace("https", "ftp"))).unwrap_err();
            assert!(!format!("{e} {e:?}").contains(SECRET), "{e}");
        }
    }

    #[test]
    fn scrubbing_helpers() {
        assert_eq!(
            redact_urls_in("a `https://h/x/S` b, ftp://q/S"),
            "a `https://h/***` b, ftp://q/***"
        );
        assert_eq!(
            redact_urls_in("é://S ://S"),
            "é<unparseable url> <unparseable url>"
        );
        let t = "[zammad]\nurl = \"https://h/a/TOKEN1\"\nurl_x = 1\n  url \"x://y/TOKEN2\"";
        let m = scrub_secrets(t, "TOKEN1 and TOKEN2 but not url_x");
        assert_eq!(m, "*** and *** but not url_x");
        let t = "url = 'https://u:PASSWORD@host.example:80/?token=QUERYTOKEN#FRAGMENT'";
        let m = scrub_secrets(t, "token host.example PASSWORD QUERYTOKEN FRAGMENT https");
        assert_eq!(m, "token host.example *** *** *** https");
        assert_eq!(
            key_path_at("[a]\nb = 1\n[c.d]\n e = 2", 4).as_deref(),
            Some("c.d.e")
        );
        assert_eq!(key_path_at("x \"y=z\"", 1), None);
        assert_eq!(key_path_at("", 7), None);
    }
}

#[cfg(test)]
mod route_tests {
    use super::*;
    use sipcti_dialog::NumberPattern;

    const BASE: &str = r#"
[sip]
listen = "127.0.0.1:5060"
[trunk]
uri = "sip:127.0.0.2:5060;transport=udp"
sources = ["127.0.0.2/32"]
[inside]
networks = ["192.168.10.0/24"]
target = "sip:192.168.10.2:5060"
[numbers]
country_code = "49"
"#;

    fn with(extra: &str) -> Result<Config, ConfigError> {
        Config::from_toml(&format!("{BASE}{extra}"), None)
    }

    fn err(extra: &str) -> String {
        with(extra).expect_err("must be refused").to_string()
    }

    const ROUTES: &str = r#"
[[routes]]
number = "+49 30 123456"
targets = ["sip:201@192.168.10.21:5060"]
queue = "support"
[[routes]]
number = "030123457*"
targets = ["sip:202@192.168.10.22;transport=tcp"]

[phonebook]
"201" = "Alice Example"
"+49 30 555" = " Bob Example "
"#;

    #[test]
    fn a_ring_group_of_two_loads() {
        let c = with(
            "[[routes]]\nnumber = \"4930555\"\ntargets = [\"sip:201@192.168.10.21\", \"sip:202@192.168.10.22:5070;transport=tcp\"]\n",
        )
        .unwrap();
        let r = &c.routes[0];
        assert!(r.is_group());
        assert_eq!(
            r.targets
                .iter()
                .map(|t| (t.uri.as_str(), t.user.as_deref()))
                .collect::<Vec<_>>(),
            vec![
                ("sip:201@192.168.10.21", Some("201")),
                ("sip:202@192.168.10.22:5070;transport=tcp", Some("202"))
            ]
        );
        assert_eq!(r.target, "sip:201@192.168.10.21");
    }

    #[test]
    fn routes_and_phonebook_load_normalised() {
        let c = with(ROUTES).unwrap();
        assert_eq!(c.routes.len(), 2);
        let r = &c.routes[0];
        assert_eq!(r.number, NumberPattern::Exact("4930123456".into()));
        assert_eq!(r.target, "sip:201@192.168.10.21:5060");
        assert_eq!(r.target_user.as_deref(), Some("201"));
        assert_eq!(r.queue.as_deref(), Some("support"));
        let r = &c.routes[1];
        assert_eq!(r.number, NumberPattern::Prefix("4930123457".into()));
        assert_eq!(r.queue, None);
        assert_eq!(
            c.phonebook.iter().collect::<Vec<_>>(),
            vec![
                (&"201".to_string(), &"Alice Example".to_string()),
                (&"4930555".to_string(), &"Bob Example".to_string()),
            ]
        );
        // the tracker (and through it the core) gets both
        let t = c.tracker_config();
        assert_eq!(t.routes, c.routes);
        assert_eq!(t.phonebook, c.phonebook);
    }

    #[test]
    fn no_routes_no_phonebook_is_the_old_behaviour() {
        let c = with("").unwrap();
        assert!(c.routes.is_empty() && c.phonebook.is_empty());
        let t = c.effective_toml();
        assert!(!t.contains("routes") && !t.contains("phonebook"), "{t}");
    }

    #[test]
    fn check_config_prints_routes_and_phonebook() {
        let t = with(ROUTES).unwrap().effective_toml();
        for want in [
            "[[routes]]",
            "number = \"+49 30 123456\"",
            "targets = [\"sip:201@192.168.10.21:5060\"]",
            "queue = \"support\"",
            "number = \"030123457*\"",
            "[phonebook]",
            "201 = \"Alice Example\"",
        ] {
            assert!(t.contains(want), "missing {want:?} in\n{t}");
        }
        // and what it prints loads again to the same routes
        let again = Config::from_toml(&t, None).unwrap();
        assert_eq!(again.routes, with(ROUTES).unwrap().routes);
    }

    #[test]
    fn route_errors_name_the_key() {
        let route = |number: &str, targets: &str, queue: &str| {
            format!("[[routes]]\nnumber = \"4930111\"\ntargets = [\"sip:201@192.168.10.21\"]\n[[routes]]\nnumber = {number}\ntargets = {targets}\n{queue}\n")
        };
        let ok_t = "[\"sip:202@192.168.10.22\"]";
        let e = err(&route("\"4930\"", "[\"alice\"]", ""));
        assert!(
            e.starts_with("routes[1].targets: ")
                && e.contains("registered user")
                && e.contains("not supported yet"),
            "{e}"
        );
        // a ring group: every target is checked, at most 16
        let e = err(&route(
            "\"4930\"",
            "[\"sip:201@192.168.10.21\", \"sip:202@10.1.1.1\"]",
            "",
        ));
        assert!(
            e.starts_with("routes[1].targets: ") && e.contains("not in inside.networks"),
            "{e}"
        );
        let many = (0..17)
            .map(|i| format!("\"sip:2{i:02}@192.168.10.21\""))
            .collect::<Vec<_>>()
            .join(", ");
        let e = err(&route("\"4930\"", &format!("[{many}]"), ""));
        assert!(
            e.starts_with("routes[1].targets: at most 16 targets"),
            "{e}"
        );
        let e = err(&route("\"4930\"", "[]", ""));
        assert!(e.starts_with("routes[1].targets: needs one target"), "{e}");
        let e = err(&route("\"4930\"", "[\"sip:202@10.1.1.1\"]", ""));
        assert!(
            e.starts_with("routes[1].targets: ") && e.contains("not in inside.networks"),
            "{e}"
        );
        let e = err(&route("\"4930\"", "[\"sip:202@phone.example\"]", ""));
        assert!(
            e.starts_with("routes[1].targets: ") && e.contains("must be an IP address"),
            "{e}"
        );
        let e = err(&route("\"4930\"", "[\"sip:192.168.10.22\"]", ""));
        assert!(
            e.starts_with("routes[1].targets: ") && e.contains("no user"),
            "{e}"
        );
        let e = err(&route(
            "\"4930\"",
            "[\"sip:202@192.168.10.22;transport=tls\"]",
            "",
        ));
        assert!(e.starts_with("routes[1].targets: transport=tls"), "{e}");
        let e = err(&route("\"sales\"", ok_t, ""));
        assert!(
            e.starts_with("routes[1].number: \"sales\" must be a number"),
            "{e}"
        );
        let e = err(&route("\"*\"", ok_t, ""));
        assert!(e.starts_with("routes[1].number: "), "{e}");
        let e = err(&route("\"4930\"", ok_t, "queue = \"\""));
        assert!(e.starts_with("routes[1].queue: must not be empty"), "{e}");
        let long = "q".repeat(251);
        let e = err(&route("\"4930\"", ok_t, &format!("queue = \"{long}\"")));
        assert!(e.starts_with("routes[1].queue: at most 250"), "{e}");
        assert!(with(&route(
            "\"4930\"",
            ok_t,
            &format!("queue = \"{}\"", &long[1..])
        ))
        .is_ok());
        // unknown keys are TOML errors naming the key
        let e =
            err("[[routes]]\nnumber = \"1\"\ntargets = [\"sip:1@192.168.10.2\"]\nqeue = \"x\"\n");
        assert!(e.contains("qeue"), "{e}");
    }

    #[test]
    fn phonebook_errors_name_the_key() {
        let e = err("[phonebook]\n\"201\" = \"  \"\n");
        assert!(e.starts_with("phonebook.\"201\": the name is empty"), "{e}");
        let e = err("[phonebook]\n\"+4930555\" = \"A\"\n\"004930555\" = \"B\"\n");
        assert!(
            e.starts_with("phonebook.") && e.contains("same number (4930555)"),
            "{e}"
        );
        let e = err("[phonebook]\n\"\" = \"A\"\n");
        assert!(
            e.starts_with("phonebook.\"\": the number or extension is empty"),
            "{e}"
        );
    }
}
