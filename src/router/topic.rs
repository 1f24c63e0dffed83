//! MQTT topic names and topic filters: validation, level splitting, `$`-topics and the
//! shared-subscription prefixes `$share/Group/` and `$queue/`.
//!
//! Rules from MQTT 5.0 section 4.7 (3.1.1 section 4.7 says the same): a topic is a UTF-8 string
//! of 1..=65535 bytes without U+0000, split into levels by `/`; empty levels are allowed; `+`
//! stands for a whole level; `#` is a whole level and the last one; topic names carry no
//! wildcard. Shared subscriptions are MQTT 5.0 section 4.8.2 plus EMQX 4's `$queue/F` (group
//! `$queue`), as `emqx_topic:parse/2` reads them; routing always uses the inner filter.

use thiserror::Error;

/// The longest topic MQTT can encode: a two-byte length prefix (MQTT 5.0 section 1.5.4).
pub const MAX_TOPIC_LEN: usize = 65_535;

/// The level separator.
pub const LEVEL_SEPARATOR: char = '/';

/// Why a topic name, filter or shared subscription was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TopicError {
    /// Topics are at least one byte long (MQTT 5.0 section 4.7.3).
    #[error("topic is empty")]
    Empty,
    /// Longer than the two-byte length prefix can carry.
    #[error("topic is {0} bytes, more than 65535")]
    TooLong(usize),
    /// U+0000 is forbidden in every MQTT string (MQTT 5.0 section 1.5.4).
    #[error("topic contains U+0000")]
    Nul,
    /// The bytes are not UTF-8.
    #[error("topic is not valid UTF-8")]
    NotUtf8,
    /// A topic name (publish) must not contain `+` or `#` (MQTT 5.0 section 4.7.1).
    #[error("topic name contains a wildcard")]
    WildcardInName,
    /// `+` or `#` is part of a level instead of the whole level (`a+/b`, `a/b#`).
    #[error("wildcard is not a whole level")]
    WildcardNotWholeLevel,
    /// `#` is followed by another level (`a/#/b`).
    #[error("`#` is not the last level")]
    HashNotLast,
    /// `$share/` without a group name, or a group name with `+` or `#` (MQTT 5.0 section 4.8.2).
    #[error("invalid share group name")]
    BadShareGroup,
    /// `$share/Group` with nothing after the group, or an empty filter after `$queue/`.
    #[error("shared subscription has no topic filter")]
    NoSharedFilter,
    /// `$share/G/$share/...`: a shared subscription inside another (EMQX 4 refuses it too).
    #[error("nested shared subscription")]
    NestedShare,
}

/// Checks what topic names and filters have in common: length and U+0000.
fn check_common(s: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        return Err(TopicError::Empty);
    }
    if s.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong(s.len()));
    }
    if s.as_bytes().contains(&0) {
        return Err(TopicError::Nul);
    }
    Ok(())
}

/// Splits a topic or filter into levels: `"a//b"` gives `a`, ``, `b`; `"/"` gives two empty
/// levels. Borrowing, no allocation.
pub fn levels(s: &str) -> std::str::Split<'_, char> {
    s.split(LEVEL_SEPARATOR)
}

/// Whether a topic starts with `$` (`$SYS/...`): such topics are not matched by a filter whose
/// first level is a wildcard (MQTT 5.0 section 4.7.2).
pub fn is_dollar_topic(s: &str) -> bool {
    s.as_bytes().first() == Some(&b'$')
}

/// A validated publish topic: no wildcards, 1..=65535 bytes, no U+0000.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName(Box<str>);

impl TopicName {
    /// Validates `s` as a topic name (MQTT 5.0 section 4.7.1, 4.7.3).
    pub fn new(s: &str) -> Result<Self, TopicError> {
        Self::validate(s)?;
        Ok(TopicName(s.into()))
    }

    /// Validates raw wire bytes as a topic name.
    pub fn from_bytes(b: &[u8]) -> Result<Self, TopicError> {
        let s = std::str::from_utf8(b).map_err(|_| TopicError::NotUtf8)?;
        Self::new(s)
    }

    /// Checks `s` without allocating: what the publish path calls on a borrowed topic.
    pub fn validate(s: &str) -> Result<(), TopicError> {
        check_common(s)?;
        if s.bytes().any(|b| b == b'+' || b == b'#') {
            return Err(TopicError::WildcardInName);
        }
        Ok(())
    }

    /// The topic text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The levels of the topic.
    pub fn levels(&self) -> std::str::Split<'_, char> {
        levels(&self.0)
    }

    /// Whether the topic starts with `$` (see [`is_dollar_topic`]).
    pub fn is_dollar(&self) -> bool {
        is_dollar_topic(&self.0)
    }
}

impl std::fmt::Display for TopicName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One level of a topic filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterLevel<'a> {
    /// A literal level, possibly empty.
    Literal(&'a str),
    /// `+`: exactly one level, whatever it is (empty included).
    Plus,
    /// `#`: this level's parent and every level below it.
    Hash,
}

impl<'a> FilterLevel<'a> {
    /// Classifies one level of an already validated filter.
    pub fn of(level: &'a str) -> Self {
        match level {
            "+" => FilterLevel::Plus,
            "#" => FilterLevel::Hash,
            other => FilterLevel::Literal(other),
        }
    }
}

/// A validated subscription filter (without any `$share/`/`$queue/` prefix).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicFilter(Box<str>);

impl TopicFilter {
    /// Validates `s` as a topic filter (MQTT 5.0 section 4.7.1).
    pub fn new(s: &str) -> Result<Self, TopicError> {
        Self::validate(s)?;
        Ok(TopicFilter(s.into()))
    }

    /// Validates raw wire bytes as a topic filter.
    pub fn from_bytes(b: &[u8]) -> Result<Self, TopicError> {
        let s = std::str::from_utf8(b).map_err(|_| TopicError::NotUtf8)?;
        Self::new(s)
    }

    /// Checks `s` without allocating.
    pub fn validate(s: &str) -> Result<(), TopicError> {
        check_common(s)?;
        let mut it = levels(s).peekable();
        while let Some(level) = it.next() {
            match level {
                "#" if it.peek().is_some() => return Err(TopicError::HashNotLast),
                "#" | "+" => {}
                other if other.bytes().any(|b| b == b'+' || b == b'#') => {
                    return Err(TopicError::WildcardNotWholeLevel)
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The filter text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The levels of the filter, classified.
    pub fn levels(&self) -> impl Iterator<Item = FilterLevel<'_>> + '_ {
        levels(&self.0).map(FilterLevel::of)
    }

    /// Whether any level is `+` or `#`; filters without one are routed by exact lookup.
    pub fn is_wildcard(&self) -> bool {
        self.levels().any(|l| !matches!(l, FilterLevel::Literal(_)))
    }

    /// Whether the filter would match `topic` (MQTT 5.0 section 4.7), checked level by level
    /// without a trie: for ACL checks and tests.
    pub fn matches(&self, topic: &str) -> bool {
        let mut f = self.levels();
        if is_dollar_topic(topic) {
            if let Some(FilterLevel::Plus | FilterLevel::Hash) = self.levels().next() {
                return false;
            }
        }
        let mut t = levels(topic);
        loop {
            match (f.next(), t.next()) {
                (Some(FilterLevel::Hash), _) => return true,
                (Some(FilterLevel::Plus), Some(_)) => {}
                (Some(FilterLevel::Literal(a)), Some(b)) if a == b => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }
}

impl std::fmt::Display for TopicFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The group name EMQX 4 gives `$queue/F` subscriptions.
pub const QUEUE_GROUP: &str = "$queue";

/// A subscription as a client writes it: an optional share group and the filter routed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subscription {
    /// `Some(G)` for `$share/G/F`, `Some("$queue")` for `$queue/F`, `None` otherwise.
    pub group: Option<Box<str>>,
    /// The filter the route table and the trie use.
    pub filter: TopicFilter,
}

impl Subscription {
    /// Parses a SUBSCRIBE topic filter: `$share/Group/Filter`, `$queue/Filter` or a plain
    /// filter. A share group is non-empty without `/`, `+` or `#` (MQTT 5.0 section 4.8.2).
    pub fn parse(s: &str) -> Result<Self, TopicError> {
        check_common(s)?;
        let (group, inner) = if let Some(rest) = s.strip_prefix("$share/") {
            let (group, inner) = rest.split_once('/').ok_or(TopicError::NoSharedFilter)?;
            if group.is_empty() || group.bytes().any(|b| b == b'+' || b == b'#') {
                return Err(TopicError::BadShareGroup);
            }
            (Some(group), inner)
        } else if let Some(inner) = s.strip_prefix("$queue/") {
            (Some(QUEUE_GROUP), inner)
        } else {
            (None, s)
        };
        if group.is_some() {
            if inner.is_empty() {
                return Err(TopicError::NoSharedFilter);
            }
            if inner.starts_with("$share/") || inner.starts_with("$queue/") {
                return Err(TopicError::NestedShare);
            }
        }
        Ok(Subscription {
            group: group.map(Into::into),
            filter: TopicFilter::new(inner)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(TopicName::new("a/b").is_ok());
        assert!(TopicName::new("/").is_ok());
        assert!(TopicName::new("a//b").is_ok());
        assert!(TopicName::new("$SYS/x").unwrap().is_dollar());
        assert_eq!(TopicName::new(""), Err(TopicError::Empty));
        assert_eq!(TopicName::new("a/+"), Err(TopicError::WildcardInName));
        assert_eq!(TopicName::new("a#"), Err(TopicError::WildcardInName));
        assert_eq!(TopicName::new("a\0b"), Err(TopicError::Nul));
        assert_eq!(TopicName::from_bytes(&[0xff]), Err(TopicError::NotUtf8));
        let long = "a".repeat(MAX_TOPIC_LEN + 1);
        assert_eq!(TopicName::new(&long), Err(TopicError::TooLong(65_536)));
        assert!(TopicName::new(&long[1..]).is_ok());
        let name = TopicName::new("/a//").unwrap();
        let levels: Vec<_> = name.levels().collect();
        assert_eq!(levels, ["", "a", "", ""]);
    }

    #[test]
    fn filters() {
        for ok in [
            "#", "+", "a/#", "+/+", "/+", "a//+/#", "+/#", "$SYS/#", "a/b",
        ] {
            assert!(TopicFilter::new(ok).is_ok(), "{ok}");
        }
        assert_eq!(TopicFilter::new("a/#/b"), Err(TopicError::HashNotLast));
        assert_eq!(TopicFilter::new("#/"), Err(TopicError::HashNotLast));
        assert_eq!(
            TopicFilter::new("a+"),
            Err(TopicError::WildcardNotWholeLevel)
        );
        assert_eq!(
            TopicFilter::new("a/b#"),
            Err(TopicError::WildcardNotWholeLevel)
        );
        assert_eq!(TopicFilter::new(""), Err(TopicError::Empty));
        assert_eq!(TopicFilter::new("a\0"), Err(TopicError::Nul));
        assert!(!TopicFilter::new("a/b").unwrap().is_wildcard());
        assert!(TopicFilter::new("a/+/b").unwrap().is_wildcard());
        let filter = TopicFilter::new("a/+//#").unwrap();
        let l: Vec<_> = filter.levels().collect();
        use FilterLevel::*;
        assert_eq!(l, [Literal("a"), Plus, Literal(""), Hash]);
    }

    #[test]
    fn filter_matches() {
        let m = |f: &str, t: &str| TopicFilter::new(f).unwrap().matches(t);
        assert!(m("a/#", "a"));
        assert!(m("a/#", "a/b/c"));
        assert!(m("+/#", "a"));
        assert!(m("+", ""));
        assert!(m("a/+", "a/"));
        assert!(m("#", "/"));
        assert!(!m("a/+", "a"));
        assert!(!m("+", "a/b"));
        assert!(!m("#", "$SYS/a"));
        assert!(!m("+/a", "$x/a"));
        assert!(m("$x/+", "$x/a"));
        assert!(m("$x/#", "$x"));
        assert!(!m("a/b", "a/b/c"));
    }

    #[test]
    fn shared() {
        let s = Subscription::parse("$share/g1/a/+").unwrap();
        assert_eq!(s.group.as_deref(), Some("g1"));
        assert_eq!(s.filter.as_str(), "a/+");
        let q = Subscription::parse("$queue/a/#").unwrap();
        assert_eq!(q.group.as_deref(), Some(QUEUE_GROUP));
        assert_eq!(q.filter.as_str(), "a/#");
        let p = Subscription::parse("a/b").unwrap();
        assert_eq!((p.group, p.filter.as_str()), (None, "a/b"));
        assert_eq!(
            Subscription::parse("$share/g1"),
            Err(TopicError::NoSharedFilter)
        );
        assert_eq!(
            Subscription::parse("$share/g1/"),
            Err(TopicError::NoSharedFilter)
        );
        assert_eq!(
            Subscription::parse("$share//a"),
            Err(TopicError::BadShareGroup)
        );
        assert_eq!(
            Subscription::parse("$share/g+/a"),
            Err(TopicError::BadShareGroup)
        );
        assert_eq!(
            Subscription::parse("$queue/"),
            Err(TopicError::NoSharedFilter)
        );
        assert_eq!(
            Subscription::parse("$share/g/$queue/a"),
            Err(TopicError::NestedShare)
        );
        assert_eq!(
            Subscription::parse("$share/g/a/#/b"),
            Err(TopicError::HashNotLast)
        );
        // `$share` alone or `$sharex/...` is an ordinary `$` filter.
        assert!(Subscription::parse("$share").unwrap().group.is_none());
        assert!(Subscription::parse("$shared/a").unwrap().group.is_none());
    }
}
