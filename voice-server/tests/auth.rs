//! The production authenticators: argon2id password users and HS256 JWTs, alone, combined, and through a login
//! (the relay asks, the authenticator answers). Time is given, never read: tokens are checked against the login's
//! time.

use std::time::{Duration, Instant};

use jsonwebtoken::{EncodingKey, Header};
use voice_proto::control::{ClientMessage, Credential, ServerMessage};
use voice_relay::{AuthError, AuthId, AuthRequest, Authenticator, ConnId, Event, Relay, SeededRng, UserInfo};
use voice_server::{
    CombinedAuthenticator, Config, JwtAuthenticator, PasswordFileAuthenticator, hash_password_with_params,
};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

/// The time of every login here (Unix seconds): a fixed date, so token expiry is tested without a clock.
const NOW_S: u64 = 1_763_800_000;

/// `user` logging in with `credential` at [`NOW_S`].
fn request(user: &str, credential: &Credential) -> AuthRequest {
    request_at(user, credential, NOW_S)
}

fn request_at(user: &str, credential: &Credential, unix_s: u64) -> AuthRequest {
    AuthRequest::new(AuthId::new(ConnId(1), 1), user, credential.clone(), unix_s * 1000)
}

fn check(auth: &impl Authenticator, user: &str, credential: &Credential) -> Result<UserInfo, AuthError> {
    auth.authenticate(&request(user, credential))
}

/// A cheap argon2id hash (tests run unoptimised argon2).
fn cheap_hash(password: &str, seed: u64) -> String {
    hash_password_with_params(password, 64, 1, &mut SeededRng::new(seed)).unwrap()
}

fn password(p: &str) -> Credential {
    Credential::Password(p.into())
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
    assert_eq!(check(&auth, "alice", &password("hunter2")).unwrap().display_name, "Alice");
    assert_eq!(check(&auth, "alice", &password("hunter3")), Err(AuthError::WrongCredential));
    assert_eq!(check(&auth, "bob", &password("hunter2")), Err(AuthError::UnknownUser));
    assert_eq!(check(&auth, "alice", &Credential::Token("x".into())), Err(AuthError::UnsupportedCredential));
    assert!(PasswordFileAuthenticator::new().with_user("x", "$argon2i$v=19$m=64,t=1,p=1$AAAA$AAAA", "x").is_err());
    assert!(PasswordFileAuthenticator::new().with_user("x", "plain", "x").is_err());
}

#[test]
fn default_hash_parameters_are_the_documented_ones() {
    let phc = voice_server::hash_password("pw", &mut SeededRng::new(3)).unwrap();
    assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
}

/// An unknown user costs what a wrong password costs: argon2 needs its whole memory cost per verification, so
/// equal allocated bytes mean equal work (a deterministic stand-in for timing). A thread reuses that memory from
/// one check to the next: it is released before each measured check, so each allocates what it needs.
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
        auth.release_memory();
        allocation_counter::measure(|| {
            let _ = check(&auth, user, &password("wrong"));
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
    let ok = hs256(&serde_json::json!({ "sub": "alice", "name": "Alice A.", "exp": NOW_S + 3600 }));
    assert_eq!(check(&auth, "alice", &ok).unwrap().display_name, "Alice A.");
    let no_name = hs256(&serde_json::json!({ "sub": "alice", "exp": NOW_S + 3600 }));
    assert_eq!(check(&auth, "alice", &no_name).unwrap().display_name, "alice");
    assert_eq!(check(&auth, "bob", &ok), Err(AuthError::WrongCredential), "sub must be the login name");
    assert_eq!(check(&auth, "alice", &password("x")), Err(AuthError::UnsupportedCredential));
}

#[test]
fn jwt_refuses_bad_tokens() {
    let auth = JwtAuthenticator::new(SECRET)
        .with_issuer(Some("api".into()))
        .with_audience(Some("voice".into()))
        .with_leeway(std::time::Duration::from_secs(5));
    let exp = NOW_S + 3600;
    let good = serde_json::json!({ "sub": "a", "iss": "api", "aud": "voice", "exp": exp });
    assert!(check(&auth, "a", &hs256(&good)).is_ok());
    let refused = |c: &Credential| check(&auth, "a", c) == Err(AuthError::WrongCredential);
    let expired = serde_json::json!({ "sub": "a", "iss": "api", "aud": "voice", "exp": NOW_S - 600 });
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

/// A configured issuer or audience is required: a token that leaves the claim out is refused (it used to pass).
#[test]
fn jwt_requires_the_configured_issuer_and_audience() {
    let exp = NOW_S + 3600;
    let both = JwtAuthenticator::new(SECRET).with_issuer(Some("api".into())).with_audience(Some("voice".into()));
    let refused = |auth: &JwtAuthenticator, claims: serde_json::Value| {
        check(auth, "a", &hs256(&claims)) == Err(AuthError::WrongCredential)
    };
    assert!(refused(&both, serde_json::json!({ "sub": "a", "aud": "voice", "exp": exp })), "no iss");
    assert!(refused(&both, serde_json::json!({ "sub": "a", "iss": "api", "exp": exp })), "no aud");
    assert!(refused(&both, serde_json::json!({ "sub": "a", "exp": exp })), "neither");
    let aud_list = serde_json::json!({ "sub": "a", "iss": "api", "aud": ["web", "voice"], "exp": exp });
    assert!(check(&both, "a", &hs256(&aud_list)).is_ok(), "aud may be a list that contains the audience");
    // Only what is configured is required.
    let issuer_only = JwtAuthenticator::new(SECRET).with_issuer(Some("api".into()));
    assert!(check(&issuer_only, "a", &hs256(&serde_json::json!({ "sub": "a", "iss": "api", "exp": exp }))).is_ok());
    assert!(refused(&issuer_only, serde_json::json!({ "sub": "a", "exp": exp })), "no iss");
    let audience_only = JwtAuthenticator::new(SECRET).with_audience(Some("voice".into()));
    assert!(check(&audience_only, "a", &hs256(&serde_json::json!({ "sub": "a", "aud": "voice", "exp": exp }))).is_ok());
    assert!(refused(&audience_only, serde_json::json!({ "sub": "a", "exp": exp })), "no aud");
    // Unconfigured again: nothing but exp and sub is required.
    let cleared = both.with_issuer(None).with_audience(None);
    assert!(check(&cleared, "a", &hs256(&serde_json::json!({ "sub": "a", "exp": exp }))).is_ok());
}

#[test]
fn combined_dispatches_on_the_credential_kind() {
    let p = PasswordFileAuthenticator::new().with_user("alice", cheap_hash("pw", 4), "alice").unwrap();
    let both = CombinedAuthenticator::new(Some(p.clone()), Some(JwtAuthenticator::new(SECRET)));
    let t = hs256(&serde_json::json!({ "sub": "bob", "exp": NOW_S + 60 }));
    assert!(check(&both, "alice", &password("pw")).is_ok());
    assert!(check(&both, "bob", &t).is_ok());
    let only_passwords = CombinedAuthenticator::new(Some(p), None);
    assert_eq!(check(&only_passwords, "bob", &t), Err(AuthError::UnsupportedCredential));
    let none = CombinedAuthenticator::default();
    assert_eq!(check(&none, "alice", &password("pw")), Err(AuthError::UnsupportedCredential));
}

#[test]
fn jwt_expiry_and_not_before_are_checked_against_the_logins_time() {
    let auth = JwtAuthenticator::new(SECRET).with_leeway(Duration::from_secs(30));
    let t = hs256(&serde_json::json!({ "sub": "a", "exp": NOW_S + 60, "nbf": NOW_S - 60 }));
    let at = |s: u64| auth.authenticate(&request_at("a", &t, s));
    assert!(at(NOW_S).is_ok());
    assert!(at(NOW_S + 60 + 30).is_ok(), "within the leeway after exp");
    assert_eq!(at(NOW_S + 60 + 31), Err(AuthError::WrongCredential), "expired at the time given");
    assert!(at(NOW_S - 60 - 30).is_ok(), "within the leeway before nbf");
    assert_eq!(at(NOW_S - 60 - 31), Err(AuthError::WrongCredential), "not yet valid at the time given");
}

#[test]
fn only_password_checks_are_slow() {
    let p = PasswordFileAuthenticator::new().with_user("alice", cheap_hash("pw", 6), "alice").unwrap();
    let both = CombinedAuthenticator::new(Some(p.clone()), Some(JwtAuthenticator::new(SECRET)));
    let token = Credential::Token("t".into());
    assert!(!p.is_cheap(&password("pw")) && !both.is_cheap(&password("pw")), "argon2id goes to the blocking pool");
    assert!(JwtAuthenticator::new(SECRET).is_cheap(&token) && both.is_cheap(&token), "an HMAC is checked inline");
    assert!(CombinedAuthenticator::new(None, None).is_cheap(&password("pw")), "a refusal costs nothing");
}

/// From the configuration file to a LoginOk: a JWT login and a password login through the relay, which asks for
/// each check (`Event::Authenticate`, with the login's Unix time) and is answered here as its driver would.
#[test]
fn logins_through_the_relay_with_the_configured_authenticator() {
    let text = format!(
        "[[users]]\nname = \"alice\"\npassword_hash = \"{}\"\n[auth.jwt]\nsecret = \"{}\"\n",
        cheap_hash("pw", 5),
        std::str::from_utf8(SECRET).unwrap()
    );
    let cfg = Config::from_toml_str(&text).unwrap();
    #[allow(clippy::disallowed_methods, reason = "a test harness: the origin of the relay's time")]
    let now = Instant::now();
    let auth = cfg.authenticator().unwrap();
    let mut relay = Relay::new(cfg.relay_config(), Box::new(SeededRng::new(1)), now, NOW_S * 1000).unwrap();
    let later = now + Duration::from_secs(10);
    let mut login = |conn: u64, user: &str, credential: Credential| {
        relay.connection_opened(later, ConnId(conn));
        let msg = ClientMessage::Login { user: user.into(), credential, client: "test".into() };
        relay.handle_control(later, ConnId(conn), msg);
        let Some(Event::Authenticate(request)) = relay.poll_event() else { panic!("the relay asks for a check") };
        assert_eq!((request.conn(), request.user()), (ConnId(conn), user));
        assert_eq!(request.unix_time_ms(), (NOW_S + 10) * 1000, "the login's time, from the relay's epoch");
        relay.handle_auth_result(later, request.id(), auth.authenticate(&request));
        matches!(relay.poll_event(), Some(Event::Send { msg: ServerMessage::LoginOk { .. }, .. }))
    };
    assert!(login(1, "alice", password("pw")));
    assert!(!login(2, "alice", password("nope")));
    assert!(login(3, "carol", hs256(&serde_json::json!({ "sub": "carol", "exp": NOW_S + 60 }))));
    assert!(!login(4, "dave", hs256(&serde_json::json!({ "sub": "carol", "exp": NOW_S + 60 }))));
    assert!(!login(5, "erin", hs256(&serde_json::json!({ "sub": "erin", "exp": NOW_S - 25 }))), "expired by the login");
}

/// A writer for a test's log lines.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Logins are logged: accepted ones, and refused ones (a few per window) with the user name escaped, so a name
/// with control characters cannot write to the operator's terminal.
#[test]
fn logins_are_logged_with_names_escaped_and_refusals_limited() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
    let p = PasswordFileAuthenticator::new().with_user("alice", cheap_hash("pw", 7), "Alice").unwrap();
    let auth = CombinedAuthenticator::new(Some(p), None);
    tracing::subscriber::with_default(subscriber, || {
        assert!(check(&auth, "alice", &password("pw")).is_ok());
        for _ in 0..voice_server::auth::log::REFUSALS_PER_WINDOW + 3 {
            assert!(check(&auth, "evil\n\x1b[31mname", &password("x")).is_err());
        }
        // The next window (the login's own time, not a clock) says how many were left out.
        let later = NOW_S + voice_server::auth::log::WINDOW_MS / 1000;
        assert!(auth.authenticate(&request_at("alice", &password("nope"), later)).is_err());
    });
    let text = String::from_utf8(log.0.lock().expect("lock").clone()).expect("utf-8");
    assert!(text.contains("login accepted") && text.contains("user=\"alice\""), "{text}");
    let refused = text.lines().filter(|l| l.contains("login refused")).count();
    assert_eq!(refused as u64, voice_server::auth::log::REFUSALS_PER_WINDOW + 1, "{text}");
    assert!(text.contains("left_out=3"), "{text}");
    assert!(text.contains(r#"user="evil\n\u{1b}[31mname""#), "escaped: {text}");
    assert!(!text.contains('\x1b'), "no control character reaches the log: {text}");
}
