//! Password and ACL files re-read while the broker runs, as mosquitto re-reads them on SIGHUP:
//! an operator adds a user with `beamq passwd` or edits the ACL and signals the node. A file
//! that no longer parses leaves the previous rules in force (the error is returned and logged),
//! so a typo never opens or closes the broker by accident. Connected clients keep their
//! sessions; new CONNECTs and every later PUBLISH/SUBSCRIBE check use the new rules.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;

use super::{AuthConfig, AuthError, FileAccess};
use crate::mqtt::codec::ReasonCode;
use crate::mqtt::session::{Access, AuthHook, ClientInfo};

/// No ACL file: every check answers the configured default (kept outside the lock so the
/// publish path reads one shared, never-written word instead of taking a lock).
const ACL_NONE_ALLOW: u8 = 0;
const ACL_NONE_DENY: u8 = 1;
/// An ACL file: checks take the read lock.
const ACL_RULES: u8 = 2;

/// [`FileAccess`] behind a lock, replaced whole by [`ReloadableAccess::reload`].
#[derive(Debug)]
pub struct ReloadableAccess {
    config: AuthConfig,
    current: RwLock<Arc<FileAccess>>,
    acl_mode: AtomicU8,
}

fn acl_mode(a: &FileAccess) -> u8 {
    match (&a.acl, a.nomatch) {
        (Some(_), _) => ACL_RULES,
        (None, super::Access::Allow) => ACL_NONE_ALLOW,
        (None, super::Access::Deny) => ACL_NONE_DENY,
    }
}

impl ReloadableAccess {
    /// Loads the files `config` names.
    pub fn load(config: AuthConfig) -> Result<ReloadableAccess, AuthError> {
        let access = FileAccess::load(&config)?;
        Ok(ReloadableAccess {
            config,
            acl_mode: AtomicU8::new(acl_mode(&access)),
            current: RwLock::new(Arc::new(access)),
        })
    }

    /// Re-reads the files; on error the rules in force stay.
    pub fn reload(&self) -> Result<(), AuthError> {
        let access = Arc::new(FileAccess::load(&self.config)?);
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        self.acl_mode.store(acl_mode(&access), Ordering::Release);
        *current = access;
        Ok(())
    }

    fn get(&self) -> Arc<FileAccess> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl AuthHook for ReloadableAccess {
    fn authenticate(
        &self,
        client: &ClientInfo,
        password: Option<&Bytes>,
    ) -> Result<(), ReasonCode> {
        AuthHook::authenticate(&*self.get(), client, password)
    }

    fn authorize(&self, client: &ClientInfo, access: Access, topic: &str) -> bool {
        match self.acl_mode.load(Ordering::Acquire) {
            ACL_NONE_ALLOW => true,
            ACL_NONE_DENY => false,
            _ => {
                let current = self.current.read().unwrap_or_else(|e| e.into_inner());
                AuthHook::authorize(&**current, client, access, topic)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::codec::{MqttString, ProtocolVersion};

    fn client() -> ClientInfo {
        ClientInfo {
            client_id: MqttString::try_from("c").unwrap(),
            username: None,
            peer: None,
            protocol: ProtocolVersion::V5,
        }
    }

    #[test]
    fn reload_takes_new_rules_and_keeps_old_ones_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let acl = dir.path().join("acl.conf");
        std::fs::write(&acl, "allow all publish a/#\ndeny all\n").unwrap();
        let r = ReloadableAccess::load(AuthConfig {
            acl_file: Some(acl.clone()),
            ..AuthConfig::default()
        })
        .unwrap();
        assert!(r.authorize(&client(), Access::Publish, "a/1"));
        assert!(!r.authorize(&client(), Access::Publish, "b/1"));
        std::fs::write(&acl, "allow all publish b/#\ndeny all\n").unwrap();
        r.reload().unwrap();
        assert!(!r.authorize(&client(), Access::Publish, "a/1"));
        assert!(r.authorize(&client(), Access::Publish, "b/1"));
        std::fs::write(&acl, "permit everyone\n").unwrap();
        assert!(r.reload().is_err());
        assert!(r.authorize(&client(), Access::Publish, "b/1"));
        // No ACL file: acl_nomatch (deny here) for everything, without the lock.
        let r = ReloadableAccess::load(AuthConfig {
            acl_nomatch: crate::mqtt::auth::Access::Deny,
            ..AuthConfig::default()
        })
        .unwrap();
        assert!(!r.authorize(&client(), Access::Subscribe, "x"));
        assert!(r.reload().is_ok());
    }
}
