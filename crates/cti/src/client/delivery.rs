//! Delivery: long-lived delivery lanes that take ready calls in turn, one
//! attempt per HTTP request, Zammad's answer classified into done, retry
//! (backoff without a slot) or drop.

use super::*;

/// The kind of a delivery lane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Lane {
    /// Takes any call in line, urgent newCalls first (`max_in_flight` of them).
    General,
    /// Takes only first-attempt newCalls an INVITE waits for (`newcall_slots` of them),
    /// so a backlog of answer/hangup holding every general lane cannot delay an INVITE.
    NewCall,
}

/// One long-lived delivery lane: takes the next call in line, attempts its head event,
/// and repeats; parks when there is nothing to take for it (woken by the lane claim in
/// `enqueue`, `finish` or a retry's end). At most one attempt runs per lane, so at most
/// `max_in_flight + newcall_slots` requests run at once. Ends once the client is closed
/// and its queue empty, or closed after [`CtiClient::close`].
pub(super) async fn lane(shared: Arc<Shared>, kind: Lane) {
    let reserve = kind == Lane::NewCall;
    let notify = if reserve {
        &shared.wake_reserve
    } else {
        &shared.wake
    };
    loop {
        let (call_id, head) = loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = shared.lock();
                if let Some(id) = st.pick(reserve) {
                    let head = st.take_head(&id);
                    break (id, head);
                }
                if st.closed && (st.queued == 0 || st.stopping) {
                    debug!("CTI delivery lane stopped");
                    return;
                }
                if reserve {
                    st.idle_reserve += 1;
                } else {
                    st.idle_lanes += 1;
                }
            }
            // whoever wakes this lane took it off the idle count
            notified.await;
        };
        deliver_head(&shared, call_id, head, kind).await;
    }
}

/// What one attempt left to do.
pub(super) enum Step {
    /// The event is delivered or finally dropped.
    Done,
    /// Try again after this delay.
    Retry(Duration),
}

/// Attempt the head event of one call (marked in flight by [`State::pick`], taken out by
/// [`State::take_head`] with whether it is an orphan) once; then finish it, or let it
/// sleep through its backoff without holding the lane.
pub(super) async fn deliver_head(
    shared: &Arc<Shared>,
    call_id: CallId,
    head: Option<(Pending, bool)>,
    kind: Lane,
) {
    let Some((mut p, orphan)) = head else {
        let lane = {
            let mut st = shared.lock();
            st.in_flight = st.in_flight.saturating_sub(1);
            st.schedule(&call_id);
            st.claim_lane()
        };
        shared.wake_lane(lane);
        return;
    };
    match attempt_step(shared, &mut p, orphan).await {
        Step::Done => shared.finish(p, kind),
        Step::Retry(delay) => {
            let gen = {
                let mut st = shared.lock();
                st.in_flight = st.in_flight.saturating_sub(1);
                let Some(q) = st.calls.get_mut(&*call_id) else {
                    // cannot happen: a call in flight is never dropped
                    return;
                };
                q.events.push_front(p);
                q.sched = Sched::Sleeping;
                let gen = q.gen;
                shared.sleeping.fetch_add(1, Ordering::Relaxed);
                gen
            };
            shared.changed.notify_waiters();
            tokio::spawn(sleep_then_retry(shared.clone(), call_id, gen, delay));
        }
    }
}

/// A retry's backoff: wait `delay` (or until Zammad answers again), then get back in line.
pub(super) async fn sleep_then_retry(
    shared: Arc<Shared>,
    call_id: CallId,
    gen: u64,
    delay: Duration,
) {
    let early = shared.recovery.notified();
    tokio::pin!(early);
    early.as_mut().enable();
    tokio::select! {
        _ = tokio::time::sleep(delay) => {}
        _ = early => {}
    }
    let lane = {
        let mut st = shared.lock();
        shared.sleeping.fetch_sub(1, Ordering::Relaxed);
        let mine = st
            .calls
            .get(&*call_id)
            .is_some_and(|q| q.gen == gen && q.sched == Sched::Sleeping);
        if mine {
            st.schedule(&call_id);
        }
        st.claim_lane()
    };
    shared.wake_lane(lane);
}

/// Verdict on one HTTP attempt.
pub(super) enum Verdict {
    Delivered,
    AlreadyExists,
    /// Try again. `definite`: the request certainly did not reach Zammad's processing (no
    /// connection, or Zammad answered an error); otherwise it may have been processed.
    Retry {
        detail: String,
        definite: bool,
    },
    Reject(String),
}

/// `maybe_sent`: an earlier attempt of this event may have reached Zammad (then "already
/// exists" on a newCall is its own earlier copy).
pub(super) fn classify(status: u16, body: &str, kind: EventKind, maybe_sent: bool) -> Verdict {
    let excerpt = || {
        let t: String = body.chars().take(BODY_EXCERPT_CHARS).collect();
        format!("HTTP {status}: {t}")
    };
    match status {
        200..=299 => Verdict::Delivered,
        500 if kind == EventKind::NewCall && body.contains("already exists") => {
            if maybe_sent {
                Verdict::AlreadyExists
            } else {
                Verdict::Reject(format!("duplicate callId: {}", excerpt()))
            }
        }
        // a gateway time-out: Zammad behind it may have processed the request
        504 => Verdict::Retry {
            detail: excerpt(),
            definite: false,
        },
        500..=599 | 408 | 429 => Verdict::Retry {
            detail: excerpt(),
            definite: true,
        },
        _ => Verdict::Reject(excerpt()),
    }
}

/// One HTTP attempt: `(status, body)`, or the error text and whether the request
/// certainly never reached Zammad (the connection could not be made). The URI and headers
/// are built once (see `transport::Http`); the body is shared, not copied.
pub(super) async fn attempt(target: &Target, p: &Pending) -> Result<(u16, Bytes), (String, bool)> {
    target.http.post(p.body.clone()).await
}

/// Attempt one event once; resolves its newCall waiter and counts the outcome when it is
/// final. A `hangup` whose second copy would flip the missed flag is marked in the outbox
/// (durably) before it is sent, and is not sent again after an attempt that may have
/// reached Zammad. `orphan`: an `answer`/`hangup` of a call whose newCall was dropped
/// (attempted once, not retried).
pub(super) async fn attempt_step(shared: &Shared, p: &mut Pending, orphan: bool) -> Step {
    let Some(target) = shared.target.as_ref() else {
        return Step::Done;
    };
    let cfg = &shared.cfg;
    let kind = p.ev.event;
    let dropped = |p: &mut Pending, reason: DropReason, detail: String| {
        shared.count_drop(&p.ev, reason, &detail);
        if kind == EventKind::NewCall {
            shared.lock().lost_newcalls.insert(&p.ev.call_id);
        }
        if let Some(w) = p.waiter.take() {
            let _ = w.send(NewCallOutcome::Dropped(format!(
                "{}: {detail}",
                reason.as_str()
            )));
        }
    };
    let age = p.enqueued.elapsed();
    if age >= cfg.give_up_after {
        let detail = format!(
            "undelivered after {} ms (last error: {})",
            age.as_millis(),
            p.last_error
        );
        dropped(p, DropReason::GaveUp, detail);
        return Step::Done;
    }
    let marked = match (&shared.outbox, p.dup_harmful) {
        (Some(w), true) => {
            // durable before the request leaves: after a crash it is not sent blindly again
            let _ = w.push_and_wait(OutboxChange::Attempted(p.id, true)).await;
            true
        }
        _ => false,
    };
    p.attempts += 1;
    let n = p.attempts;
    if n > 1 {
        shared.counters.retried.fetch_add(1, Ordering::Relaxed);
    }
    let (verdict, decision) = match attempt(target, p).await {
        Ok((status, body)) => {
            let text = String::from_utf8_lossy(&body);
            let v = classify(status, &text, kind, n > 1 || p.maybe_sent);
            let decision = (matches!(v, Verdict::Delivered) && kind == EventKind::NewCall)
                .then(|| parse_answer(&text));
            (v, decision)
        }
        Err((detail, definite)) => (Verdict::Retry { detail, definite }, None),
    };
    match verdict {
        Verdict::Delivered => {
            shared.delivered_once();
            if n > 1 {
                info!(call_id = %p.ev.call_id, event = kind.as_str(), attempts = n, "CTI event delivered after retries");
            }
            if let Some(decision) = decision {
                let late = match p.waiter.take() {
                    Some(w) => w.send(NewCallOutcome::Answered(decision.clone())).is_err(),
                    None => true,
                };
                if late {
                    info!(call_id = %p.ev.call_id, ?decision, "newCall answered, nobody waiting (late or replay)");
                } else {
                    debug!(call_id = %p.ev.call_id, ?decision, "newCall answered");
                }
            }
            Step::Done
        }
        Verdict::AlreadyExists => {
            shared.delivered_once();
            shared
                .counters
                .already_exists
                .fetch_add(1, Ordering::Relaxed);
            warn!(call_id = %p.ev.call_id, attempts = n, "newCall answered \"already exists\" after an earlier attempt: counted as delivered, Zammad's decision is lost");
            if let Some(w) = p.waiter.take() {
                let _ = w.send(NewCallOutcome::Failed(
                    "a retry was answered \"already exists\": the first attempt reached Zammad, its answer was lost".into(),
                ));
            }
            Step::Done
        }
        Verdict::Reject(detail) => {
            dropped(p, DropReason::Rejected, detail);
            Step::Done
        }
        Verdict::Retry { detail, definite } => {
            if !definite && p.dup_harmful {
                let count = shared.counters.unconfirmed.fetch_add(1, Ordering::Relaxed) + 1;
                warn!(call_id = %p.ev.call_id, error = %detail, count, "a hangup may have reached Zammad but its answer was lost: not sent again (a second hangup would flip the missed flag)");
                return Step::Done;
            }
            if marked {
                shared.outbox_push(OutboxChange::Attempted(p.id, false));
            }
            if !definite {
                p.maybe_sent = true;
                if kind == EventKind::NewCall {
                    shared.lock().unsent_newcalls.remove(&p.id);
                }
            }
            if orphan {
                dropped(
                    p,
                    DropReason::Orphaned,
                    format!("the call's newCall was dropped earlier; {detail}"),
                );
                return Step::Done;
            }
            let first = (n == 1).then(|| {
                shared
                    .counters
                    .first_failures
                    .fetch_add(1, Ordering::Relaxed)
                    + 1
            });
            if let Some(count) = first.filter(|c| log_sample(*c)) {
                warn!(call_id = %p.ev.call_id, event = kind.as_str(), error = %detail, url = %target.redacted, count, "CTI delivery failed, retrying");
            } else {
                debug!(call_id = %p.ev.call_id, event = kind.as_str(), attempt = n, error = %detail, "CTI delivery failed again");
            }
            p.last_error = detail.into();
            let remaining = cfg.give_up_after.saturating_sub(p.enqueued.elapsed());
            let delay = p.backoff.min(remaining);
            p.backoff = (p.backoff * 2).min(cfg.retry_max.max(MIN_BACKOFF));
            Step::Retry(delay)
        }
    }
}
