//! The extra UDP threads ([`super::Server::with_udp_threads`]): each owns one `SO_REUSEPORT` socket and runs the
//! same batch loop as the core task's UDP path, on its own current-thread runtime, sharing the relay's lock.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::net::UdpSocket;
use tokio::sync::{oneshot, watch};

use super::core::udp_error;
use super::udp::{self, BATCH, BatchRecv, BatchSend};
use super::{DriverStats, Shared, UDP_BATCHES_PER_TURN, stopped};
use crate::error::DriverError;

/// A running UDP thread and the signal it sends (by dropping it) when it ends.
pub(super) type Worker = (JoinHandle<()>, oneshot::Receiver<()>);

/// Starts UDP thread `index` (of the extra threads) on `sock`; it runs until `stop` turns true or its socket fails.
pub(super) fn spawn(
    index: usize,
    sock: std::net::UdpSocket,
    shared: Arc<Shared>,
    stats: Arc<DriverStats>,
    stop: watch::Receiver<bool>,
) -> io::Result<Worker> {
    let (done_tx, done_rx) = oneshot::channel::<()>();
    let handle = std::thread::Builder::new().name(format!("voice-relay-udp{}", index + 1)).spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        // A socket failure ends this thread only; the kernel then spreads its clients over the other sockets.
        let _ = rt.block_on(run(index, sock, &shared, &stats, stop));
        drop(done_tx);
    })?;
    Ok((handle, done_rx))
}

/// Waits (without blocking the runtime) until every thread has ended, then joins them.
pub(super) async fn join(workers: Vec<Worker>) {
    for (handle, done) in workers {
        let _ = done.await;
        let _ = handle.join();
    }
}

async fn run(
    index: usize,
    sock: std::net::UdpSocket,
    shared: &Shared,
    stats: &DriverStats,
    mut stop: watch::Receiver<bool>,
) -> Result<(), DriverError> {
    let sock = UdpSocket::from_std(sock).map_err(DriverError::Udp)?;
    let mut recv = BatchRecv::new();
    let mut send = BatchSend::new();
    let mut out = VecDeque::with_capacity(udp::OUT_CAPACITY);
    let (mut received, mut published) = (0u64, [0u64; 3]);
    loop {
        let mut backlog = false;
        tokio::select! {
            biased;
            () = stopped(&mut stop) => return Ok(()),
            r = sock.writable(), if send.is_blocked() => {
                r.map_err(DriverError::Udp)?;
                if let Err(e) = send.send(&sock, None, || out.pop_front()) {
                    udp_error(e)?;
                }
            }
            r = sock.readable(), if !send.is_blocked() => {
                r.map_err(DriverError::Udp)?;
                backlog = true;
                for _ in 0..UDP_BATCHES_PER_TURN {
                    match udp::forward_batch(&shared.relay, &mut recv, &mut send, &mut out, &sock, shared.udp_chunk) {
                        Ok(b) => {
                            received += b.received as u64;
                            if b.events {
                                shared.wake.notify_one();
                            }
                            if let Err(e) = b.sent {
                                udp_error(e)?;
                            }
                            if b.received < BATCH || send.is_blocked() {
                                backlog = false;
                                break;
                            }
                        }
                        Err(e) => {
                            udp_error(e)?;
                            backlog = false;
                            break;
                        }
                    }
                }
            }
        }
        stats.add([received, send.sent, send.errors], &mut published);
        if let Some(h) = shared.latency.get(index) {
            udp::lock_histogram(h).clone_from(&send.latency);
        }
        if backlog {
            tokio::task::yield_now().await;
        }
    }
}

/// A non-blocking UDP socket bound to `addr` with `SO_REUSEPORT` (every socket sharing the port needs it).
#[cfg(target_os = "linux")]
pub(super) fn reuseport_socket(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrStorage, bind, setsockopt, socket, sockopt};
    use std::os::fd::AsRawFd;
    let family = if addr.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    let fd = socket(family, SockType::Datagram, SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&fd, sockopt::ReusePort, &true)?;
    bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    Ok(std::net::UdpSocket::from(fd))
}
