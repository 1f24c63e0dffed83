//! The ACL file: rules checked top to bottom, the first whose client and action and topic match
//! decides; none matching gives the configured default. Semantics of EMQX 4's `etc/acl.conf`
//! and `src/emqx_access_rule.erl`, in a one-rule-per-line format (see docs/mqtt-auth.md):
//!
//! ```text
//! allow  user:dashboard          subscribe  $SYS/#
//! allow  ip:127.0.0.1            pubsub     $SYS/#  #
//! allow  client:sensor-1         publish    sensors/%c/#
//! deny   all                     subscribe  $SYS/#  eq:#
//! allow  user:alice,ip:10.0.0.0/8 pubsub    home/%u/#
//! allow  all
//! ```
//!
//! A topic level `%u` / `%c` stands for the client's user name / client id (a whole level, as
//! EMQX's `feed_var/3`; with no user name `%u` stays literal and so matches nothing real).
//! `eq:F` matches the topic `F` literally (EMQX `{eq, F}`: `eq:#` refuses subscribing to `#`
//! without refusing `a/#`). A subscribed filter is matched as EMQX's `emqx_topic:match/2` does:
//! its wildcards are plain levels that only a rule's `+` or `#` covers. Topics starting with `$`
//! are not matched by a rule topic starting with a wildcard.

use std::path::Path;

use thiserror::Error;

use super::cidr::Cidr;
use super::{Action, Identity};
use crate::router::topic::{is_dollar_topic, levels, FilterLevel, TopicFilter};

/// allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Let the client do it.
    Allow,
    /// Refuse it.
    Deny,
}

/// Which actions a rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleAction {
    /// PUBLISH only.
    Publish,
    /// SUBSCRIBE only.
    Subscribe,
    /// Both.
    PubSub,
}

impl RuleAction {
    fn covers(self, a: Action) -> bool {
        matches!(
            (self, a),
            (RuleAction::PubSub, _)
                | (RuleAction::Publish, Action::Publish)
                | (RuleAction::Subscribe, Action::Subscribe)
        )
    }
}

/// One condition on the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// Everyone.
    All,
    /// This user name.
    User(Box<str>),
    /// This client id.
    Client(Box<str>),
    /// A peer address in this range.
    Ip(Cidr),
}

impl Who {
    fn matches(&self, id: &Identity) -> bool {
        match self {
            Who::All => true,
            Who::User(u) => id.username.as_deref() == Some(&**u),
            Who::Client(c) => *id.client_id == **c,
            Who::Ip(net) => net.contains(id.peer.ip()),
        }
    }
}

/// A rule topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleTopic {
    /// A filter, possibly with `%u` / `%c` levels.
    Filter(TopicFilter),
    /// `eq:T`: this exact string.
    Eq(Box<str>),
}

impl RuleTopic {
    fn matches(&self, id: &Identity, topic: &str) -> bool {
        match self {
            RuleTopic::Eq(t) => **t == *topic,
            RuleTopic::Filter(f) => filter_matches(f, id, topic),
        }
    }
}

/// `emqx_topic:match(Topic, Filter)` with `%u`/`%c` fed from `id`, without allocating.
fn filter_matches(filter: &TopicFilter, id: &Identity, topic: &str) -> bool {
    let mut f = filter.levels();
    if is_dollar_topic(topic) {
        if let Some(FilterLevel::Plus | FilterLevel::Hash) = filter.levels().next() {
            return false;
        }
    }
    let mut t = levels(topic);
    loop {
        match (f.next(), t.next()) {
            (Some(FilterLevel::Hash), _) => return true,
            (Some(FilterLevel::Plus), Some(_)) => {}
            (Some(FilterLevel::Literal(l)), Some(level)) => {
                let want = match l {
                    "%u" => id.username.as_deref().unwrap_or("%u"),
                    "%c" => &id.client_id,
                    l => l,
                };
                if want != level {
                    return false;
                }
            }
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// One line of the ACL file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// What a match decides.
    pub access: Access,
    /// Conditions that must all hold (EMQX `{'and', [...]}`).
    pub who: Vec<Who>,
    /// Actions covered.
    pub action: RuleAction,
    /// Topics; any one matching is enough. Empty for the catch-all `allow all` / `deny all`.
    pub topics: Vec<RuleTopic>,
    /// True for the two-word catch-all form.
    pub catch_all: bool,
}

impl Rule {
    /// `Some(access)` if this rule decides for (`id`, `action`, `topic`).
    pub fn check(&self, id: &Identity, action: Action, topic: &str) -> Option<Access> {
        if self.catch_all {
            return Some(self.access);
        }
        let hit = self.action.covers(action)
            && self.who.iter().all(|w| w.matches(id))
            && self.topics.iter().any(|t| t.matches(id, topic));
        hit.then_some(self.access)
    }
}

/// Why an ACL file was refused.
#[derive(Debug, Error)]
pub enum AclError {
    /// Reading failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A line is not a rule.
    #[error("line {line}: {why}")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// What is wrong.
        why: String,
    },
}

/// A parsed ACL file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    rules: Vec<Rule>,
    nomatch: Access,
}

impl Acl {
    /// Parses file text; `nomatch` decides when no rule matches.
    pub fn parse(text: &str, nomatch: Access) -> Result<Acl, AclError> {
        let mut rules = Vec::new();
        for (i, line) in text.lines().enumerate() {
            // Comments are whole lines: `#` is also a topic, so no trailing comments.
            if line.trim_start().starts_with('#') {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.is_empty() {
                continue;
            }
            let rule = parse_rule(&words).map_err(|why| AclError::Syntax { line: i + 1, why })?;
            rules.push(rule);
        }
        Ok(Acl { rules, nomatch })
    }

    /// Reads and parses `path`.
    pub fn load(path: &Path, nomatch: Access) -> Result<Acl, AclError> {
        let text = std::fs::read_to_string(path).map_err(|source| AclError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Acl::parse(&text, nomatch)
    }

    /// First match wins; else the default.
    pub fn check(&self, id: &Identity, action: Action, topic: &str) -> Access {
        self.rules
            .iter()
            .find_map(|r| r.check(id, action, topic))
            .unwrap_or(self.nomatch)
    }

    /// The rules in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}

fn parse_who(s: &str) -> Result<Vec<Who>, String> {
    if s == "all" {
        return Ok(vec![Who::All]);
    }
    s.split(',')
        .map(|part| {
            let (kind, value) = part.split_once(':').ok_or_else(|| {
                format!("expected all, user:U, client:C or ip:CIDR, got {part:?}")
            })?;
            if value.is_empty() {
                return Err(format!("empty value in {part:?}"));
            }
            match kind {
                "user" => Ok(Who::User(value.into())),
                "client" => Ok(Who::Client(value.into())),
                "ip" => value
                    .parse::<Cidr>()
                    .map(Who::Ip)
                    .map_err(|e| format!("{e} in {part:?}")),
                _ => Err(format!("unknown condition {kind:?}")),
            }
        })
        .collect()
}

fn parse_topic(s: &str) -> Result<RuleTopic, String> {
    if let Some(exact) = s.strip_prefix("eq:") {
        TopicFilter::validate(exact).map_err(|e| format!("topic {exact:?}: {e}"))?;
        return Ok(RuleTopic::Eq(exact.into()));
    }
    TopicFilter::new(s)
        .map(RuleTopic::Filter)
        .map_err(|e| format!("topic {s:?}: {e}"))
}

fn parse_rule(words: &[&str]) -> Result<Rule, String> {
    let access = match words[0] {
        "allow" => Access::Allow,
        "deny" => Access::Deny,
        w => return Err(format!("expected allow or deny, got {w:?}")),
    };
    if words.len() == 2 && words[1] == "all" {
        return Ok(Rule {
            access,
            who: vec![Who::All],
            action: RuleAction::PubSub,
            topics: Vec::new(),
            catch_all: true,
        });
    }
    let [_, who, action, topics @ ..] = words else {
        return Err("expected: allow|deny WHO ACTION TOPIC... or allow|deny all".into());
    };
    if topics.is_empty() {
        return Err("a rule needs at least one topic".into());
    }
    let action = match *action {
        "publish" => RuleAction::Publish,
        "subscribe" => RuleAction::Subscribe,
        "pubsub" | "all" => RuleAction::PubSub,
        a => return Err(format!("expected publish, subscribe or pubsub, got {a:?}")),
    };
    Ok(Rule {
        access,
        who: parse_who(who)?,
        action,
        topics: topics
            .iter()
            .map(|t| parse_topic(t))
            .collect::<Result<_, _>>()?,
        catch_all: false,
    })
}
