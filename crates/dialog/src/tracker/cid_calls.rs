//! The tracker's Call-ID index entry: the calls that share one SIP
//! Call-ID (RFC 3261 allows a new call to reuse one), found by the From
//! tag of their initial INVITE.

/// The calls of one Call-ID, (From tag, call) in creation order; the last
/// match is the current call. Most Call-IDs carry one call: it is held
/// without a list of its own.
#[derive(Debug)]
pub(super) enum CidCalls {
    /// One call.
    One(String, u64),
    /// None (only while being filled) or several calls.
    Many(Vec<(String, u64)>),
}

impl Default for CidCalls {
    /// No call (no allocation).
    fn default() -> Self {
        CidCalls::Many(Vec::new())
    }
}

impl CidCalls {
    /// The newest call whose From tag is `tag`.
    pub(super) fn find(&self, tag: &str) -> Option<u64> {
        match self {
            CidCalls::One(t, id) => (t == tag).then_some(*id),
            CidCalls::Many(v) => v.iter().rev().find(|(t, _)| t == tag).map(|(_, id)| *id),
        }
    }

    /// Adds call `id` with From tag `tag` as the newest.
    pub(super) fn push(&mut self, tag: String, id: u64) {
        if matches!(self, CidCalls::Many(v) if v.is_empty()) {
            *self = CidCalls::One(tag, id);
            return;
        }
        match std::mem::take(self) {
            CidCalls::One(t, i) => *self = CidCalls::Many(vec![(t, i), (tag, id)]),
            CidCalls::Many(mut v) => {
                v.push((tag, id));
                *self = CidCalls::Many(v);
            }
        }
    }

    /// Drops call `id`; true when no call is left.
    pub(super) fn remove(&mut self, id: u64) -> bool {
        match self {
            CidCalls::One(_, i) => *i == id,
            CidCalls::Many(v) => {
                v.retain(|(_, i)| *i != id);
                v.is_empty()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CidCalls;

    #[test]
    fn one_then_many_then_empty() {
        let mut c = CidCalls::default();
        assert_eq!(c.find(""), None);
        c.push("a".into(), 1);
        assert!(matches!(c, CidCalls::One(..)));
        assert_eq!((c.find("a"), c.find("b")), (Some(1), None));
        assert!(!c.remove(7), "another call's id leaves it");
        c.push("b".into(), 2);
        c.push("a".into(), 3);
        assert_eq!((c.find("a"), c.find("b")), (Some(3), Some(2)));
        assert!(!c.remove(3));
        assert_eq!(c.find("a"), Some(1));
        assert!(!c.remove(1));
        assert!(c.remove(2));
        let mut one = CidCalls::default();
        one.push(String::new(), 9);
        assert!(one.remove(9));
    }
}
