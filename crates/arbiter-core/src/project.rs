//! Projects: the unit that owns a policy, agent keys, people's roles, cases,
//! lessons, drift state, webhooks and an audit chain. Several teams share one
//! server, one project each; a single-team server uses only [`ProjectId::DEFAULT`].

use serde::{Deserialize, Serialize};
use std::fmt;

/// A project's id: 1 to 40 characters of lowercase ASCII letters, digits and
/// `-`, starting with a letter or digit (safe in URLs, headers, metric labels
/// and file names). Shared, not copied: a clone is a reference count.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProjectId(std::sync::Arc<str>);

impl ProjectId {
    /// The project that holds everything a server stored before it had projects.
    pub const DEFAULT: &'static str = "default";

    /// The default project.
    pub fn default_project() -> ProjectId {
        ProjectId(Self::DEFAULT.into())
    }

    /// A project id, checked.
    pub fn parse(id: &str) -> Result<ProjectId, String> {
        let ok_start = id.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let ok_rest = id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if id.is_empty() || id.len() > 40 || !ok_start || !ok_rest {
            return Err(format!(
                "`{id}` is not a project id: use 1 to 40 lowercase letters, digits and `-`, starting with a letter or digit"
            ));
        }
        Ok(ProjectId(id.into()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the default project.
    pub fn is_default(&self) -> bool {
        &*self.0 == Self::DEFAULT
    }

    /// The id as a shared string (what the stores' jobs carry).
    pub fn shared(&self) -> std::sync::Arc<str> {
        self.0.clone()
    }

    /// The `prev_hash` of the first event of this project's audit chain. The
    /// default project's is all zeros (the chain a server kept before it had
    /// projects); any other project's is derived from its id, so an event of
    /// one project's chain can never stand at the start of another's.
    pub fn genesis_hash(&self) -> String {
        genesis_hash(&self.0)
    }
}

/// [`ProjectId::genesis_hash`] of the project with id `id`.
pub fn genesis_hash(id: &str) -> String {
    if id == ProjectId::DEFAULT {
        return crate::audit::GENESIS_HASH.to_string();
    }
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(format!("arbiter:project:{id}").as_bytes()))
}

impl Default for ProjectId {
    fn default() -> Self {
        ProjectId::default_project()
    }
}

impl fmt::Display for ProjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for ProjectId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProjectId::parse(s)
    }
}

impl TryFrom<String> for ProjectId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        ProjectId::parse(&s)
    }
}

impl From<ProjectId> for String {
    fn from(p: ProjectId) -> String {
        p.0.to_string()
    }
}

impl AsRef<str> for ProjectId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A project as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    /// Its id.
    pub id: ProjectId,
    /// A name for people.
    pub name: String,
    /// When it was created (the default project: 0).
    pub created_at: crate::Timestamp,
    /// Who created it.
    pub created_by: String,
}

/// A person's role in a project other than their key's own: `principal`
/// (a key name) of project `home` may act in `project` as `role` with `tags`.
/// The home is part of who the person is: a key with the same name in
/// another project is someone else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The project it grants a role in.
    pub project: ProjectId,
    /// The project of the person's key.
    pub home: ProjectId,
    /// The person: their key's name in `home`.
    pub principal: String,
    /// `reviewer` or `admin` (agents act only in their own project).
    pub role: crate::Role,
    /// Reviewer role tags in `project`.
    #[serde(default)]
    pub tags: std::collections::BTreeSet<String>,
    /// When it was granted (or last changed).
    pub created_at: crate::Timestamp,
    /// Who granted it.
    pub created_by: String,
}

impl Membership {
    /// The member's id in URLs: `principal@home`.
    pub fn member_id(&self) -> String {
        format!("{}@{}", self.principal, self.home)
    }

    /// `principal@home` split (the home has no `@`, a name may).
    pub fn parse_member_id(id: &str) -> Result<(String, ProjectId), String> {
        let (name, home) =
            id.rsplit_once('@').ok_or_else(|| format!("`{id}` is not a member: write it as principal@project"))?;
        if name.is_empty() {
            return Err(format!("`{id}` names no principal"));
        }
        Ok((name.to_string(), ProjectId::parse(home)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        for ok in ["default", "soc", "support-refunds", "a", "9lives"] {
            assert_eq!(ProjectId::parse(ok).unwrap().as_str(), ok);
        }
        for bad in ["", "-x", "Soc", "a b", "a_b", "é", &"a".repeat(41)] {
            assert!(ProjectId::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(serde_json::from_str::<ProjectId>("\"NOPE\"").is_err());
    }

    #[test]
    fn member_ids_split_at_the_last_at() {
        let (name, home) = Membership::parse_member_id("ann@example.com@soc").unwrap();
        assert_eq!((name.as_str(), home.as_str()), ("ann@example.com", "soc"));
        assert!(Membership::parse_member_id("ann").is_err());
        assert!(Membership::parse_member_id("@soc").is_err());
        assert!(Membership::parse_member_id("ann@Soc").is_err());
    }

    #[test]
    fn each_project_has_its_own_genesis_and_the_default_keeps_the_old_one() {
        assert_eq!(ProjectId::default().genesis_hash(), crate::audit::GENESIS_HASH);
        let (a, b) = (ProjectId::parse("a").unwrap().genesis_hash(), ProjectId::parse("b").unwrap().genesis_hash());
        assert_ne!(a, b);
        assert_ne!(a, crate::audit::GENESIS_HASH);
        // pinned: a chain started under this rule must verify under every later build
        assert_eq!(a, "ba0ae761d480942482df9dc40e891c8ec4fd3b9891520c42dbfbbb6c7750e50e");
    }
}
