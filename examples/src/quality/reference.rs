//! The offline reference: the same speech through libopus alone — encoded with the settings the stack should reach
//! (the room's bitrate, 20 ms frames, complexity 5, VBR; in-band FEC at the measured loss when packets are lost),
//! the same frames dropped, and decoded as a perfect receiver would: a lost frame whose successor arrived is decoded
//! from the successor's FEC, otherwise concealed by libopus's PLC. No network, no jitter buffer, no stretching:
//! the best the codec itself can deliver under those losses.

use anyhow::{Result, anyhow};
use audiopus::coder::{Decoder, Encoder};
use audiopus::packet::Packet;
use audiopus::{Application, Bitrate, Channels, MutSignals, SampleRate};

/// Frame length at 48 kHz (20 ms).
pub const FRAME: usize = 960;

/// Encoder settings of the reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefSettings {
    /// Target bitrate, bit/s.
    pub bitrate_bps: u32,
    /// In-band FEC on, with this expected loss in percent (0: FEC off).
    pub fec_loss_pct: u8,
}

/// Encodes `signal` (48 kHz mono) in 20 ms frames with `settings`: one Opus packet per frame.
pub fn encode(signal: &[f32], settings: RefSettings) -> Result<Vec<Vec<u8>>> {
    let err = |e: audiopus::Error| anyhow!("libopus: {e}");
    let mut enc = Encoder::new(SampleRate::Hz48000, Channels::Mono, Application::Voip).map_err(err)?;
    enc.set_bitrate(Bitrate::BitsPerSecond(settings.bitrate_bps as i32)).map_err(err)?;
    enc.set_complexity(5).map_err(err)?;
    enc.set_vbr(true).map_err(err)?;
    enc.set_inband_fec(settings.fec_loss_pct > 0).map_err(err)?;
    enc.set_packet_loss_perc(settings.fec_loss_pct.min(100)).map_err(err)?;
    let frames = signal.len().div_ceil(FRAME);
    let mut packets: Vec<Vec<u8>> = Vec::with_capacity(frames);
    let mut frame = [0.0f32; FRAME];
    let mut out = [0u8; 4_000];
    for k in 0..frames {
        frame.fill(0.0);
        let src = &signal[k * FRAME..((k + 1) * FRAME).min(signal.len())];
        frame[..src.len()].copy_from_slice(src);
        let n = enc.encode_float(&frame, &mut out).map_err(err)?;
        packets.push(out[..n].to_vec());
    }
    Ok(packets)
}

/// Decodes `packets` as a perfect receiver would when the frames marked in `lost` never arrived: a lost frame
/// whose successor arrived is decoded from the successor's in-band FEC (when `fec`), otherwise concealed by
/// libopus's PLC. Returns the audio (one frame per packet) and how many frames came from FEC and PLC.
pub fn decode(packets: &[Vec<u8>], lost: &[bool], fec: bool) -> Result<(Vec<f32>, usize, usize)> {
    let err = |e: audiopus::Error| anyhow!("libopus: {e}");
    let frames = packets.len();
    let mut dec = Decoder::new(SampleRate::Hz48000, Channels::Mono).map_err(err)?;
    let mut audio = vec![0.0f32; frames * FRAME];
    let (mut fec_frames, mut plc) = (0, 0);
    let is_lost = |k: usize| lost.get(k).copied().unwrap_or(false);
    for k in 0..frames {
        let slot = &mut audio[k * FRAME..(k + 1) * FRAME];
        let signals = MutSignals::try_from(slot).map_err(err)?;
        if !is_lost(k) {
            let packet = Packet::try_from(packets[k].as_slice()).map_err(err)?;
            dec.decode_float(Some(packet), signals, false).map_err(err)?;
        } else if fec && k + 1 < frames && !is_lost(k + 1) {
            let packet = Packet::try_from(packets[k + 1].as_slice()).map_err(err)?;
            dec.decode_float(Some(packet), signals, true).map_err(err)?;
            fec_frames += 1;
        } else {
            dec.decode_float(None, signals, false).map_err(err)?;
            plc += 1;
        }
    }
    Ok((audio, fec_frames, plc))
}

/// Matches the packets the listener's path saw (`observed`: (frame index from the media timestamp, Opus payload
/// bytes)) with an offline encoding of the same script: the stack's frames start at an unknown phase of the
/// script (its device delivers 10 ms chunks, a frame takes two) and at an unknown frame index. Every candidate
/// phase (0 or 10 ms of leading silence) and frame offset is tried; the one whose packet sizes follow the observed
/// sizes best (correlation of log sizes, VBR sizes follow the signal) wins. Returns (leading silence in samples,
/// offset such that offline frame `k` is observed frame `k + offset`).
pub fn match_phase(script: &[f32], observed: &[(i64, usize)], settings: RefSettings) -> Result<(usize, i64)> {
    let (mut best, mut best_c) = ((0, 0), f64::MIN);
    let obs: std::collections::HashMap<i64, f64> = observed.iter().map(|&(j, n)| (j, (n.max(1) as f64).ln())).collect();
    let (jmin, jmax) =
        (observed.iter().map(|o| o.0).min().unwrap_or(0), observed.iter().map(|o| o.0).max().unwrap_or(0));
    for lead in [0usize, FRAME / 2] {
        let mut signal = vec![0.0f32; lead];
        signal.extend_from_slice(script);
        let sizes: Vec<f64> = encode(&signal, settings)?.iter().map(|p| (p.len().max(1) as f64).ln()).collect();
        // The script's first frame lies somewhere within the observed range.
        for offset in jmin - 5..=jmax {
            let pairs: Vec<(f64, f64)> =
                sizes.iter().enumerate().filter_map(|(k, &s)| obs.get(&(k as i64 + offset)).map(|&o| (s, o))).collect();
            if pairs.len() < sizes.len() / 2 {
                continue;
            }
            let n = pairs.len() as f64;
            let (ma, mb) = (pairs.iter().map(|p| p.0).sum::<f64>() / n, pairs.iter().map(|p| p.1).sum::<f64>() / n);
            let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
            for (a, b) in &pairs {
                sab += (a - ma) * (b - mb);
                saa += (a - ma) * (a - ma);
                sbb += (b - mb) * (b - mb);
            }
            let c = sab / (saa * sbb).sqrt().max(1e-12);
            if c > best_c {
                best_c = c;
                best = (lead, offset);
            }
        }
    }
    if best_c < 0.5 {
        anyhow::bail!("could not match the listener's packets with the script (best size correlation {best_c:.2})");
    }
    Ok(best)
}
