//! `[[routes]]` (inbound routes, first match wins) and `[phonebook]`:
//! validated with errors that name the key (`routes[1].targets: …`).

use super::*;

/// Validate `[[routes]]` with `country_code` and `max_internal_len` (the
/// tracker's normalisation). Errors name the key, e.g. `routes[1].targets`
/// (0-based index, as written in the file's order).
pub(super) fn parse_routes(
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
            return Err(invalid(
                key("targets"),
                "needs one target (a SIP URI or a registered user)",
            ));
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
/// address in `inside_networks`, or the AOR user of a phone registered
/// through sipcti (`alice`, `201`: letters, digits and `.-_+`, at most 64).
/// Returns it trimmed; errors name `tkey`.
fn check_route_target<'a>(
    tkey: &str,
    target: &'a str,
    inside_networks: &[IpNet],
) -> Result<&'a str, ConfigError> {
    let t = target.trim();
    if !t.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("sip:")) {
        let name_ok = !t.is_empty()
            && t.len() <= 64
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_+".contains(&b));
        if !name_ok {
            return Err(invalid(
                tkey.to_string(),
                format!(
                    "{t:?}: give a SIP URI (sip:user@host[:port][;transport=udp|tcp]) or the user name of a phone registered through sipcti (letters, digits, .-_+)"
                ),
            ));
        }
        return Ok(t);
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
pub(super) fn parse_phonebook(
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
