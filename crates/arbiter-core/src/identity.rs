//! People signed in through single sign-on: who they are, the roles their
//! identity provider's groups give them in each project, and the people
//! directory that other channels (Slack) act through.
//!
//! A person is one principal however they reach Arbiter: the same `name` in
//! the console, in Slack and on the keys they create for themselves, so
//! separation of duties and "distinct approvers" count people, not
//! credentials.

use crate::key::{Principal, Role};
use crate::project::ProjectId;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A role in one project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The project.
    pub project: ProjectId,
    /// The role there.
    pub role: Role,
    /// Reviewer role tags there.
    #[serde(default)]
    pub tags: BTreeSet<String>,
}

/// Which role members of an identity provider group get.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRule {
    /// The group's name as the provider sends it in the groups claim.
    pub group: String,
    /// The role its members get.
    pub role: Role,
    /// The reviewer role tags they get.
    #[serde(default)]
    pub tags: BTreeSet<String>,
    /// The project the role is in (the default project unless named).
    #[serde(default)]
    pub project: ProjectId,
}

impl GroupRule {
    /// Parse the flag form `GROUP=ROLE[:TAG+TAG][@PROJECT]`, e.g.
    /// `soc-analysts=reviewer:soc_analyst+triage@default`.
    pub fn parse(s: &str) -> Result<GroupRule, String> {
        let usage = "write it as GROUP=ROLE[:TAG+TAG][@PROJECT], e.g. soc-analysts=reviewer:soc_analyst@default";
        let (group, rest) = s.split_once('=').ok_or_else(|| format!("`{s}`: {usage}"))?;
        let (rest, project) = match rest.rsplit_once('@') {
            Some((r, p)) => (r, ProjectId::parse(p).map_err(|e| format!("`{s}`: {e}"))?),
            None => (rest, ProjectId::default_project()),
        };
        let (role, tags) = rest.split_once(':').unwrap_or((rest, ""));
        let role: Role = role.parse().map_err(|e| format!("`{s}`: {e}"))?;
        if role == Role::Agent {
            return Err(format!("`{s}`: a group maps people to `reviewer` or `admin`; agents use API keys"));
        }
        let group = group.trim();
        if group.is_empty() {
            return Err(format!("`{s}`: the group name is empty; {usage}"));
        }
        let tags = tags.split('+').map(str::trim).filter(|t| !t.is_empty()).map(str::to_string).collect();
        Ok(GroupRule { group: group.to_string(), role, tags, project })
    }
}

/// The roles the groups `groups` give, one grant per project: the highest
/// role of the rules that match, and the union of their tags. Empty when no
/// group maps to anything (such a person cannot sign in).
pub fn grants_for(groups: &[String], rules: &[GroupRule]) -> Vec<Grant> {
    let mut out: Vec<Grant> = Vec::new();
    for rule in rules.iter().filter(|r| groups.iter().any(|g| g == &r.group)) {
        match out.iter_mut().find(|g| g.project == rule.project) {
            Some(g) => {
                if rule.role == Role::Admin {
                    g.role = Role::Admin;
                }
                g.tags.extend(rule.tags.iter().cloned());
            }
            None => out.push(Grant { project: rule.project.clone(), role: rule.role, tags: rule.tags.clone() }),
        }
    }
    out.sort_by(|a, b| {
        (!a.project.is_default(), a.project.as_str()).cmp(&(!b.project.is_default(), b.project.as_str()))
    });
    out
}

/// Who a signed-in person is, as their identity provider said at sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The principal's name (the configured claim: `sub`, or the email).
    pub name: String,
    /// Their verified email, when the provider sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Their roles, by project (default project first).
    pub grants: Vec<Grant>,
    /// The ID token of the sign-in (the hint of a later sign-out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl Identity {
    /// The id that stands for this person where a key id is recorded (claims,
    /// answers): `sso:<name>`, one per person.
    pub fn key_id(&self) -> String {
        format!("sso:{}", self.name)
    }

    /// The project a sign-in starts in: the default project when they have a
    /// role there, else their first.
    pub fn home(&self) -> Option<&ProjectId> {
        self.grants.first().map(|g| &g.project)
    }

    /// This person acting in `project`, if they have a role there (an admin
    /// of the default project is a server admin: admin in every project).
    pub fn principal_in(&self, project: &ProjectId) -> Option<Principal> {
        let grant = self.grants.iter().find(|g| &g.project == project);
        let server_admin = self.grants.iter().any(|g| g.project.is_default() && g.role == Role::Admin);
        let (role, tags) = match grant {
            Some(g) => (g.role, g.tags.clone()),
            None if server_admin => (Role::Admin, BTreeSet::new()),
            None => return None,
        };
        Some(Principal {
            key_id: self.key_id(),
            name: self.name.clone(),
            role,
            tags,
            rate_limit: None,
            project: project.clone(),
        })
    }

    /// Whether this person administers the whole server.
    pub fn is_server_admin(&self) -> bool {
        self.grants.iter().any(|g| g.project.is_default() && g.role == Role::Admin)
    }
}

/// A person in the directory (server-wide): kept up to date at each sign-in,
/// and linked to their chat account so they can answer cases there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// The principal's name.
    pub name: String,
    /// Their roles as of their last sign-in (none for a person known only by
    /// their API keys and a chat link).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// When they last signed in by single sign-on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_in_at: Option<Timestamp>,
    /// Their Slack user id (`U…`), once linked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack_user: Option<String>,
}

impl Person {
    /// The person as served to others: never the ID token of their sign-in.
    pub fn without_id_token(mut self) -> Person {
        if let Some(i) = &mut self.identity {
            i.id_token = None;
        }
        self
    }
}

/// Check a Slack member id (`U0123ABCD`, or `W…` in Enterprise Grid) as an
/// admin gives it: what is wrong when it is a name, an email or anything else.
pub fn check_slack_member_id(u: &str) -> Result<(), String> {
    if !u.is_empty() && u.len() <= 32 && u.starts_with(['U', 'W']) && u.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(format!(
            "`{u}` is not a Slack member id: copy it from the person's Slack profile (⋮ → Copy member ID), e.g. \
             U0123ABCD; not a name or an email"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ProjectId {
        ProjectId::parse(s).unwrap()
    }

    #[test]
    fn slack_member_ids_are_checked() {
        assert!(check_slack_member_id("U0123ABCD").is_ok() && check_slack_member_id("W0123").is_ok());
        for bad in ["", "@alice", "alice@example.com", "u0123", "U01 23", &"U".repeat(33)] {
            assert!(check_slack_member_id(bad).unwrap_err().contains("not a Slack member id"), "{bad}");
        }
    }

    #[test]
    fn group_rules_parse_from_flags() {
        let r = GroupRule::parse("soc-analysts=reviewer:soc_analyst+triage@support").unwrap();
        assert_eq!(r.group, "soc-analysts");
        assert_eq!(r.role, Role::Reviewer);
        assert_eq!(r.tags.iter().map(String::as_str).collect::<Vec<_>>(), ["soc_analyst", "triage"]);
        assert_eq!(r.project, p("support"));
        let r = GroupRule::parse("arbiter-admins=admin").unwrap();
        assert_eq!((r.role, r.tags.len(), r.project.is_default()), (Role::Admin, 0, true));
        assert!(GroupRule::parse("bots=agent").unwrap_err().contains("agents use API keys"));
        assert!(GroupRule::parse("nogroup").unwrap_err().contains("GROUP=ROLE"));
        assert!(GroupRule::parse("g=boss").unwrap_err().contains("unknown role"));
    }

    #[test]
    fn groups_merge_into_one_grant_per_project() {
        let rules: Vec<GroupRule> =
            ["soc=reviewer:soc_analyst", "leads=reviewer:soc_lead", "ops=admin@support", "x=admin@other"]
                .iter()
                .map(|s| GroupRule::parse(s).unwrap())
                .collect();
        let g = grants_for(&["ops".into(), "soc".into(), "leads".into()], &rules);
        assert_eq!(g.len(), 2);
        assert!(g[0].project.is_default(), "the default project first");
        assert_eq!(g[0].tags.len(), 2);
        assert_eq!((g[1].project.as_str(), g[1].role), ("support", Role::Admin));
        assert!(grants_for(&["unmapped".into()], &rules).is_empty());
        let id = Identity { name: "alice".into(), email: None, grants: g, id_token: None };
        let who = id.principal_in(&ProjectId::default_project()).unwrap();
        assert_eq!((who.key_id.as_str(), who.role), ("sso:alice", Role::Reviewer));
        assert!(id.principal_in(&p("other")).is_none(), "no role there");
        assert!(!id.is_server_admin());
        let admin =
            Identity { grants: grants_for(&["x".into()], &[GroupRule::parse("x=admin").unwrap()]), ..id.clone() };
        assert_eq!(admin.principal_in(&p("other")).unwrap().role, Role::Admin, "a server admin acts anywhere");
    }
}
