//! Starting the server the first time: a socket that cannot be bound is named with its address and what to do.

use std::net::{SocketAddr, TcpListener, UdpSocket};

use voice_server::{Config, Server};

/// A configuration on loopback with `control`, `udp` and `metrics` as given.
fn config(control: SocketAddr, udp: SocketAddr, metrics: SocketAddr) -> Config {
    let text = format!("[listen]\nudp = \"{udp}\"\ncontrol = \"{control}\"\nmetrics = \"{metrics}\"\n");
    Config::from_toml_str(&text).expect("valid config")
}

fn any() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

#[test]
fn a_port_in_use_is_named_with_its_address() {
    let taken_tcp = TcpListener::bind(any()).expect("binds");
    let tcp = taken_tcp.local_addr().expect("address");
    let err = Server::from_config(&config(tcp, any(), any())).expect_err("the control port is taken").to_string();
    assert!(err.contains(&format!("control (TCP) socket to {tcp}")), "{err}");
    assert!(err.contains("another program"), "what to do: {err}");

    let taken_udp = UdpSocket::bind(any()).expect("binds");
    let udp = taken_udp.local_addr().expect("address");
    let err = Server::from_config(&config(any(), udp, any())).expect_err("the audio port is taken").to_string();
    assert!(err.contains(&format!("audio (UDP) socket to {udp}")), "{err}");

    let err = Server::from_config(&config(any(), any(), tcp)).expect_err("the metrics port is taken").to_string();
    assert!(err.contains(&format!("metrics (HTTP) socket to {tcp}")), "{err}");
}

/// A fixed "now" (2025-11-22), so certificate dates are checked without a clock.
const NOW_S: u64 = 1_763_800_000;

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("writes");
    path
}

fn temp_dir(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("voice-server-startup-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// What a plain `openssl req -x509` makes: a self-signed CA certificate (basicConstraints CA:TRUE).
fn ca_certificate(name: &str) -> String {
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().expect("key");
    params.self_signed(&key).expect("signs").pem()
}

#[test]
fn a_ca_certificate_as_the_servers_own_is_explained() {
    let dir = temp_dir("ca");
    let ca = write(&dir, "ca.pem", &ca_certificate("localhost"));
    let problems = voice_server::tls::certificate_problems(&ca, NOW_S);
    assert_eq!(problems.len(), 1, "{problems:?}");
    for want in ["CA certificate", "CaUsedAsEndEntity", "openssl req", "voice-server gen-cert", "CA:FALSE"] {
        assert!(problems[0].contains(want), "{want:?} missing: {}", problems[0]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn generated_certificates_are_server_certificates_for_the_names_given() {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let made = voice_server::tls::self_signed(&names, 30, NOW_S).expect("makes a certificate");
    assert_eq!(made.not_after, "2025-12-22", "30 days after 2025-11-22");
    assert!(made.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"), "{}", made.cert_pem);
    assert!(made.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8");
    let dir = temp_dir("gen");
    let cert = write(&dir, "cert.pem", &made.cert_pem);
    assert!(voice_server::tls::certificate_problems(&cert, NOW_S).is_empty(), "clients accept it");
    let expired = voice_server::tls::certificate_problems(&cert, NOW_S + 31 * 86_400);
    assert!(expired.len() == 1 && expired[0].contains("expired"), "{expired:?}");
    let early = voice_server::tls::certificate_problems(&cert, NOW_S - 2 * 86_400);
    assert!(early.len() == 1 && early[0].contains("not valid yet"), "{early:?}");
    // Words, not panics, for what cannot be made.
    for (names, days, now) in [(vec![], 30, NOW_S), (names.clone(), 0, NOW_S), (names.clone(), 30, u64::MAX)] {
        let e = voice_server::tls::self_signed(&names, days, now).expect_err("refused");
        assert!(e.to_string().starts_with("certificate: "), "{e}");
    }
    let e = voice_server::tls::self_signed(&["not a host".to_string()], 30, NOW_S).expect_err("refused");
    assert!(e.to_string().contains("not a host"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_leaf_without_its_chain_is_explained() {
    let dir = temp_dir("leaf");
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "test CA");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().expect("key");
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .expect("params")
        .signed_by(&leaf_key, &issuer)
        .expect("signs");
    let cert = write(&dir, "cert.pem", &leaf.pem());
    let problems = voice_server::tls::certificate_problems(&cert, NOW_S);
    assert!(problems.len() == 1 && problems[0].contains("fullchain.pem"), "{problems:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
