//! Authentication (password file, anonymous access) and authorization (ACL file) for MQTT
//! clients. The broker calls [`AccessControl::authenticate`] on CONNECT and
//! [`AccessControl::authorize`] before each PUBLISH is routed and each SUBSCRIBE filter is
//! granted. File formats: docs/mqtt-auth.md.
//!
//! Model: EMQX 4 (`allow_anonymous`, `acl_nomatch`, `etc/acl.conf`) with mosquitto 2's password
//! file format. There is no ACL cache: with no ACL file `authorize` is a single branch, and with
//! one, rules are checked in order without allocating, which for the few rules such files hold
//! costs less than a cache lookup would.

pub mod acl;
pub mod cidr;
pub mod cli;
mod hook;
pub mod passwd;
pub mod reload;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use thiserror::Error;

use super::codec::ReasonCode;
pub use acl::{Access, Acl, AclError};
pub use passwd::{Credential, PasswdError, PasswordFile};

/// Who a connected client is, as the ACL sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Client identifier (the assigned one when the client sent none).
    pub client_id: Arc<str>,
    /// User name from CONNECT, if any.
    pub username: Option<Arc<str>>,
    /// Peer address.
    pub peer: SocketAddr,
    /// True when the client was let in without a checked password.
    pub anonymous: bool,
}

/// What a client wants to do with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// PUBLISH to a topic name.
    Publish,
    /// SUBSCRIBE to a topic filter.
    Subscribe,
}

/// The broker's view of auth: one call per CONNECT, one per PUBLISH / SUBSCRIBE filter.
pub trait AccessControl: Send + Sync {
    /// Checks CONNECT credentials. `Err` carries the CONNACK reason: `BadUserNameOrPassword`
    /// (0x86; 3.1.1 return code 4) or `NotAuthorized` (0x87; return code 5).
    fn authenticate(
        &self,
        client_id: &str,
        username: Option<&str>,
        password: Option<&[u8]>,
        peer: SocketAddr,
    ) -> Result<Identity, ReasonCode>;

    /// Whether `identity` may do `action` on `topic` (a topic name for publish, the filter as
    /// subscribed, without a `$share/G/` prefix, for subscribe).
    fn authorize(&self, identity: &Identity, action: Action, topic: &str) -> bool;
}

/// Auth settings, as a `[mqtt.auth]`-style config section would give them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// Password file (mosquitto format); `None`: no user can log in with a password.
    pub password_file: Option<PathBuf>,
    /// ACL file; `None`: every action gets `acl_nomatch`.
    pub acl_file: Option<PathBuf>,
    /// Let clients without a user name in (EMQX 4 default: true; mosquitto 2: false).
    pub allow_anonymous: bool,
    /// Decision when no ACL rule matches (EMQX 4 `acl_nomatch`, default allow).
    pub acl_nomatch: Access,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            password_file: None,
            acl_file: None,
            allow_anonymous: true,
            acl_nomatch: Access::Allow,
        }
    }
}

/// Why auth configuration could not be loaded.
#[derive(Debug, Error)]
pub enum AuthError {
    /// The password file.
    #[error("password file: {0}")]
    Passwd(#[from] PasswdError),
    /// The ACL file.
    #[error("ACL file: {0}")]
    Acl(#[from] AclError),
}

/// [`AccessControl`] from files: what `beamq start` uses.
#[derive(Debug, Clone)]
pub struct FileAccess {
    passwords: Option<PasswordFile>,
    acl: Option<Acl>,
    allow_anonymous: bool,
    nomatch: Access,
    /// Verified against for unknown users, so that an unknown user costs as much time as a
    /// wrong password and user names cannot be probed by timing.
    decoy: Option<Credential>,
}

impl FileAccess {
    /// Loads the files `config` names.
    pub fn load(config: &AuthConfig) -> Result<FileAccess, AuthError> {
        let passwords = match &config.password_file {
            Some(p) => Some(PasswordFile::load(p)?),
            None => None,
        };
        let acl = match &config.acl_file {
            Some(p) => Some(Acl::load(p, config.acl_nomatch)?),
            None => None,
        };
        Ok(FileAccess::new(
            passwords,
            acl,
            config.allow_anonymous,
            config.acl_nomatch,
        ))
    }

    /// From already parsed parts.
    pub fn new(
        passwords: Option<PasswordFile>,
        acl: Option<Acl>,
        allow_anonymous: bool,
        nomatch: Access,
    ) -> FileAccess {
        let decoy = passwords.as_ref().and_then(|p| {
            let iterations = p.users().find_map(|u| match p.get(u) {
                Some(Credential::Pbkdf2Sha512 { iterations, .. }) => Some(*iterations),
                _ => None,
            })?;
            Credential::hash(b"decoy", iterations).ok()
        });
        FileAccess {
            passwords,
            acl,
            allow_anonymous,
            nomatch,
            decoy,
        }
    }

    /// Everyone in, everything allowed: the broker's default with no auth configured.
    pub fn allow_all() -> FileAccess {
        FileAccess::new(None, None, true, Access::Allow)
    }
}

impl AccessControl for FileAccess {
    fn authenticate(
        &self,
        client_id: &str,
        username: Option<&str>,
        password: Option<&[u8]>,
        peer: SocketAddr,
    ) -> Result<Identity, ReasonCode> {
        let identity = |anonymous| Identity {
            client_id: client_id.into(),
            username: username.map(Arc::from),
            peer,
            anonymous,
        };
        let Some(user) = username else {
            return if self.allow_anonymous {
                Ok(identity(true))
            } else {
                tracing::info!(%peer, client_id, "anonymous client refused");
                Err(ReasonCode::NotAuthorized)
            };
        };
        let Some(passwords) = &self.passwords else {
            // No password file: a user name is only a label (EMQX with no auth plugin).
            return if self.allow_anonymous {
                Ok(identity(true))
            } else {
                Err(ReasonCode::NotAuthorized)
            };
        };
        let password = password.unwrap_or_default();
        let ok = match passwords.get(user) {
            Some(cred) => cred.verify(password),
            None => {
                if let Some(d) = &self.decoy {
                    d.verify(password);
                }
                false
            }
        };
        if ok {
            Ok(identity(false))
        } else {
            tracing::info!(%peer, client_id, user, "bad user name or password");
            Err(ReasonCode::BadUserNameOrPassword)
        }
    }

    fn authorize(&self, identity: &Identity, action: Action, topic: &str) -> bool {
        let access = match &self.acl {
            None => self.nomatch,
            Some(acl) => acl.check(identity, action, topic),
        };
        access == Access::Allow
    }
}
