//! What the demo's listeners heard, scored as a listener would be served: PESQ-WB (ITU-T P.862.2, the `pesq`
//! package that `cargo xtask demo` installs into `target/tools/pesq`) of every heard turn against what was said,
//! beside the same turns through libopus alone at the room's bitrate (no network, no loss): what the codec itself
//! can deliver.

use std::path::Path;

use anyhow::Result;

use crate::bots::audio::{MARKER_SAMPLES, Recording, TalkScript};
use crate::quality::{reference, score};

/// PESQ-WB of the demo.
#[derive(Clone, Debug, Default)]
pub struct Listening {
    /// Mean over (speaker, listener) pairs of the PESQ-WB of the heard turns.
    pub heard: Option<f64>,
    /// Mean over speakers of the PESQ-WB of their speech through offline libopus.
    pub reference: Option<f64>,
    /// Why there is no score, if there is none.
    pub note: Option<String>,
}

/// Scores the heard turns of every (speaker, listener) pair (`matched[s][l]`: the onset sample, in the listener's
/// recording, of each of speaker `s`'s turns, `None` if not heard).
pub fn score(
    heard: &[(TalkScript, Recording)],
    matched: &[Vec<Vec<Option<usize>>>],
    bitrate_bps: u32,
    dir: &Path,
    pesq_path: Option<&Path>,
) -> Result<Listening> {
    if !score::pesq_available(pesq_path) {
        return Ok(Listening {
            note: Some("python3 cannot import `pesq` (`cargo xtask demo` installs it into target/tools/pesq)".into()),
            ..Listening::default()
        });
    }
    let (mut pairs, mut refs) = (Vec::new(), Vec::new());
    for (s, (script, _)) in heard.iter().enumerate() {
        let speech = &script.turn[MARKER_SAMPLES..];
        let (mut said, mut got) = (Vec::new(), Vec::new());
        for (l, (_, listener)) in heard.iter().enumerate() {
            if l == s {
                continue;
            }
            for onset in matched[s][l].iter().flatten() {
                // The speech follows the marker; find it within ±40 ms of where the marker says it starts.
                let from = onset + MARKER_SAMPLES;
                let Some(at) =
                    score::locate(speech, 0, speech.len(), &listener.played, from.saturating_sub(1_920), from + 1_920)
                else {
                    continue;
                };
                let Some(h) = listener.played.get(at..at + speech.len()) else { continue };
                said.extend_from_slice(speech);
                got.extend_from_slice(h);
            }
        }
        if !said.is_empty() {
            let (r, d) = (dir.join(format!("pesq-{s}-said-turns.wav")), dir.join(format!("pesq-{s}-heard.wav")));
            score::write_wav16(&r, &score::to_16k(&said))?;
            score::write_wav16(&d, &score::to_16k(&got))?;
            pairs.push(score::Pair { reference: r, degraded: d });
        }
        // The codec alone: encode and decode the turn, no loss; the decoder's delay is found like the heard one's.
        let settings = reference::RefSettings { bitrate_bps, fec_loss_pct: 0 };
        let packets = reference::encode(speech, settings)?;
        let (decoded, ..) = reference::decode(&packets, &[], false)?;
        let mut padded = decoded;
        padded.extend(std::iter::repeat_n(0.0, 960));
        if let Some(at) = score::locate(speech, 0, speech.len(), &padded, 0, 960) {
            let (r, d) = (dir.join(format!("pesq-{s}-said.wav")), dir.join(format!("pesq-{s}-opus.wav")));
            score::write_wav16(&r, &score::to_16k(speech))?;
            score::write_wav16(&d, &score::to_16k(&padded[at..at + speech.len()]))?;
            refs.push(score::Pair { reference: r, degraded: d });
        }
    }
    let mean = |v: Vec<Option<f64>>| {
        let s: Vec<f64> = v.into_iter().flatten().collect();
        (!s.is_empty()).then(|| s.iter().sum::<f64>() / s.len() as f64)
    };
    Ok(Listening {
        heard: mean(score::pesq(&pairs, pesq_path)?),
        reference: mean(score::pesq(&refs, pesq_path)?),
        note: None,
    })
}
