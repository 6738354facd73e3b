//! People signed in by single sign-on, in the server: a session carries the
//! roles their groups gave them, per project; they act in the console as
//! themselves, and "distinct approvers" count them as one person with their
//! API key of the same name; a session ends with its lifetime. (Signing in
//! through a real provider, and each refusal of a bad token, is the browser
//! test's job: tests/browser/sso.test.js.)

use crate::support::*;
use arbiter_core::{Grant, Identity, Role};
use serde_json::json;
use std::time::Duration;

fn grant(project: &str, role: Role, tags: &[&str]) -> Grant {
    Grant {
        project: arbiter_core::ProjectId::parse(project).unwrap(),
        role,
        tags: tags.iter().map(|t| t.to_string()).collect(),
    }
}

/// A person as their identity provider's groups made them: one grant.
fn person(name: &str, project: &str, role: Role, tags: &[&str]) -> Identity {
    Identity { name: name.into(), email: None, grants: vec![grant(project, role, tags)], id_token: None }
}

/// An HTTP client that shows redirects instead of following them.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// A console cookie for a stored single sign-on session of `identity`.
async fn signed_in(s: &TestServer, id: &str, identity: Identity) -> String {
    let now = s.state.clock.now();
    s.state
        .root
        .create_session(arbiter_store::ConsoleSession {
            id: id.into(),
            key_id: String::new(),
            created_at: now,
            expires_at: now.plus_millis(s.state.config.session_lifetime.as_millis() as i64),
            revoked_at: None,
            identity: Some(identity),
        })
        .await
        .unwrap();
    let secret = s.state.console_secret().await.unwrap();
    format!("{}={}", arbiter_server::console::COOKIE, arbiter_server::console::session_value(&secret, id))
}

fn csrf(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a form with its CSRF token") + 19;
    html[at..at + 32].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_is_one_approver_whether_by_session_or_by_key() {
    let s = TestServer::with(POLICY, |c| c.session_lifetime = Duration::from_secs(3600)).await;
    let agent = s.key("soc-agent", "agent", &[]).await;
    // alice's key (made before SSO, say) and alice signed in by SSO are one person
    let alice_key = s.key("alice", "reviewer", &["soc_analyst"]).await;
    let bob = s.key("bob", "reviewer", &["soc_analyst"]).await;
    let alice = Identity {
        name: "alice".into(),
        email: Some("alice@example.com".into()),
        grants: vec![grant("default", Role::Reviewer, &["soc_analyst"])],
        id_token: None,
    };
    let cookie = signed_in(&s, "sso-alice", alice).await;
    let http = no_redirects();
    let (did, case) = s.escalate(&agent, isolate("db-1", &["crown_jewel"], 0.9)).await;

    let page = http.get(s.at(&format!("/cases/{case}"))).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("alice"), "signed in as alice");
    let r = http
        .post(s.at(&format!("/cases/{case}/act")))
        .header("cookie", &cookie)
        .form(&[
            ("op", "decide"),
            ("decision", "approve"),
            ("rationale", "the crown jewel is infected; isolate it"),
            ("csrf", csrf(&html).as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert!(r.headers()["location"].to_str().unwrap().contains("another%20reviewer"), "{:?}", r.headers());
    // alice's key is alice: not a second approver
    let (code, body) = s
        .post(
            &alice_key,
            &format!("/v1/cases/{case}/decision"),
            json!({"decision": "approve", "rationale": "me again, by key"}),
        )
        .await;
    assert_eq!(code, 409, "{body}");
    let (code, body) = s
        .post(
            &bob,
            &format!("/v1/cases/{case}/decision"),
            json!({"decision": "approve", "rationale": "agreed, isolate it"}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let (_, d) = s.get(&agent, &format!("/v1/decisions/{did}")).await;
    assert_eq!(d["final"]["decided_by"], json!(["alice", "bob"]));
    // the audit log names the person, and the chain verifies
    let (_, events) = s.get(&s.admin, "/v1/audit/events?after=0&limit=200").await;
    let answered: Vec<&serde_json::Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "case.answered" && e["case_id"] == case.as_str())
        .collect();
    assert_eq!(answered.first().map(|e| e["actor"].as_str()), Some(Some("alice")), "{answered:?}");
    let (code, v) = s.get(&s.admin, "/v1/audit/verify").await;
    assert_eq!((code, v["ok"].as_bool()), (200, Some(true)), "{v}");

    // the session ends with its lifetime: the roles given at sign-in do not outlive it
    s.advance(Duration::from_secs(3601));
    let r = http.get(s.at("/queue")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert!(r.headers()["location"].to_str().unwrap().starts_with("/login"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_switches_only_to_the_projects_their_groups_give() {
    let s = TestServer::start().await;
    for p in ["team-b", "team-c"] {
        let (code, body) = s.post(&s.admin, "/v1/projects", json!({"id": p, "name": p})).await;
        assert_eq!(code, 201, "{body}");
    }
    let carol = person("carol", "team-b", Role::Reviewer, &["support"]);
    let cookie = signed_in(&s, "sso-carol", carol).await;
    let http = no_redirects();
    // no role in the default project: carol starts in team-b
    let queue = http.get(s.at("/queue")).header("cookie", &cookie).send().await.unwrap().text().await.unwrap();
    assert!(queue.contains("team-b") && queue.contains("carol"), "{queue}");
    let r = http
        .post(s.at("/project"))
        .header("cookie", &cookie)
        .form(&[("project", "team-c"), ("csrf", csrf(&queue).as_str())])
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("set-cookie").is_none(), "no switch to a project without a role");
    // a forged project cookie changes nothing: the page is team-b's
    let forged = format!("{cookie}; arbiter_project=default");
    let page = http.get(s.at("/queue")).header("cookie", &forged).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("team-b"), "{page}");
    // a person with no role anywhere has no console
    let nobody = Identity { name: "dave".into(), email: None, grants: vec![], id_token: None };
    let cookie = signed_in(&s, "sso-dave", nobody).await;
    let r = http.get(s.at("/queue")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
}

#[test]
fn single_sign_on_settings_that_cannot_work_are_refused() {
    let sso = sso_config(false);
    let e = arbiter_server::Config { sso: Some(sso.clone()), ..Default::default() }.validated().unwrap_err();
    assert_eq!(e.setting, "public_url");
    let e = arbiter_server::Config {
        sso: Some(arbiter_server::SsoConfig { groups: vec![], ..sso.clone() }),
        public_url: Some("https://arbiter.example.com".into()),
        ..Default::default()
    }
    .validated()
    .unwrap_err();
    assert_eq!(e.setting, "sso_groups");
    let e = arbiter_server::Config { key_sign_in: false, ..Default::default() }.validated().unwrap_err();
    assert_eq!(e.setting, "key_sign_in");
    assert!(
        arbiter_server::Config {
            sso: Some(sso),
            key_sign_in: false,
            public_url: Some("https://arbiter.example.com".into()),
            ..Default::default()
        }
        .validated()
        .is_ok()
    );
}

fn sso_config(self_keys: bool) -> arbiter_server::SsoConfig {
    arbiter_server::SsoConfig {
        issuer: "https://idp.example.com".into(),
        client_id: "arbiter".into(),
        client_secret: None,
        scopes: vec![],
        name_claim: "sub".into(),
        groups_claim: "groups".into(),
        groups: vec![arbiter_core::GroupRule::parse("soc=reviewer:soc_analyst").unwrap()],
        max_skew: Duration::from_secs(60),
        label: "SSO".into(),
        self_keys,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_creates_a_key_of_their_own_that_is_them_and_expires_with_a_session() {
    let s = TestServer::with(POLICY, |c| {
        c.public_url = Some("https://arbiter.example.com".into());
        c.sso = Some(sso_config(true));
        c.session_lifetime = Duration::from_secs(3600);
    })
    .await;
    let agent = s.key("soc-agent", "agent", &[]).await;
    let bob = s.key("bob", "reviewer", &["soc_analyst"]).await;
    let alice = person("alice", "default", Role::Reviewer, &["soc_analyst"]);
    let cookie = signed_in(&s, "sso-alice-keys", alice).await;
    let http = no_redirects();
    let form = http.get(s.at("/me/key")).header("cookie", &cookie).send().await.unwrap().text().await.unwrap();
    assert!(form.contains("Create my key") && form.contains("alice"), "{form}");
    let page = http
        .post(s.at("/me/key"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf(&form).as_str())])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = page.find("<pre id=\"my-key\">").expect("the key, shown once") + "<pre id=\"my-key\">".len();
    let key = page[at..].split('<').next().unwrap().to_string();
    assert!(key.starts_with("arb_"), "{key}");
    // the key is alice: the API knows her, and her approvals by key and by session count once
    let (code, keys) = s.get(&s.admin, "/v1/keys").await;
    assert_eq!(code, 200);
    let record = keys.as_array().unwrap().iter().find(|k| k["name"] == "alice").unwrap().clone();
    assert_eq!((record["role"].as_str(), record["tags"].clone()), (Some("reviewer"), json!(["soc_analyst"])));
    assert!(record["expires_at"].is_string(), "it expires: {record}");
    let (_, case) = s.escalate(&agent, isolate("db-2", &["crown_jewel"], 0.9)).await;
    let (code, e) = s
        .post(
            &key,
            &format!("/v1/cases/{case}/decision"),
            json!({"decision": "approve", "rationale": "approved with my own key"}),
        )
        .await;
    assert_eq!(code, 200, "{e}");
    let html =
        http.get(s.at(&format!("/cases/{case}"))).header("cookie", &cookie).send().await.unwrap().text().await.unwrap();
    let r = http
        .post(s.at(&format!("/cases/{case}/act")))
        .header("cookie", &cookie)
        .form(&[
            ("op", "decide"),
            ("decision", "approve"),
            ("rationale", "and again in the console"),
            ("csrf", &csrf(&html)),
        ])
        .send()
        .await
        .unwrap();
    assert!(r.headers()["location"].to_str().unwrap().contains("already"), "{:?}", r.headers());
    let (code, _) = s
        .post(
            &bob,
            &format!("/v1/cases/{case}/decision"),
            json!({"decision": "approve", "rationale": "second person agrees"}),
        )
        .await;
    assert_eq!(code, 200);
    // after the session lifetime the key stops working, like the session
    s.advance(Duration::from_secs(3601));
    let (code, e) = s.get(&key, "/v1/cases").await;
    assert_eq!(code, 401, "{e}");

    // with self keys off (the default), there is no such page
    let s = TestServer::with(POLICY, |c| {
        c.public_url = Some("https://arbiter.example.com".into());
        c.sso = Some(sso_config(false));
    })
    .await;
    let cookie = signed_in(&s, "sso-alice-nokeys", person("alice", "default", Role::Reviewer, &["soc_analyst"])).await;
    let r = http.get(s.at("/me/key")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
}
