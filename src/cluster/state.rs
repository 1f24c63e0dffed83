//! Cluster membership as stored in the data directory (`cluster.json`): the members this node
//! knows, itself included. Loaded at boot so a restarted member reconnects to its cluster, as
//! ekka keeps the member list in mnesia's schema (`ekka_mnesia:cluster_nodes/1`).
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file name under `--data-dir`.
pub const FILE_NAME: &str = "cluster.json";
/// Largest membership file read (a few hundred node names fit easily).
const MAX_FILE_LEN: u64 = 1 << 20;

/// The persisted membership.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// Node names of every member, this node included.
    pub members: BTreeSet<String>,
    /// True once another member removed this node with `force-leave`: it stays alone until
    /// an explicit `join`.
    #[serde(default)]
    pub force_left: bool,
}

/// Why the membership file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// I/O on the file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid membership JSON.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: String,
        /// Why.
        source: serde_json::Error,
    },
    /// The file is larger than any membership file.
    #[error("{0}: file too large")]
    TooLarge(String),
}

/// The membership file of a data directory.
pub fn path_in(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

impl Membership {
    /// A node standing alone.
    pub fn alone(me: &str) -> Membership {
        Membership {
            members: [me.to_string()].into_iter().collect(),
            force_left: false,
        }
    }

    /// Reads the file; a missing file means standing alone. `me` is always a member.
    pub fn load(path: &Path, me: &str) -> Result<Membership, StateError> {
        let io = |source| StateError::Io {
            path: path.display().to_string(),
            source,
        };
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Membership::alone(me)),
            Err(e) => return Err(io(e)),
        };
        if meta.len() > MAX_FILE_LEN {
            return Err(StateError::TooLarge(path.display().to_string()));
        }
        let bytes = std::fs::read(path).map_err(io)?;
        let mut m: Membership =
            serde_json::from_slice(&bytes).map_err(|source| StateError::Json {
                path: path.display().to_string(),
                source,
            })?;
        m.members.insert(me.to_string());
        Ok(m)
    }

    /// Writes the file atomically (temporary file, then rename).
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let io = |source| StateError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let json = serde_json::to_vec_pretty(self).map_err(|source| StateError::Json {
            path: path.display().to_string(),
            source,
        })?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, json).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_missing_file() {
        let dir = std::env::temp_dir().join(format!("beamq_cluster_state_{}", std::process::id()));
        let p = path_in(&dir);
        let _ = std::fs::remove_file(&p);
        assert_eq!(
            Membership::load(&p, "a@h").unwrap(),
            Membership::alone("a@h")
        );
        let mut m = Membership::alone("a@h");
        m.members.insert("b@h".into());
        m.force_left = true;
        m.save(&p).unwrap();
        assert_eq!(Membership::load(&p, "a@h").unwrap(), m);
        std::fs::write(&p, b"{not json").unwrap();
        assert!(Membership::load(&p, "a@h").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
