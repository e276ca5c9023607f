//! The production authenticators: argon2id password users and HS256 JWTs, alone, combined, and through a login.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header};
use voice_proto::control::{ClientMessage, Credential, ServerMessage};
use voice_relay::config::{Config, hash_password_with_params};
use voice_relay::{
    AuthError, Authenticator, CombinedAuthenticator, ConnId, Event, JwtAuthenticator, PasswordFileAuthenticator, Relay,
    SeededRng,
};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

/// A cheap argon2id hash (tests run unoptimised argon2).
fn cheap_hash(password: &str, seed: u64) -> String {
    hash_password_with_params(password, 64, 1, &mut SeededRng::new(seed)).unwrap()
}

fn password(p: &str) -> Credential {
    Credential::Password(p.into())
}

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn token(claims: &serde_json::Value, secret: &[u8], alg: jsonwebtoken::Algorithm) -> Credential {
    let t = jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret)).unwrap();
    Credential::Token(t)
}

fn hs256(claims: &serde_json::Value) -> Credential {
    token(claims, SECRET, jsonwebtoken::Algorithm::HS256)
}

#[test]
fn password_users_are_checked_against_their_argon2id_hash() {
    let auth = PasswordFileAuthenticator::new().with_user("alice", cheap_hash("hunter2", 1), "Alice").unwrap();
    assert_eq!(auth.authenticate("alice", &password("hunter2")).unwrap().display_name, "Alice");
    assert_eq!(auth.authenticate("alice", &password("hunter3")), Err(AuthError::WrongCredential));
    assert_eq!(auth.authenticate("bob", &password("hunter2")), Err(AuthError::UnknownUser));
    assert_eq!(auth.authenticate("alice", &Credential::Token("x".into())), Err(AuthError::UnsupportedCredential));
    assert!(PasswordFileAuthenticator::new().with_user("x", "$argon2i$v=19$m=64,t=1,p=1$AAAA$AAAA", "x").is_err());
    assert!(PasswordFileAuthenticator::new().with_user("x", "plain", "x").is_err());
}

#[test]
fn default_hash_parameters_are_the_documented_ones() {
    let phc = voice_relay::config::hash_password("pw", &mut SeededRng::new(3)).unwrap();
    assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
}

/// An unknown user costs what a wrong password costs: argon2 allocates its whole memory cost per verification,
/// so equal allocated bytes mean equal work (a deterministic stand-in for timing).
#[test]
fn unknown_user_costs_the_same_as_a_wrong_password() {
    let cheap = cheap_hash("a", 1);
    let dear = hash_password_with_params("b", 256, 2, &mut SeededRng::new(2)).unwrap();
    let auth = PasswordFileAuthenticator::new()
        .with_user("cheap", cheap, "cheap")
        .unwrap()
        .with_user("dear", dear, "dear")
        .unwrap();
    let bytes = |user: &str| {
        allocation_counter::measure(|| {
            let _ = auth.authenticate(user, &password("wrong"));
        })
        .bytes_total
    };
    let wrong = bytes("dear");
    let unknown = bytes("nobody");
    assert!(wrong >= 256 * 1024, "argon2 allocates its memory cost: {wrong}");
    assert!(unknown.abs_diff(wrong) < 4096, "unknown user {unknown} B vs wrong password {wrong} B");
}

#[test]
fn jwt_accepts_a_valid_token_for_its_subject() {
    let auth = JwtAuthenticator::new(SECRET);
    let ok = hs256(&serde_json::json!({ "sub": "alice", "name": "Alice A.", "exp": now_s() + 3600 }));
    assert_eq!(auth.authenticate("alice", &ok).unwrap().display_name, "Alice A.");
    let no_name = hs256(&serde_json::json!({ "sub": "alice", "exp": now_s() + 3600 }));
    assert_eq!(auth.authenticate("alice", &no_name).unwrap().display_name, "alice");
    assert_eq!(auth.authenticate("bob", &ok), Err(AuthError::WrongCredential), "sub must be the login name");
    assert_eq!(auth.authenticate("alice", &password("x")), Err(AuthError::UnsupportedCredential));
}

#[test]
fn jwt_refuses_bad_tokens() {
    let auth = JwtAuthenticator::new(SECRET)
        .with_issuer(Some("api".into()))
        .with_audience(Some("voice".into()))
        .with_leeway(std::time::Duration::from_secs(5));
    let exp = now_s() + 3600;
    let good = serde_json::json!({ "sub": "a", "iss": "api", "aud": "voice", "exp": exp });
    assert!(auth.authenticate("a", &hs256(&good)).is_ok());
    let refused = |c: &Credential| auth.authenticate("a", c) == Err(AuthError::WrongCredential);
    let expired = serde_json::json!({ "sub": "a", "iss": "api", "aud": "voice", "exp": now_s() - 600 });
    assert!(refused(&hs256(&expired)), "expired");
    let no_exp = serde_json::json!({ "sub": "a", "iss": "api", "aud": "voice" });
    assert!(refused(&hs256(&no_exp)), "exp is required");
    let bad_iss = serde_json::json!({ "sub": "a", "iss": "other", "aud": "voice", "exp": exp });
    assert!(refused(&hs256(&bad_iss)), "issuer");
    let bad_aud = serde_json::json!({ "sub": "a", "iss": "api", "aud": "chat", "exp": exp });
    assert!(refused(&hs256(&bad_aud)), "audience");
    assert!(refused(&token(&good, b"another-secret-another-secret-xx", jsonwebtoken::Algorithm::HS256)), "secret");
    assert!(refused(&token(&good, SECRET, jsonwebtoken::Algorithm::HS384)), "only HS256");
    assert!(refused(&Credential::Token("not.a.jwt".into())), "garbage");
    assert!(refused(&Credential::Token(String::new())), "empty");
}

#[test]
fn combined_dispatches_on_the_credential_kind() {
    let p = PasswordFileAuthenticator::new().with_user("alice", cheap_hash("pw", 4), "alice").unwrap();
    let both = CombinedAuthenticator::new(Some(p.clone()), Some(JwtAuthenticator::new(SECRET)));
    let t = hs256(&serde_json::json!({ "sub": "bob", "exp": now_s() + 60 }));
    assert!(both.authenticate("alice", &password("pw")).is_ok());
    assert!(both.authenticate("bob", &t).is_ok());
    let only_passwords = CombinedAuthenticator::new(Some(p), None);
    assert_eq!(only_passwords.authenticate("bob", &t), Err(AuthError::UnsupportedCredential));
    let none = CombinedAuthenticator::default();
    assert_eq!(none.authenticate("alice", &password("pw")), Err(AuthError::UnsupportedCredential));
}

/// From the configuration file to a LoginOk: a JWT login and a password login through the relay.
#[test]
fn logins_through_the_relay_with_the_configured_authenticator() {
    let text = format!(
        "[[users]]\nname = \"alice\"\npassword_hash = \"{}\"\n[auth.jwt]\nsecret = \"{}\"\n",
        cheap_hash("pw", 5),
        std::str::from_utf8(SECRET).unwrap()
    );
    let cfg = Config::from_toml_str(&text).unwrap();
    let now = Instant::now();
    let auth = cfg.authenticator().unwrap();
    let mut relay = Relay::new(cfg.relay_config(), Box::new(auth), Box::new(SeededRng::new(1)), now, 0).unwrap();
    let mut login = |conn: u64, user: &str, credential: Credential| {
        relay.connection_opened(now, ConnId(conn));
        let msg = ClientMessage::Login { user: user.into(), credential, client: "test".into() };
        relay.handle_control(now, ConnId(conn), msg);
        matches!(relay.poll_event(), Some(Event::Send { msg: ServerMessage::LoginOk { .. }, .. }))
    };
    assert!(login(1, "alice", password("pw")));
    assert!(!login(2, "alice", password("nope")));
    assert!(login(3, "carol", hs256(&serde_json::json!({ "sub": "carol", "exp": now_s() + 60 }))));
    assert!(!login(4, "dave", hs256(&serde_json::json!({ "sub": "carol", "exp": now_s() + 60 }))));
}
