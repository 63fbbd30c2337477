//! The glue between the call tracker, the file configuration and the Zammad
//! CTI client, shared by [`crate::runtime`] (live) and [`crate::replay`]
//! (captures), which are siblings: neither imports the other.

use sipcti_cti as cti;
use sipcti_dialog::CallEvent;

use crate::config::{Config, ZammadFormat};

/// Map a tracker event to Zammad's event (a field copy: both use the
/// `sipcti-event` model).
pub fn to_cti_event(ev: &CallEvent) -> cti::Event {
    into_cti_event(ev.clone())
}

/// [`to_cti_event`] taking the event: its strings move over, no copy (the
/// live path, three events per call).
pub fn into_cti_event(ev: CallEvent) -> cti::Event {
    cti::Event {
        event: ev.kind,
        direction: ev.direction,
        call_id: ev.call_id,
        from: Some(ev.from),
        to: Some(ev.to),
        // a ring group's newCall names every called person (an array)
        user: if ev.group.len() > 1 {
            Some(cti::User::Many(ev.group))
        } else {
            ev.user.map(cti::User::One)
        },
        queue: ev.queue,
        answering_number: ev.answering_number,
        cause: ev.cause,
    }
}

/// The CTI client configuration from the file configuration: with
/// `[zammad] outbox` the durable outbox (group commit `outbox_sync_ms`);
/// calls found open in it at start are closed after
/// `timers.max_call_duration_s`; at most `limits.max_calls` open calls.
pub fn cti_config(cfg: &Config) -> cti::ClientConfig {
    cti::ClientConfig {
        url: cfg.zammad_url.clone(),
        format: match cfg.zammad_format {
            ZammadFormat::Json => cti::Format::Json,
            ZammadFormat::Form => cti::Format::Form,
        },
        newcall_timeout: cfg.newcall_timeout,
        queue_capacity: cfg.cti_queue,
        give_up_after: cfg.cti_give_up,
        max_in_flight: cfg.file.zammad.max_in_flight,
        newcall_slots: cfg.file.zammad.newcall_slots,
        outbox: cfg.file.zammad.outbox.clone(),
        outbox_sync: std::time::Duration::from_millis(cfg.file.zammad.outbox_sync_ms),
        open_call_timeout: std::time::Duration::from_secs(cfg.timers.max_call_duration_s),
        max_open_calls: cfg.limits.max_calls,
        ..cti::ClientConfig::default()
    }
}
