//! The README's first command (`cargo xtask demo`): for now a loopback round trip of the wire protocol through the
//! real relay core (see `voice_examples::protodemo`). The full-stack demo (relay + three clients + Opus + jitter
//! buffer) replaces it when the client crate lands.

fn main() -> anyhow::Result<()> {
    let packets = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(100);
    println!("protocol demo: voice-relay core + 3 clients on 127.0.0.1, {packets} sealed 20 ms packets per client");
    let r = voice_examples::protodemo::run(packets, std::time::Duration::from_millis(20))?;
    println!("  sent (all clients)        {}", r.sent);
    println!("  forwarded by the relay    {}  (same bytes shared by both recipients)", r.forwarded);
    println!("  opened at receivers       {}  (expected {})", r.received, r.sent * 2);
    println!("  duplicates refused        {}  (replay window)", r.replays_refused);
    println!("  spoofed packets dropped   {}  (valid token, unbound address)", r.spoofed_dropped);
    println!("  mean one-way latency      {:.0} µs  (client → relay → client, loopback)", r.mean_latency_us);
    anyhow::ensure!(r.received == r.sent * 2, "some packets were lost on loopback");
    Ok(())
}
