//! The `sipcti.toml` file as written: one struct per section, every key
//! with its default (the README's configuration reference, key by key).

use super::*;

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
    /// `[registration]`: phones registering with the trunk through sipcti.
    #[serde(default)]
    pub registration: RegistrationSection,
    /// `[admin]`: the operator's HTTP endpoint (`/metrics`, `/health`,
    /// `/ready`); absent: no admin server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<AdminSection>,
}

/// `[admin]` section: where `sipcti run` serves `/metrics` (Prometheus text
/// format), `/health` and `/ready` over plain HTTP, without authentication.
/// Nothing served holds a secret (never the Zammad URL or token).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// HTTP listen address `IP:PORT`, e.g. `127.0.0.1:9060`. Must be a
    /// loopback address unless `allow_remote`.
    pub listen: String,
    /// Allow a non-loopback `listen` address (default false): the
    /// endpoints have no authentication, so put a firewall in front.
    #[serde(default)]
    pub allow_remote: bool,
}

/// How a REGISTER relayed to the trunk makes the registrar's binding point
/// back at sipcti.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationModeName {
    /// The phone's Contact is replaced by `sip:<key>@<sipcti>` (any registrar).
    #[default]
    Contact,
    /// A Path header naming sipcti is added (RFC 3327; the registrar must support it).
    Path,
}

/// `[registration]` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrationSection {
    /// `"contact"` (default) or `"path"`.
    pub mode: RegistrationModeName,
    /// SQLite file keeping the bindings across restarts; none: in memory only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<std::path::PathBuf>,
    /// Most bindings at once (default 10000); a REGISTER adding more gets 503.
    pub max_bindings: usize,
}

impl Default for RegistrationSection {
    fn default() -> Self {
        RegistrationSection {
            mode: RegistrationModeName::Contact,
            store: None,
            max_bindings: 10_000,
        }
    }
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
    /// Threads the proxy's core runs on (read at start only). 1 (the
    /// default): one thread reads the sockets, runs the core and sends, with
    /// no hand-over between threads inside the call path (the Zammad client
    /// always has a thread of its own, the stores' writers too). More: a
    /// tokio work-stealing pool of that many threads (more CPU per call,
    /// TCP connections spread over them); 0: one per core. At most 64.
    #[serde(default = "default_threads")]
    pub threads: usize,
}

fn default_threads() -> usize {
    1
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
    /// Mask the inside's Contacts toward the trunk (`sip:tc…@sipcti`), so
    /// the trunk sees neither extensions nor private addresses (default
    /// true); false passes Contacts through unchanged.
    #[serde(default = "default_true")]
    pub hide_topology: bool,
    /// Secret seeding the Contact mask; without it a fixed default is used
    /// (the mask hides, it does not encrypt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_secret: Option<String>,
}

fn default_true() -> bool {
    true
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
    /// Further concurrent requests kept for the `newCall` of an INVITE
    /// waiting for Zammad's answer, so a backlog of `answer`/`hangup` never
    /// delays a call (0: none kept). Default 8; at most 1024.
    #[serde(default = "default_newcall_slots")]
    pub newcall_slots: usize,
    /// Run the Zammad client on its own thread (`sipcti-cti`) instead of
    /// the core's. Default false: on the core's thread a call's four CTI
    /// requests cost no thread hand-over, which measured ~10% less CPU per
    /// call and a lower INVITE delay at 2,000 calls/s, with the same
    /// highest call rate (docs/SPEED.md). True keeps the HTTP work (TLS
    /// handshakes included) off the thread that forwards SIP.
    #[serde(default)]
    pub own_thread: bool,
    /// The durable outbox, an SQLite file (e.g. `/var/lib/sipcti/outbox.db`;
    /// its directory must exist and be writable): every CTI event is written
    /// there before it is delivered and kept until delivered, across
    /// restarts and crashes. Absent: events are kept in memory only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbox: Option<std::path::PathBuf>,
    /// Group commit of the outbox, in ms: the most recent events a SIGKILL
    /// or crash can lose (default 20; 0 commits as soon as the writer can).
    #[serde(default = "default_outbox_sync")]
    pub outbox_sync_ms: u64,
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
fn default_newcall_slots() -> usize {
    8
}
fn default_in_flight() -> usize {
    16
}
fn default_outbox_sync() -> u64 {
    20
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
            .field("newcall_slots", &self.newcall_slots)
            .field("own_thread", &self.own_thread)
            .field("outbox", &self.outbox)
            .field("outbox_sync_ms", &self.outbox_sync_ms)
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
            newcall_slots: default_newcall_slots(),
            own_thread: false,
            outbox: None,
            outbox_sync_ms: default_outbox_sync(),
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
