//! Recovery at start: the CTI outbox's rows turned back into the queue
//! ([`load`]), the calls they show open ([`Recovered`], handed out as
//! [`OpenCall`]), and the `hangup` of an open call nobody hung up since
//! ([`close_open_calls`]).

use super::*;

/// An answered call open at the last stop, handed to the proxy's call
/// tracker by [`CtiClient::take_open_answered_calls`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenCall {
    /// Zammad's `callId` (the SIP Call-ID, unless it was shortened or reused).
    pub call_id: String,
    /// `in` or `out`.
    pub direction: sipcti_event::Direction,
    /// Zammad's `from`.
    pub from: String,
    /// Zammad's `to`.
    pub to: String,
    /// How long before the load its `newCall` was made.
    pub age: Duration,
}

/// A call that was open in Zammad when an earlier run stopped (found in the outbox).
pub(super) struct Recovered {
    pub(super) new_call: Event,
    pub(super) answered: bool,
    /// How long before the load its `newCall` was made.
    pub(super) age: Duration,
}

/// What the outbox held at start, turned into queued events and open calls.
pub(super) struct Loaded {
    pub(super) state: State,
    /// Recovered open calls: when each gets its `hangup` unless hung up before.
    pub(super) deadlines: Vec<(Instant, String)>,
    pub(super) events: u64,
    pub(super) calls: usize,
    pub(super) unconfirmed: u64,
    pub(super) unreadable: usize,
}

/// What the outbox rows of one call say: its newCall (and when it was submitted, ms since
/// the Unix epoch), whether it was answered, whether it was hung up.
type Seen = (Option<(Event, u64)>, bool, bool);

/// Rebuild the queue from the outbox rows (id order): events not done are queued again,
/// in order per call; calls with a `newCall` and no `hangup` are open. An attempted
/// `hangup` whose second copy would flip the missed flag is not queued again.
pub(super) fn load(rows: Vec<OutboxRow>, cfg: &ClientConfig, writer: &Writer) -> Loaded {
    let next_id = rows.iter().map(|r| r.id).max().map_or(1, |m| m + 1);
    let mut st = State::new(next_id);
    let now = Instant::now();
    let now_ms = unix_now_ms();
    // callId -> what its rows say, in order of first row
    let mut seen: HashMap<String, Seen> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let (mut events, mut unconfirmed, mut unreadable) = (0u64, 0u64, 0usize);
    for r in rows {
        let ev: Event = match serde_json::from_str(&r.event) {
            Ok(ev) => ev,
            Err(e) => {
                unreadable += 1;
                warn!(call_id = %r.call_id, id = r.id, error = %e, "CTI outbox row does not parse: skipped");
                continue;
            }
        };
        let info = seen.entry(r.call_id.clone()).or_insert_with(|| {
            order.push(r.call_id.clone());
            (None, false, false)
        });
        match ev.event {
            EventKind::NewCall => info.0 = Some((ev.clone(), r.created_unix_ms)),
            EventKind::Answer => info.1 = true,
            EventKind::Hangup => info.2 = true,
        }
        if r.done {
            continue;
        }
        if ev.event == EventKind::Hangup && r.attempted && r.dup_harmful {
            unconfirmed += 1;
            warn!(call_id = %ev.call_id, "a hangup was being sent when sipcti stopped and may have reached Zammad: not sent again (a second hangup would flip the missed flag)");
            writer.push(OutboxChange::RemoveCall {
                call_id: r.call_id,
                up_to: r.id,
            });
            continue;
        }
        let age = Duration::from_millis(now_ms.saturating_sub(r.created_unix_ms));
        let body = Bytes::from(ev.encode(cfg.format).1);
        events += 1;
        st.push(Pending {
            id: r.id,
            call: Arc::from(ev.call_id.as_str()),
            ev,
            body,
            enqueued: now.checked_sub(age).unwrap_or(now),
            waiter: None,
            attempts: 0,
            backoff: cfg.retry_initial.max(MIN_BACKOFF),
            last_error: Cow::Borrowed("never attempted in this run"),
            // a newCall answered "already exists" reached Zammad before the stop
            maybe_sent: true,
            dup_harmful: r.dup_harmful,
        });
    }
    let calls = st.calls.len();
    let mut deadlines = Vec::new();
    for call in order {
        let Some((Some((new_call, created)), answered, false)) = seen.remove(&call) else {
            continue;
        };
        let left = Duration::from_millis(
            created
                .saturating_add(
                    u64::try_from(cfg.open_call_timeout.as_millis()).unwrap_or(u64::MAX),
                )
                .saturating_sub(now_ms),
        );
        deadlines.push((now + left, call.clone()));
        st.open.insert(Arc::from(call.as_str()), answered);
        let age = Duration::from_millis(now_ms.saturating_sub(created));
        st.recovered.insert(
            call,
            Recovered {
                new_call,
                answered,
                age,
            },
        );
    }
    deadlines.sort();
    Loaded {
        state: st,
        deadlines,
        events,
        calls,
        unconfirmed,
        unreadable,
    }
}

/// Close the calls found open in the outbox at start that nobody hung up since: at each
/// deadline (`newCall` time + `open_call_timeout`) submit their `hangup`.
pub(super) async fn close_open_calls(shared: Weak<Shared>, deadlines: Vec<(Instant, String)>) {
    for (at, call) in deadlines {
        tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let ev = {
            let st = shared.lock();
            if st.closed || st.stopping {
                return;
            }
            let Some(r) = st.recovered.get(&call) else {
                continue;
            };
            Event {
                event: EventKind::Hangup,
                direction: r.new_call.direction,
                call_id: call.clone(),
                from: r.new_call.from.clone(),
                to: r.new_call.to.clone(),
                user: None,
                queue: None,
                answering_number: None,
                cause: Some(if r.answered {
                    Cause::NormalClearing
                } else {
                    Cause::Cancel
                }),
            }
        };
        shared
            .counters
            .open_calls_closed
            .fetch_add(1, Ordering::Relaxed);
        info!(call_id = %call, "a call open at the last stop was never heard of again: sending its hangup");
        let _ = shared.enqueue(ev, None);
    }
}
