//! The threaded driver: [`Client`] runs a [`Session`] and its [`Media`] on a media thread that looks at the
//! microphone ring twice per device period (a completed frame is encoded at once) and mixes when the speaker ring
//! is about to run dry (the device's clock paces playout), the sockets on a tokio runtime thread, and the audio
//! backend's callbacks on theirs.
//!
//! ```text
//!  audio backend ──mic ring (SPSC)──►  media thread  ──speaker ring (SPSC)──► audio backend
//!                                       Session + Media
//!  UDP socket ◄──► NetworkConditioner out / in (pass-through unless `Client::set_network`) ◄──► network thread
//!  network thread (tokio) ──std mpsc (datagrams, control bytes, connect/close, app commands)──► media thread
//!  media thread ──tokio mpsc (transmits, control bytes, connect/close)──► network thread
//!  media thread ──std mpsc (events)──► application;  stats: a mutex the media thread updates once per frame
//! ```
#![allow(
    clippy::disallowed_methods,
    reason = "the driver owns the clock: it reads `now` for the session and media and waits for deadlines"
)]

mod net;
mod priority;
mod tls;

pub use priority::{ThreadPriorities, ThreadPriority, raise_current_thread_priority};
pub use tls::ControlTls;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use voice_proto::{PublicId, WhisperTarget};

use crate::audio::{AudioBackend, AudioStreams};
use crate::{
    ConditionerConfig, ConditionerStats, ConnectionCommand, Error, Event, Media, MediaConfig, NetworkConditioner,
    Session, SessionConfig, SessionStats, TalkMode, sample_ring,
};

/// Audio the speaker ring holds beyond one device period when the media thread mixes more: covers the thread's
/// own wake-up delay (it runs at real-time priority where allowed).
const LOW_WATER_MARGIN: Duration = Duration::from_micros(1_500);
/// The media thread's shortest look interval at its rings.
const MIN_LOOK: Duration = Duration::from_micros(500);
/// How long before a device's next period is due the media thread starts looking for it.
const DEVICE_EARLY: Duration = Duration::from_millis(1);

/// The duration of `n` interleaved samples at `per_second` samples per second (all channels).
fn samples_duration(n: usize, per_second: usize) -> Duration {
    Duration::from_micros((n as u64).saturating_mul(1_000_000) / per_second.max(1) as u64)
}

/// Interleaved samples in `d` at `per_second` samples per second (all channels).
fn samples_of(d: Duration, per_second: usize) -> usize {
    (d.as_micros() as usize).saturating_mul(per_second) / 1_000_000
}

/// What [`Client::connect`] needs.
#[derive(Debug)]
pub struct ClientConfig {
    /// The session: server address, user, credential, room, talk mode.
    pub session: SessionConfig,
    /// Encoder and DSP settings (the device formats are taken from the audio backend).
    pub media: MediaConfig,
    /// Where audio comes from and goes to (e.g. [`FileAudio`](crate::FileAudio)).
    pub audio: Box<dyn AudioBackend>,
    /// Seed of the first audio sequence number and timestamp.
    pub seed: u64,
    /// TLS on the control connection (`None`: plain TCP). The server must serve TLS too.
    pub tls: Option<ControlTls>,
}

/// Inputs of the media thread.
#[derive(Debug)]
pub(crate) enum MediaIn {
    /// A datagram and when the network thread received it (its arrival time for the jitter buffer, even when the
    /// media thread gets to it late: a stalled media thread must not look like a network delay spike).
    Datagram(Instant, SocketAddr, bytes::BytesMut),
    Connected(u64),
    ControlBytes(u64, Bytes),
    Disconnected(u64),
    /// Opening connection `u64` failed, for this reason.
    ConnectFailed(u64, String),
    Command(Command),
}

/// Outputs of the media thread to the network thread.
#[derive(Debug)]
pub(crate) enum NetOut {
    Transmit(voice_proto::Transmit),
    Control(Bytes),
    Connection(ConnectionCommand),
    /// New settings of the outgoing and the incoming network conditioner.
    Network(ConditionerConfig, ConditionerConfig),
    Shutdown,
}

/// An application request, carried out on the media thread.
#[derive(Debug)]
pub(crate) enum Command {
    Ptt(bool),
    Mute(bool),
    Deafen(bool),
    TalkMode(TalkMode),
    Join(String, Option<String>),
    Leave,
    ListRooms,
    Chat(String),
    Whisper(WhisperTarget, Vec<PublicId>),
    SelectWhisper(WhisperTarget),
    Volume(PublicId, f32),
    AddressChanged,
    Dump(Option<std::path::PathBuf>),
    Stop,
}

/// The network conditioner of a [`Client`] (see [`Client::set_network`]): its settings and what it did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct NetworkStats {
    /// The settings in use for outgoing datagrams.
    pub up_config: ConditionerConfig,
    /// The settings in use for incoming datagrams.
    pub down_config: ConditionerConfig,
    /// Outgoing UDP datagrams: pushed, dropped, reordered, delivered (sent).
    pub up: ConditionerStats,
    /// Incoming UDP datagrams: pushed (received), dropped, reordered, delivered (to the session).
    pub down: ConditionerStats,
    /// Incoming datagrams dropped on arrival because they came from another host than the server's.
    pub foreign_dropped: u64,
    /// Incoming datagrams dropped because the media thread had [`QUEUE_BOUND`] of them waiting (it stalled).
    pub queue_dropped_in: u64,
    /// Outgoing datagrams dropped because the network thread had [`QUEUE_BOUND`] of them waiting.
    pub queue_dropped_out: u64,
}

/// Most datagrams waiting between the network and media threads, in each direction; beyond it they are dropped
/// and counted ([`NetworkStats::queue_dropped_in`], [`NetworkStats::queue_dropped_out`]): a stalled thread costs
/// the datagrams of the stall, never unbounded memory. About 20 s of one speaker's audio.
pub const QUEUE_BOUND: usize = 1024;

/// The datagrams in flight through one of the channels between the threads (the channels themselves are
/// unbounded; datagrams are the only traffic that could fill them).
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    waiting: AtomicUsize,
    dropped: AtomicU64,
}

impl InFlight {
    /// Takes a place for one more datagram; `false` (and counted) when [`QUEUE_BOUND`] are waiting.
    fn enter(&self) -> bool {
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= QUEUE_BOUND {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// A datagram left the channel.
    fn leave(&self) {
        self.waiting.fetch_sub(1, Ordering::AcqRel);
    }

    fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The two directions' bounds, shared by both threads.
#[derive(Debug, Default)]
pub(crate) struct Queues {
    /// Network thread → media thread.
    into_media: InFlight,
    /// Media thread → network thread.
    into_net: InFlight,
}

/// What the sample rings between the audio callbacks and the media thread have lost (overruns and underruns).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RingLosses {
    /// Microphone ring: samples dropped because the media thread fell behind.
    pub mic: crate::RingStats,
    /// Speaker ring: samples the device callback replaced by silence (underruns) or that did not fit.
    pub speaker: crate::RingStats,
}

/// A running voice client: threads, sockets and audio streams around a [`Session`] and a [`Media`].
///
/// Requests (`set_ptt`, `join`, …) are queued to the media thread and carried out within a frame period; a
/// refused request comes back as an [`Event::RequestRefused`] (or, from the server, an [`Event::ServerError`]).
///
/// ```no_run
/// use std::time::Duration;
/// use voice_client::{Client, ClientConfig, Event, FileAudio, MediaConfig, SessionConfig};
/// use voice_proto::control::Credential;
///
/// let session = SessionConfig::new("127.0.0.1:7000".parse()?, "bot", Credential::Password("pw".into()))
///     .with_room("lobby");
/// let audio = FileAudio::new(Some("speech.wav".into()), Some("heard.wav".into()))?;
/// let config = ClientConfig { session, media: MediaConfig::default(), audio: Box::new(audio), seed: 1, tls: None };
/// let client = Client::connect(config)?;
/// while let Some(event) = client.next_event(Duration::from_secs(5)) {
///     if event == Event::MediaReady {
///         client.set_ptt(true)?; // push-to-talk is the default mode
///     }
///     println!("{event:?} {:?}", client.stats().udp_rtt);
/// }
/// client.shutdown()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Client {
    to_media: Sender<MediaIn>,
    events: Receiver<Event>,
    stats: Arc<Mutex<SessionStats>>,
    rings: Arc<Mutex<RingLosses>>,
    network: Arc<Mutex<NetworkStats>>,
    priorities: Arc<Mutex<ThreadPriorities>>,
    to_net: tokio::sync::mpsc::UnboundedSender<NetOut>,
    media_thread: Option<JoinHandle<Result<(), Error>>>,
    net_thread: Option<JoinHandle<()>>,
    streams: Option<Box<dyn AudioStreams>>,
}

impl Client {
    /// Starts the client: binds a UDP socket, starts the network and media threads and the audio streams, and
    /// begins connecting. Progress arrives as events ([`next_event`](Self::next_event)).
    pub fn connect(mut config: ClientConfig) -> Result<Self, Error> {
        let input = config.audio.input_format();
        let output = config.audio.output_format();
        let media_config = MediaConfig {
            capture: voice_codec::CaptureConfig {
                device_rate_hz: input.rate_hz,
                device_channels: input.channels,
                ..config.media.capture
            },
            output_rate_hz: output.rate_hz,
            output_channels: output.channels,
            ..config.media
        };
        let (to_media, media_rx) = mpsc::channel();
        let (net_tx, net_rx) = tokio::sync::mpsc::unbounded_channel();
        let (event_tx, events) = mpsc::channel();
        let stats = Arc::new(Mutex::new(SessionStats::default()));
        let rings = Arc::new(Mutex::new(RingLosses::default()));
        let media_rings = Arc::clone(&rings);
        let server = config.session.server;
        let network = Arc::new(Mutex::new(NetworkStats::default()));
        let priorities = Arc::new(Mutex::new(ThreadPriorities::default()));
        let realtime = config.media.realtime_priority;
        let net_priority = realtime.then(|| Arc::clone(&priorities));
        let queues = Arc::new(Queues::default());
        let net_thread = net::spawn(
            server,
            config.tls.clone(),
            (to_media.clone(), Arc::clone(&queues)),
            net_rx,
            (config.seed, net_priority),
            Arc::clone(&network),
        )?;
        let to_net = net_tx.clone();
        // Half a second of audio each way: the media thread drains the mic ring every frame period.
        let (mic_prod, mic_cons) = sample_ring(input.rate_hz as usize / 2 * usize::from(input.channels));
        let spk_capacity = output.rate_hz as usize / 2 * usize::from(output.channels);
        let (spk_prod, spk_cons) = sample_ring(spk_capacity);
        let session = Session::new(config.session, Instant::now(), config.seed);
        let media_stats = Arc::clone(&stats);
        // The media thread builds the pipelines itself (the echo canceller is not `Send`) and says whether that
        // worked, so a bad setting still fails `connect`.
        let (media_ready, media_built) = mpsc::sync_channel::<Result<(), Error>>(1);
        let media_priorities = Arc::clone(&priorities);
        let media_thread = std::thread::Builder::new().name("voice-media".into()).spawn(move || {
            if realtime {
                let got = priority::raise_current_thread_priority();
                if let Ok(mut p) = media_priorities.lock() {
                    p.media = got;
                }
            }
            let media = match Media::new(media_config) {
                Ok(m) => m,
                Err(e) => {
                    // The network thread ends too (the client keeps a sender to it, so it would wait forever).
                    let _ = net_tx.send(NetOut::Shutdown);
                    let _ = media_ready.send(Err(e));
                    return Ok(());
                }
            };
            let _ = media_ready.send(Ok(()));
            MediaLoop {
                session,
                media,
                rx: media_rx,
                net: net_tx,
                queues,
                events: event_tx,
                stats: media_stats,
                rings: media_rings,
                mic: mic_cons,
                speaker: spk_prod,
                speaker_capacity: spk_capacity,
                output,
                input_rate_hz: input.rate_hz,
                capture_misses: 0,
                last_level: 0,
                last_read: None,
                playout_misses: 0,
                conn_gen: 0,
                chunk: vec![0.0; input.rate_hz as usize / 2 * usize::from(input.channels)],
            }
            .run()
        })?;
        let mut client = Self {
            to_media,
            events,
            stats,
            rings,
            network,
            priorities,
            to_net,
            media_thread: Some(media_thread),
            net_thread: Some(net_thread),
            streams: None,
        };
        // If the pipelines or the audio device cannot start, the threads stop again (dropping `client` joins them).
        media_built.recv().map_err(|_| Error::Stopped)??;
        client.streams = Some(config.audio.start(mic_prod, spk_cons)?);
        Ok(client)
    }

    /// The next event, waiting up to `timeout`.
    pub fn next_event(&self, timeout: Duration) -> Option<Event> {
        self.events.recv_timeout(timeout).ok()
    }

    /// The next event if one is waiting.
    pub fn try_event(&self) -> Option<Event> {
        self.events.try_recv().ok()
    }

    /// The latest statistics (updated once per frame period).
    #[must_use]
    pub fn stats(&self) -> SessionStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// What scheduling priority the media and network threads obtained (real-time where the OS allows it; see
    /// [`MediaConfig::realtime_priority`]). Set as the threads start.
    #[must_use]
    pub fn thread_priorities(&self) -> ThreadPriorities {
        self.priorities.lock().map(|p| *p).unwrap_or_default()
    }

    /// Overruns and underruns of the audio rings (updated once per frame period).
    #[must_use]
    pub fn ring_losses(&self) -> RingLosses {
        self.rings.lock().map(|s| *s).unwrap_or_default()
    }

    /// Sets the network conditioner applied to every UDP datagram this client sends and receives (loss,
    /// latency, jitter, reordering; the same settings both ways), at any time: the "chaos" sliders of a debug
    /// panel. The default [`ConditionerConfig`] (what a client starts with) passes everything through unchanged.
    /// Datagrams already held keep their delivery time. Refuses a probability outside 0..=1.
    pub fn set_network(&self, config: ConditionerConfig) -> Result<(), Error> {
        self.set_network_each(config, config)
    }

    /// As [`set_network`](Self::set_network), with different settings for the datagrams this client sends
    /// (`up`) and those it receives (`down`).
    pub fn set_network_each(&self, up: ConditionerConfig, down: ConditionerConfig) -> Result<(), Error> {
        NetworkConditioner::<()>::new(up, 0)?;
        NetworkConditioner::<()>::new(down, 0)?;
        self.to_net.send(NetOut::Network(up, down)).map_err(|_| Error::Stopped)
    }

    /// The network conditioner's settings and counters (updated every 100 ms while datagrams flow, and on
    /// every [`set_network`](Self::set_network)).
    #[must_use]
    pub fn network_stats(&self) -> NetworkStats {
        self.network.lock().map(|s| *s).unwrap_or_default()
    }

    /// Starts (`Some(dir)`) or stops (`None`) the audio dump: the microphone as captured, the audio after DSP
    /// just before the encoder, and each remote speaker's decoder output, as WAV files in `dir` (see
    /// [`Media::set_dump`]). Carried out on the media thread (never in an audio callback); `None` finalizes the
    /// files. [`Event::Dump`] says when it is done (for `None`: every file finalized). A failure (directory not
    /// writable, disk full) stops the dump and arrives as an [`Event::RequestRefused`].
    pub fn set_dump(&self, dir: Option<std::path::PathBuf>) -> Result<(), Error> {
        self.command(Command::Dump(dir))
    }

    fn command(&self, c: Command) -> Result<(), Error> {
        self.to_media.send(MediaIn::Command(c)).map_err(|_| Error::Stopped)
    }

    /// Holds or releases the push-to-talk key.
    pub fn set_ptt(&self, down: bool) -> Result<(), Error> {
        self.command(Command::Ptt(down))
    }
    /// Mutes (stops sending and releases the microphone) or unmutes.
    pub fn set_muted(&self, muted: bool) -> Result<(), Error> {
        if let Some(s) = &self.streams {
            s.set_input_enabled(!muted);
        }
        self.command(Command::Mute(muted))
    }
    /// Deafens or undeafens.
    pub fn set_deafened(&self, deafened: bool) -> Result<(), Error> {
        self.command(Command::Deafen(deafened))
    }
    /// Changes the talk mode.
    pub fn set_talk_mode(&self, mode: TalkMode) -> Result<(), Error> {
        self.command(Command::TalkMode(mode))
    }
    /// Joins a room.
    pub fn join(&self, room: &str, password: Option<&str>) -> Result<(), Error> {
        self.command(Command::Join(room.into(), password.map(Into::into)))
    }
    /// Leaves the room.
    pub fn leave(&self) -> Result<(), Error> {
        self.command(Command::Leave)
    }
    /// Asks for the room list again (answered by [`Event::RoomList`]): for fresh member counts. Ignored while the
    /// session is not connected.
    pub fn list_rooms(&self) -> Result<(), Error> {
        self.command(Command::ListRooms)
    }
    /// Sends a chat message.
    pub fn send_chat(&self, text: &str) -> Result<(), Error> {
        self.command(Command::Chat(text.into()))
    }
    /// Sets whisper list `target` to `members`.
    pub fn set_whisper(&self, target: WhisperTarget, members: &[PublicId]) -> Result<(), Error> {
        self.command(Command::Whisper(target, members.to_vec()))
    }
    /// Selects the whisper target of outgoing audio ([`WhisperTarget::ROOM`] for everyone).
    pub fn select_whisper_target(&self, target: WhisperTarget) -> Result<(), Error> {
        self.command(Command::SelectWhisper(target))
    }
    /// Sets a remote speaker's volume (0 ..= 4).
    pub fn set_volume(&self, id: PublicId, volume: f32) -> Result<(), Error> {
        self.command(Command::Volume(id, volume))
    }
    /// Tells the session the local network changed (re-binds the UDP address with a HELLO).
    pub fn local_address_changed(&self) -> Result<(), Error> {
        self.command(Command::AddressChanged)
    }

    /// Leaves, closes the connection, stops the threads and the audio streams (the file backend writes its
    /// output file).
    pub fn shutdown(mut self) -> Result<(), Error> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), Error> {
        let _ = self.to_media.send(MediaIn::Command(Command::Stop));
        let mut result = Ok(());
        if let Some(t) = self.media_thread.take() {
            result = t.join().map_err(|_| Error::Stopped).and_then(|r| r);
        }
        if let Some(t) = self.net_thread.take() {
            let _ = t.join();
        }
        if let Some(s) = self.streams.take() {
            let r = s.stop();
            if result.is_ok() {
                result = r;
            }
        }
        result
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The media thread's state.
struct MediaLoop {
    session: Session,
    media: Media,
    rx: Receiver<MediaIn>,
    net: tokio::sync::mpsc::UnboundedSender<NetOut>,
    queues: Arc<Queues>,
    events: Sender<Event>,
    stats: Arc<Mutex<SessionStats>>,
    rings: Arc<Mutex<RingLosses>>,
    mic: crate::SampleConsumer,
    speaker: crate::SampleProducer,
    /// Capacity of the speaker ring, in samples.
    speaker_capacity: usize,
    output: crate::AudioFormat,
    /// Capture device rate, Hz.
    input_rate_hz: u32,
    /// Looks at the microphone ring in a row that found nothing.
    capture_misses: u32,
    /// Samples in the speaker ring after the last look, the look that saw the device's last read, and looks in a
    /// row that found the device had read nothing.
    last_level: usize,
    last_read: Option<Instant>,
    playout_misses: u32,
    conn_gen: u64,
    chunk: Vec<f32>,
}

impl MediaLoop {
    fn run(mut self) -> Result<(), Error> {
        // Three schedules share this thread: the frame tick (stats; the muted microphone's pause), the look at the
        // microphone ring (often enough that a completed frame is encoded within half a device period), and the
        // look at the speaker ring (mix just before the device would run dry: see `playout`).
        let mut tick = Instant::now();
        let mut next_capture = tick;
        let mut next_playout = tick;
        loop {
            let now = Instant::now();
            let wake = self.session.poll_timeout().map_or(tick, |t| t.min(tick)).min(next_capture).min(next_playout);
            match self.rx.recv_timeout(wake.saturating_duration_since(now)) {
                Ok(MediaIn::Command(Command::Stop)) => return self.finish(),
                Ok(input) => self.handle(input)?,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return self.finish(),
            }
            let now = Instant::now();
            if self.session.poll_timeout().is_some_and(|t| t <= now) {
                self.session.handle_timeout(now);
            }
            let frame = Duration::from_millis(u64::from(self.session.frame_ms()));
            if now >= tick {
                // While muted the microphone is released: the media timestamp advances by the frame so receivers
                // see the pause's length.
                if self.session.is_muted() {
                    while self.mic.pop(&mut self.chunk) > 0 {}
                    self.session.skip_audio(self.session.frame_ms() * 48);
                }
                if let Ok(mut s) = self.stats.lock() {
                    self.session.stats_into(&mut s);
                }
                if let Ok(mut r) = self.rings.lock() {
                    *r = RingLosses { mic: self.mic.stats(), speaker: self.speaker.stats() };
                }
                tick += frame;
                if tick < now {
                    // Far behind (the machine stalled): skip ahead instead of catching up.
                    tick = now + frame;
                }
            }
            if now >= next_capture {
                let got = !self.session.is_muted() && self.capture(now)?;
                next_capture = self.next_capture_look(now, got, frame);
            }
            if now >= next_playout {
                next_playout = self.playout(now, frame)?;
            }
            self.flush();
        }
    }

    /// When to look at the microphone ring next. The capture device delivers a period at a time: after a look
    /// that found audio the next look comes just before the next period is due, then every `MIN_LOOK` until it is
    /// there, so a completed frame is encoded within `MIN_LOOK` of its last sample (and the packets leave at even
    /// intervals, which the far end's jitter buffer rewards). A device that stays silent for a whole period (muted,
    /// stopped) is looked at every half period.
    fn next_capture_look(&mut self, now: Instant, got: bool, frame: Duration) -> Instant {
        let per_second = self.input_rate_hz as usize * usize::from(self.media_channels()).max(1);
        let period = self.mic.largest_push().map_or(frame / 4, |n| samples_duration(n, per_second)).min(frame);
        if got {
            self.capture_misses = 0;
            return now + period.saturating_sub(DEVICE_EARLY).max(MIN_LOOK);
        }
        self.capture_misses = self.capture_misses.saturating_add(1);
        if MIN_LOOK * self.capture_misses > period { now + (period / 2).max(MIN_LOOK) } else { now + MIN_LOOK }
    }

    /// Playout follows the device's clock, not this thread's. The device reads a period at a time; between its
    /// reads this thread counts it as playing on continuously (from the look that saw the last read), and mixes
    /// when what is left ahead of that position falls below `LOW_WATER_MARGIN`: so the jitter buffers are asked
    /// (at the real time, see `Media::mix`) once per slot, a slot's length after the previous one — as a jitter
    /// buffer expects —, not whenever a device read happens to cross a mark. Before the device's first read, a
    /// frame is kept in the ring. Returns when to look again: when that margin is reached, or just before the
    /// device's next read is due (and then every `MIN_LOOK` until it has happened), whichever is first.
    fn playout(&mut self, now: Instant, frame: Duration) -> Result<Instant, Error> {
        let per_second = self.output.rate_hz as usize * usize::from(self.output.channels).max(1);
        let margin = samples_of(LOW_WATER_MARGIN, per_second);
        let period = self.speaker.largest_read();
        if self.level() < self.last_level {
            self.last_read = Some(now);
            self.playout_misses = 0;
        }
        // What the device has played of its last read by now (as if continuously), and the mark below which
        // the audio ahead of that position calls for a mix.
        let (played, mark) = match (period, self.last_read) {
            (Some(p), Some(t)) => (samples_of(now.saturating_duration_since(t), per_second).min(p), margin),
            _ => (0, samples_of(frame, per_second)),
        };
        for _ in 0..4 {
            if self.level().saturating_sub(played) >= mark {
                break;
            }
            match self.media.mix(&mut self.session, now) {
                Ok(audio) => {
                    self.speaker.push(audio);
                }
                Err(e) => self.dump_failed(e)?,
            }
        }
        self.last_level = self.level();
        let ahead = self.last_level.saturating_sub(played).saturating_sub(mark);
        let at_mark = now + samples_duration(ahead, per_second);
        let (Some(period), Some(read)) = (period, self.last_read) else {
            return Ok(at_mark.min(now + frame / 4).max(now + MIN_LOOK));
        };
        let period_time = samples_duration(period, per_second);
        let next_read = read + period_time.saturating_sub(DEVICE_EARLY);
        let look = if now < next_read {
            next_read
        } else {
            // The read is due: look for it often, unless the device has not read for a whole period (stopped).
            self.playout_misses = self.playout_misses.saturating_add(1);
            now + if MIN_LOOK * self.playout_misses > period_time { period_time / 2 } else { MIN_LOOK }
        };
        Ok(at_mark.min(look).max(now + MIN_LOOK))
    }

    /// Samples (interleaved) in the speaker ring.
    fn level(&self) -> usize {
        self.speaker_capacity - self.speaker.vacant()
    }

    /// Encodes (and sends) everything the microphone delivered since the last look.
    /// Returns whether there was anything.
    fn capture(&mut self, now: Instant) -> Result<bool, Error> {
        let mut got = false;
        loop {
            let n = self.mic.pop(&mut self.chunk);
            if n == 0 {
                return Ok(got);
            }
            got = true;
            let channels = usize::from(self.media_channels());
            let whole = n - n % channels.max(1);
            if let Err(e) = self.media.capture(&mut self.session, now, &self.chunk[..whole]) {
                self.dump_failed(e)?;
            }
        }
    }

    /// An audio pipeline failed: while an audio dump is written the dump is the likely cause (a file that cannot
    /// be written), so it is stopped and the application told; otherwise the error stops the client.
    fn dump_failed(&mut self, e: Error) -> Result<(), Error> {
        if self.media.dump_dir().is_none() {
            return Err(e);
        }
        let _ = self.media.set_dump(None);
        let _ = self.events.send(Event::RequestRefused(format!("audio dump stopped: {e}")));
        Ok(())
    }

    fn media_channels(&self) -> u16 {
        self.media.input_channels()
    }

    fn handle(&mut self, input: MediaIn) -> Result<(), Error> {
        let now = Instant::now();
        match input {
            MediaIn::Datagram(at, from, datagram) => {
                self.queues.into_media.leave();
                self.session.handle_datagram(at.min(now), from, datagram);
            }
            MediaIn::Connected(g) if g == self.conn_gen => self.session.handle_connected(now),
            MediaIn::ControlBytes(g, b) if g == self.conn_gen => self.session.handle_control_bytes(now, &b),
            MediaIn::Disconnected(g) if g == self.conn_gen => self.session.handle_disconnected(now),
            MediaIn::ConnectFailed(g, reason) if g == self.conn_gen => {
                let _ = self.events.send(Event::ConnectFailed(reason));
                self.session.handle_disconnected(now);
            }
            MediaIn::Connected(_)
            | MediaIn::ControlBytes(..)
            | MediaIn::Disconnected(_)
            | MediaIn::ConnectFailed(..) => {}
            MediaIn::Command(c) => self.command(now, c)?,
        }
        Ok(())
    }

    fn command(&mut self, now: Instant, c: Command) -> Result<(), Error> {
        let s = &mut self.session;
        let result = match c {
            Command::Ptt(down) => {
                s.set_ptt(down);
                Ok(())
            }
            Command::Mute(m) => {
                s.set_muted(m);
                Ok(())
            }
            Command::Deafen(d) => {
                s.set_deafened(d);
                Ok(())
            }
            Command::TalkMode(m) => {
                s.set_talk_mode(m);
                Ok(())
            }
            Command::Join(room, pw) => s.join(&room, pw.as_deref()),
            Command::Leave => s.leave(),
            Command::ListRooms => {
                // A refresh: while not connected there is nothing to refresh, and nothing to report.
                let _ = s.list_rooms();
                Ok(())
            }
            Command::Chat(text) => s.send_chat(&text),
            Command::Whisper(t, members) => s.set_whisper(t, &members),
            Command::SelectWhisper(t) => {
                s.select_whisper_target(t);
                Ok(())
            }
            Command::Volume(id, v) => self.media.set_volume(id, v),
            Command::AddressChanged => {
                s.handle_local_address_changed(now);
                Ok(())
            }
            Command::Dump(dir) => self.media.set_dump(dir.as_deref()).map(|()| {
                let _ = self.events.send(Event::Dump { dir });
            }),
            Command::Stop => Ok(()),
        };
        if let Err(e) = result {
            // A refused request is the application's to hear about, not a reason to stop the client.
            let _ = self.events.send(Event::RequestRefused(e.to_string()));
        }
        Ok(())
    }

    /// Sends everything the session has queued.
    fn flush(&mut self) {
        while let Some(cmd) = self.session.poll_connection() {
            match cmd {
                ConnectionCommand::Connect => self.conn_gen += 1,
                // Bytes queued before a close belong to the closing connection (the Quit of `close`): write them
                // first. A new connection's bytes (Login, Resume) are only queued once it is up.
                ConnectionCommand::Close => {
                    while let Some(b) = self.session.poll_control_bytes() {
                        let _ = self.net.send(NetOut::Control(b));
                    }
                }
            }
            let _ = self.net.send(NetOut::Connection(cmd));
        }
        while let Some(b) = self.session.poll_control_bytes() {
            let _ = self.net.send(NetOut::Control(b));
        }
        while let Some(t) = self.session.poll_transmit() {
            if self.queues.into_net.enter() {
                let _ = self.net.send(NetOut::Transmit(t));
            }
        }
        while let Some(e) = self.session.poll_event() {
            let _ = self.events.send(e);
        }
    }

    fn finish(mut self) -> Result<(), Error> {
        self.session.close();
        self.flush();
        let _ = self.net.send(NetOut::Shutdown);
        Ok(())
    }
}
