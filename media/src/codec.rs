//! Opus in and out of a call: 48 kHz mono, 20 ms frames on the wire; 16 kHz s16le, the
//! Hub's voice format, on the other side.
//!
//! Owns the codec state (libopus, through the `opus` crate) and the two rate changes. It never
//! decides when to send or what a frame means: the peer paces, the Hub listens.

use axon_core::media::audio::SAMPLE_RATE as HUB_RATE;
use opus::{Application, Channels};

use crate::MediaError;

/// The rate on the wire (every WebRTC Opus track runs at 48 kHz).
pub const WIRE_RATE: u32 = 48_000;
/// Samples in one 20 ms frame on the wire.
pub const WIRE_FRAME: usize = (WIRE_RATE / 50) as usize;
/// Samples in one 20 ms frame at the Hub's rate.
pub const HUB_FRAME: usize = (HUB_RATE / 50) as usize;
const RATIO: usize = (WIRE_RATE / HUB_RATE) as usize;
/// The largest Opus packet we write (RFC 6716 allows 1275 bytes a frame).
const MAX_PACKET: usize = 1275;

/// The receiving side: Opus packets (or their loss) to 16 kHz PCM.
pub struct OpusIn {
    decoder: opus::Decoder,
    buf: Vec<i16>,
}

impl OpusIn {
    /// A decoder for a mono (or stereo, downmixed by libopus) 48 kHz track.
    pub fn new() -> Result<OpusIn, MediaError> {
        Ok(OpusIn {
            decoder: opus::Decoder::new(WIRE_RATE, Channels::Mono)?,
            // 120 ms, the longest Opus packet.
            buf: vec![0; WIRE_FRAME * 6],
        })
    }

    /// One packet's audio at 16 kHz.
    pub fn decode(&mut self, packet: &[u8]) -> Result<Vec<i16>, MediaError> {
        let n = self.decoder.decode(packet, &mut self.buf, false)?;
        Ok(decimate(&self.buf[..n]))
    }

    /// 20 ms that stand in for a lost packet (libopus's concealment, so a lost packet is a
    /// smooth guess, not a hole: the Hub's VAD and ASR hear the right length of speech).
    pub fn conceal(&mut self) -> Result<Vec<i16>, MediaError> {
        let n = self
            .decoder
            .decode(&[], &mut self.buf[..WIRE_FRAME], false)?;
        Ok(decimate(&self.buf[..n]))
    }
}

/// The sending side: 16 kHz PCM to 20 ms Opus packets.
pub struct OpusOut {
    encoder: opus::Encoder,
    /// 48 kHz samples not yet a whole frame.
    pending: Vec<i16>,
    /// The last 16 kHz sample, so that chunks join without a click.
    last: i16,
}

impl OpusOut {
    /// An encoder tuned for speech.
    pub fn new() -> Result<OpusOut, MediaError> {
        Ok(OpusOut {
            encoder: opus::Encoder::new(WIRE_RATE, Channels::Mono, Application::Voip)?,
            pending: Vec::with_capacity(WIRE_FRAME * 2),
            last: 0,
        })
    }

    /// Takes 16 kHz samples; returns the packets of every whole 20 ms frame now complete.
    pub fn push(&mut self, pcm16k: &[i16]) -> Result<Vec<Vec<u8>>, MediaError> {
        for &s in pcm16k {
            let (a, b) = (i32::from(self.last), i32::from(s));
            for k in 1..=RATIO as i32 {
                self.pending.push((a + (b - a) * k / RATIO as i32) as i16);
            }
            self.last = s;
        }
        let whole = self.pending.len() / WIRE_FRAME * WIRE_FRAME;
        let mut out = Vec::with_capacity(whole / WIRE_FRAME);
        for frame in self.pending[..whole].chunks_exact(WIRE_FRAME) {
            out.push(self.encoder.encode_vec(frame, MAX_PACKET)?);
        }
        self.pending.drain(..whole);
        Ok(out)
    }

    /// The last partial frame, padded with silence (at the end of an answer).
    pub fn finish(&mut self) -> Result<Option<Vec<u8>>, MediaError> {
        if self.pending.is_empty() {
            return Ok(None);
        }
        self.pending.resize(WIRE_FRAME, 0);
        let p = self.encoder.encode_vec(&self.pending, MAX_PACKET)?;
        self.pending.clear();
        self.last = 0;
        Ok(Some(p))
    }

    /// Drops what is pending (a barge-in: the rest of the answer is not sent).
    pub fn reset(&mut self) {
        self.pending.clear();
        self.last = 0;
    }
}

/// 48 kHz to 16 kHz: the mean of each three samples (a box filter, enough against aliasing
/// for speech recognition, which listens below 8 kHz).
pub fn decimate(pcm48k: &[i16]) -> Vec<i16> {
    pcm48k
        .chunks(RATIO)
        .map(|c| (c.iter().map(|&s| i32::from(s)).sum::<i32>() / c.len() as i32) as i16)
        .collect()
}

/// s16le bytes, the Hub's binary frame.
pub fn to_le_bytes(pcm: &[i16]) -> Vec<u8> {
    pcm.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// Samples from s16le bytes (an odd last byte is dropped).
pub fn from_le_bytes(bytes: &[u8]) -> Vec<i16> {
    bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axon_core::media::audio::level_dbfs;

    fn tone(ms: usize) -> Vec<i16> {
        (0..HUB_RATE as usize * ms / 1000)
            .map(|i| {
                let t = i as f64 / f64::from(HUB_RATE);
                (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16
            })
            .collect()
    }

    #[test]
    fn speech_survives_the_round_trip_at_its_length_and_level() {
        let input = tone(1000);
        let mut out = OpusOut::new().unwrap();
        let mut packets = Vec::new();
        // In uneven chunks, as the Hub sends them.
        for chunk in input.chunks(777) {
            packets.extend(out.push(chunk).unwrap());
        }
        packets.extend(out.finish().unwrap());
        assert_eq!(packets.len(), 50, "one packet per 20 ms");
        assert!(packets
            .iter()
            .all(|p| !p.is_empty() && p.len() <= MAX_PACKET));
        let mut inp = OpusIn::new().unwrap();
        let mut back = Vec::new();
        for p in &packets {
            back.extend(inp.decode(p).unwrap());
        }
        assert_eq!(back.len(), input.len());
        // The codec's delay shifts the signal; its level stays within 2 dB after warm-up.
        let (a, b) = (level_dbfs(&input[3200..]), level_dbfs(&back[3200..]));
        assert!((a - b).abs() < 2.0, "level {a} dBFS in, {b} dBFS out");
    }

    #[test]
    fn a_lost_packet_is_concealed_with_twenty_ms_of_audio() {
        let mut out = OpusOut::new().unwrap();
        let packets = out.push(&tone(200)).unwrap();
        let mut inp = OpusIn::new().unwrap();
        for p in &packets[..5] {
            inp.decode(p).unwrap();
        }
        let guess = inp.conceal().unwrap();
        assert_eq!(guess.len(), HUB_FRAME);
        assert!(level_dbfs(&guess) > -40.0, "concealment continues the tone");
    }

    #[test]
    fn garbage_is_an_opus_error_not_a_panic() {
        let mut inp = OpusIn::new().unwrap();
        // A TOC byte announcing code 3 with a frame count of zero: invalid.
        assert!(matches!(
            inp.decode(&[0x03, 0x00]),
            Err(MediaError::Opus(_))
        ));
    }

    #[test]
    fn a_barge_in_drops_the_pending_partial_frame() {
        let mut out = OpusOut::new().unwrap();
        assert!(out.push(&tone(10)).unwrap().is_empty());
        out.reset();
        assert!(out.finish().unwrap().is_none());
    }
}
