//! The relying party against a provider served on 127.0.0.1 by the test,
//! signing with a key made for the run: every check of an ID token refuses
//! what it must. (The console's end-to-end test signs in through a real,
//! certified provider in Chromium.)

use super::*;
use jsonwebtoken::{EncodingKey, Header, jwk::Jwk};
use serde_json::json;
use std::sync::Mutex;

struct Signer {
    key: EncodingKey,
    jwk: Jwk,
    kid: String,
}

fn signer(kid: &str) -> Signer {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &aws_lc_rs::rand::SystemRandom::new())
        .expect("a P-256 key");
    let key = EncodingKey::from_ec_der(doc.as_ref());
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).unwrap();
    jwk.common.key_id = Some(kid.to_string());
    Signer { key, jwk, kid: kid.to_string() }
}

impl Signer {
    fn sign(&self, claims: &Value) -> String {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&h, claims, &self.key).unwrap()
    }
}

#[derive(Default)]
struct Served {
    keys: Vec<Jwk>,
    id_token: String,
    jwks_fetches: usize,
    token_form: String,
}

async fn provider(issuer_override: Option<&str>) -> (String, Arc<Mutex<Served>>) {
    use axum::routing::{get, post};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let served = Arc::new(Mutex::new(Served::default()));
    let issuer = issuer_override.unwrap_or(&base).to_string();
    let doc = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{base}/auth"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/jwks"),
        "end_session_endpoint": format!("{base}/session/end"),
    });
    let (s1, s2) = (served.clone(), served.clone());
    let app = axum::Router::new()
        .route("/.well-known/openid-configuration", get(move || async move { axum::Json(doc.clone()) }))
        .route(
            "/jwks",
            get(move || async move {
                let mut s = s1.lock().unwrap();
                s.jwks_fetches += 1;
                axum::Json(json!({"keys": s.keys}))
            }),
        )
        .route(
            "/token",
            post(move |body: String| async move {
                let mut s = s2.lock().unwrap();
                s.token_form = body;
                axum::Json(json!({"access_token": "at", "token_type": "Bearer", "id_token": s.id_token}))
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, served)
}

fn settings(issuer: &str) -> Settings {
    Settings {
        issuer: issuer.to_string(),
        client_id: "arbiter".into(),
        client_secret: Some("s3cret".into()),
        redirect_uri: "http://127.0.0.1:8080/sso/callback".into(),
        scopes: vec!["email".into(), "groups".into()],
        max_skew: Duration::from_secs(60),
    }
}

const NOW: i64 = 1_800_000_000;

fn claims(issuer: &str, nonce: &str) -> Value {
    json!({"iss": issuer, "aud": "arbiter", "sub": "alice", "nonce": nonce, "iat": NOW - 5, "exp": NOW + 300,
           "groups": ["soc-analysts"]})
}

#[tokio::test]
async fn the_code_flow_checks_every_claim_of_the_id_token() {
    let (base, served) = provider(None).await;
    let k = signer("k1");
    served.lock().unwrap().keys = vec![k.jwk.clone()];
    let p = Provider::new(settings(&base), reqwest::Client::new());

    let start = p.start().await.unwrap();
    assert!(start.url.starts_with(&format!("{base}/auth?response_type=code&client_id=arbiter&")), "{}", start.url);
    for part in ["scope=openid%20email%20groups", "code_challenge_method=S256", &format!("state={}", start.state)] {
        assert!(start.url.contains(part), "{part} in {}", start.url);
    }
    assert!(start.url.contains(&format!("code_challenge={}", pkce_challenge(&start.verifier))));
    assert_ne!(start.state, p.start().await.unwrap().state, "every sign-in has its own state");

    // a good token
    served.lock().unwrap().id_token = k.sign(&claims(&base, &start.nonce));
    let ok = p.finish("the-code", &start.verifier, &start.nonce, NOW).await.unwrap();
    assert_eq!(ok.claims["sub"], "alice");
    let form = served.lock().unwrap().token_form.clone();
    assert!(form.contains("code=the-code") && form.contains(&format!("code_verifier={}", start.verifier)), "{form}");

    let refused = |c: Value| {
        let token = k.sign(&c);
        let p = &p;
        let nonce = start.nonce.clone();
        async move { p.verify_id_token(&token, &nonce, NOW).await.unwrap_err().to_string() }
    };
    let mut c = claims(&base, &start.nonce);
    c["aud"] = json!("another-client");
    assert!(refused(c).await.contains("not for this client `arbiter`"));
    let mut c = claims(&base, &start.nonce);
    c["aud"] = json!(["arbiter", "other"]);
    assert!(refused(c).await.contains("several audiences"));
    let mut c = claims(&base, &start.nonce);
    c["azp"] = json!("other");
    assert!(refused(c).await.contains("requested by client `other`"));
    let mut c = claims(&base, &start.nonce);
    c["iss"] = json!("https://evil.example");
    assert!(refused(c).await.contains("not by the configured issuer"));
    let mut c = claims(&base, &start.nonce);
    c["exp"] = json!(NOW - 61);
    assert!(refused(c).await.contains("expired 61 s ago"));
    let mut c = claims(&base, &start.nonce);
    c["exp"] = json!(NOW - 59);
    assert!(p.verify_id_token(&k.sign(&c), &start.nonce, NOW).await.is_ok(), "within the allowed skew");
    let mut c = claims(&base, &start.nonce);
    c["iat"] = json!(NOW + 3600);
    assert!(refused(c).await.contains("in the future"));
    assert!(refused(claims(&base, "another-nonce")).await.contains("nonce"));
    let mut c = claims(&base, &start.nonce);
    c.as_object_mut().unwrap().remove("nonce");
    assert!(refused(c).await.contains("nonce"));

    // tampered: the payload changed after signing
    let good = k.sign(&claims(&base, &start.nonce));
    let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
    let mut payload = claims(&base, &start.nonce);
    payload["groups"] = json!(["admins"]);
    parts[1] = b64(&serde_json::to_vec(&payload).unwrap());
    let tampered = parts.join(".");
    assert!(p.verify_id_token(&tampered, &start.nonce, NOW).await.unwrap_err().to_string().contains("signature"));

    // a symmetric token signed with the client secret (the classic confusion) is refused
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(&base, &start.nonce),
        &EncodingKey::from_secret(b"s3cret").unwrap(),
    )
    .unwrap();
    assert!(p.verify_id_token(&hs, &start.nonce, NOW).await.unwrap_err().to_string().contains("HS256"));

    // a key the provider does not publish
    let stranger = signer("k-unknown");
    let e = p.verify_id_token(&stranger.sign(&claims(&base, &start.nonce)), &start.nonce, NOW).await.unwrap_err();
    assert!(e.to_string().contains("does not publish"), "{e}");
}

#[tokio::test]
async fn a_rotated_key_is_fetched_when_a_token_names_it() {
    let (base, served) = provider(None).await;
    let (old, new) = (signer("old"), signer("new"));
    served.lock().unwrap().keys = vec![old.jwk.clone()];
    let floor = Duration::from_millis(300);
    let p = Provider::new(settings(&base), reqwest::Client::new()).with_refetch_floor(floor);
    p.verify_id_token(&old.sign(&claims(&base, "n")), "n", NOW).await.unwrap();
    p.verify_id_token(&old.sign(&claims(&base, "n")), "n", NOW).await.unwrap();
    assert_eq!(served.lock().unwrap().jwks_fetches, 1, "the keys are cached");
    // the provider rotates: the new kid is not cached, so the keys are fetched again
    served.lock().unwrap().keys = vec![old.jwk.clone(), new.jwk.clone()];
    tokio::time::sleep(floor).await;
    p.verify_id_token(&new.sign(&claims(&base, "n")), "n", NOW).await.unwrap();
    assert_eq!(served.lock().unwrap().jwks_fetches, 2);
    // unknown kids do not hammer the provider: at most one fetch per floor
    let stranger = signer("nope");
    for _ in 0..3 {
        assert!(p.verify_id_token(&stranger.sign(&claims(&base, "n")), "n", NOW).await.is_err());
    }
    assert_eq!(served.lock().unwrap().jwks_fetches, 2);
}

#[tokio::test]
async fn a_discovery_document_for_another_issuer_is_refused() {
    let (base, _) = provider(Some("https://login.example.com")).await;
    let p = Provider::new(settings(&base), reqwest::Client::new());
    let e = p.start().await.unwrap_err().to_string();
    assert!(e.contains("names the issuer `https://login.example.com`"), "{e}");
}

#[tokio::test]
async fn sign_out_goes_to_the_providers_end_session_endpoint() {
    let (base, _) = provider(None).await;
    let p = Provider::new(settings(&base), reqwest::Client::new());
    let url = p.logout_url(Some("tok"), "http://127.0.0.1:8080/login").await.unwrap();
    assert_eq!(
        url,
        format!(
            "{base}/session/end?client_id=arbiter&post_logout_redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Flogin&id_token_hint=tok"
        )
    );
}
