//! Audio helpers for the voice loop: PCM frames, WAV files, resampling, and an energy voice
//! activity detector with endpointing (docs/protocol.md §8: s16le, mono, 16 kHz, frames in
//! multiples of 10 ms).
//!
//! Owns sample arithmetic only. It never captures, plays, or reads a clock: time is the
//! number of samples pushed, so the same input always gives the same events.

/// The voice loop's sample rate.
pub const SAMPLE_RATE: u32 = 16_000;
/// Samples in 10 ms at [`SAMPLE_RATE`]: the VAD's step and the frame granularity.
pub const SAMPLES_PER_10MS: usize = (SAMPLE_RATE / 100) as usize;

/// Why audio was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AudioError {
    /// A frame that is not whole 10 ms of s16le mono at 16 kHz.
    #[error(
        "an audio frame must be s16le mono 16 kHz in multiples of 10 ms (320 bytes); got {0} bytes"
    )]
    FrameSize(usize),
    /// Not a WAV file we can read.
    #[error("not a 16-bit PCM WAV file: {0}")]
    Wav(String),
    /// Not an MP3 we can read.
    #[error("not an MP3 with audio in it: {0}")]
    Mp3(String),
}

/// Reads one binary frame of s16le samples.
pub fn pcm_from_bytes(bytes: &[u8]) -> Result<Vec<i16>, AudioError> {
    if bytes.is_empty() || bytes.len() % (SAMPLES_PER_10MS * 2) != 0 {
        return Err(AudioError::FrameSize(bytes.len()));
    }
    Ok(bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect())
}

/// s16le bytes of `samples`.
pub fn pcm_to_bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// A decoded WAV file, mixed down to mono.
#[derive(Debug, Clone, PartialEq)]
pub struct Wav {
    /// Samples per second.
    pub sample_rate: u32,
    /// Mono samples.
    pub samples: Vec<i16>,
}

/// A 16-bit mono PCM WAV file.
pub fn wav_encode(samples: &[i16], sample_rate: u32) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(&(sample_rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    out.extend_from_slice(&pcm_to_bytes(samples));
    out
}

/// Reads a 16-bit PCM WAV (any rate, any channel count; mixed down to mono). Skips chunks it
/// does not need (`LIST`, `fact`), and stops at the data it has when a file lies about its
/// length (espeak-ng writes 0x7fffffff when it streams).
pub fn wav_decode(bytes: &[u8]) -> Result<Wav, AudioError> {
    let bad = |m: &str| AudioError::Wav(m.to_string());
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(bad("no RIFF/WAVE header"));
    }
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
    let u32_at =
        |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let mut i = 12;
    let mut format: Option<(u16, u16, u32, u16)> = None;
    while i + 8 <= bytes.len() {
        let id = &bytes[i..i + 4];
        let len = u32_at(i + 4) as usize;
        let body = i + 8;
        if id == b"fmt " {
            if body + 16 > bytes.len() {
                return Err(bad("short fmt chunk"));
            }
            format = Some((
                u16_at(body),
                u16_at(body + 2),
                u32_at(body + 4),
                u16_at(body + 14),
            ));
        } else if id == b"data" {
            let (tag, channels, rate, bits) = format.ok_or_else(|| bad("data before fmt"))?;
            if tag != 1 || bits != 16 {
                return Err(bad(&format!(
                    "format {tag} with {bits} bits (need PCM, 16 bits)"
                )));
            }
            if channels == 0 || rate == 0 {
                return Err(bad("zero channels or rate"));
            }
            let end = body.saturating_add(len).min(bytes.len());
            let frame = 2 * channels as usize;
            let samples = bytes[body..end]
                .chunks_exact(frame)
                .map(|f| {
                    let sum: i32 = f
                        .chunks_exact(2)
                        .map(|s| i32::from(i16::from_le_bytes([s[0], s[1]])))
                        .sum();
                    (sum / i32::from(channels)) as i16
                })
                .collect();
            return Ok(Wav {
                sample_rate: rate,
                samples,
            });
        }
        i = body.saturating_add(len + (len & 1));
    }
    Err(bad("no data chunk"))
}

/// True when `bytes` start like an MP3: an ID3v2 tag, or an MPEG audio frame header (11 sync
/// bits).
pub fn looks_like_mp3(bytes: &[u8]) -> bool {
    bytes.starts_with(b"ID3") || (bytes.len() > 1 && bytes[0] == 0xFF && bytes[1] & 0xE0 == 0xE0)
}

/// Decodes an MP3 into mono samples (channels averaged) and its sample rate.
pub fn mp3_decode(bytes: &[u8]) -> Result<Wav, AudioError> {
    let decoded = nanomp3::decode_all::<i16>(bytes);
    let channels = match decoded.channels {
        Some(nanomp3::Channels::Mono) => 1,
        Some(nanomp3::Channels::Stereo) => 2,
        None if decoded.samples.is_empty() => {
            return Err(AudioError::Mp3(format!(
                "no MPEG audio frames in {} bytes",
                bytes.len()
            )))
        }
        None => {
            return Err(AudioError::Mp3(
                "the stream switched between mono and stereo".into(),
            ))
        }
    };
    let samples = if channels == 1 {
        decoded.samples
    } else {
        decoded
            .samples
            .chunks_exact(2)
            .map(|lr| ((i32::from(lr[0]) + i32::from(lr[1])) / 2) as i16)
            .collect()
    };
    Ok(Wav {
        samples,
        sample_rate: decoded.sample_rate,
    })
}

/// Linear-interpolation resampling (enough for speech into ASR; not for music).
pub fn resample(samples: &[i16], from: u32, to: u32) -> Vec<i16> {
    if from == to || samples.is_empty() || from == 0 || to == 0 {
        return samples.to_vec();
    }
    let n = (samples.len() as u64 * u64::from(to) / u64::from(from)) as usize;
    let step = f64::from(from) / f64::from(to);
    (0..n)
        .map(|k| {
            let x = k as f64 * step;
            let i = x as usize;
            let frac = x - i as f64;
            let a = f64::from(samples[i.min(samples.len() - 1)]);
            let b = f64::from(samples[(i + 1).min(samples.len() - 1)]);
            (a + (b - a) * frac).round() as i16
        })
        .collect()
}

/// Level of a stretch of samples in dB relative to full scale (-100 for silence).
pub fn level_dbfs(samples: &[i16]) -> f32 {
    if samples.is_empty() {
        return -100.0;
    }
    let mean_square = samples
        .iter()
        .map(|&s| f64::from(s) * f64::from(s))
        .sum::<f64>()
        / samples.len() as f64;
    if mean_square <= 0.0 {
        return -100.0;
    }
    (10.0 * (mean_square / (32768.0 * 32768.0)).log10()).max(-100.0) as f32
}

/// Whether a stretch chosen by hand (a push-to-talk press) holds speech by the VAD's absolute
/// floor: at least `min_speech_ms` of 10 ms steps louder than `min_speech_dbfs`. The adaptive
/// floor has no say here: nobody waited for the room to be learnt.
pub fn has_speech(samples: &[i16], config: &VadConfig) -> bool {
    let needed = (config.min_speech_ms / 10).max(1) as usize;
    samples
        .chunks_exact(SAMPLES_PER_10MS)
        .filter(|step| level_dbfs(step) > config.min_speech_dbfs)
        .count()
        >= needed
}

/// How the VAD decides.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadConfig {
    /// Silence that ends an utterance (the endpointing delay). Axon's default: 400 ms.
    pub silence_ms: u32,
    /// Silence after which the VAD says the speaker has paused ([`VadEvent::Paused`]), so
    /// that ASR can start before the endpoint; 0 (or not under `silence_ms`): never.
    pub pause_ms: u32,
    /// Speech needed before an utterance starts (clicks and pops are shorter).
    pub min_speech_ms: u32,
    /// How far above the noise floor speech must be.
    pub margin_db: f32,
    /// Speech is never quieter than this, however quiet the room.
    pub min_speech_dbfs: f32,
    /// An utterance longer than this ends anyway (a noise that came on suddenly and stayed is
    /// then taken as the new floor), so the VAD never stays in speech for good.
    pub max_speech_ms: u32,
}

impl Default for VadConfig {
    fn default() -> Self {
        VadConfig {
            silence_ms: 400,
            pause_ms: 200,
            min_speech_ms: 100,
            margin_db: 12.0,
            min_speech_dbfs: -45.0,
            max_speech_ms: 30_000,
        }
    }
}

/// What the VAD noticed, in milliseconds of audio since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadEvent {
    /// Someone started speaking (at the start of the speech, not when it was confirmed):
    /// during playback this is a barge-in.
    SpeechStarted {
        /// When the speech began.
        at_ms: u64,
    },
    /// `pause_ms` of silence in an utterance: it may be over. A `SpeechEnded` that follows
    /// with no `Paused` between ends the utterance as it was here (the speech did not resume).
    Paused {
        /// When the silence reached `pause_ms`.
        at_ms: u64,
    },
    /// Speech went on after a `Paused` in the same utterance (the pause was not its end).
    Resumed {
        /// When the speech went on.
        at_ms: u64,
    },
    /// The utterance ended: `silence_ms` of silence followed it.
    SpeechEnded {
        /// When the silence was long enough (the endpoint).
        at_ms: u64,
        /// How long the speech lasted, without the trailing silence.
        speech_ms: u64,
    },
}

/// An energy VAD with an adaptive noise floor and endpointing, 10 ms at a time.
#[derive(Debug, Clone)]
pub struct Vad {
    config: VadConfig,
    noise_db: f32,
    pos_ms: u64,
    run_ms: u64,
    silence_ms: u64,
    started_ms: Option<u64>,
    carry: Vec<i16>,
}

impl Vad {
    /// A VAD; the noise floor starts low and adapts during non-speech.
    pub fn new(config: VadConfig) -> Self {
        Vad {
            config,
            noise_db: -70.0,
            pos_ms: 0,
            run_ms: 0,
            silence_ms: 0,
            started_ms: None,
            carry: Vec::new(),
        }
    }

    /// Whether an utterance is under way.
    pub fn in_speech(&self) -> bool {
        self.started_ms.is_some()
    }

    /// The current noise floor estimate.
    pub fn noise_dbfs(&self) -> f32 {
        self.noise_db
    }

    /// Feeds samples (any count; whole 10 ms steps are judged, the rest waits).
    pub fn push(&mut self, samples: &[i16]) -> Vec<VadEvent> {
        self.carry.extend_from_slice(samples);
        let mut out = Vec::new();
        let whole = self.carry.len() / SAMPLES_PER_10MS * SAMPLES_PER_10MS;
        let steps: Vec<i16> = self.carry.drain(..whole).collect();
        for step in steps.chunks_exact(SAMPLES_PER_10MS) {
            self.pos_ms += 10;
            let level = level_dbfs(step);
            let threshold =
                (self.noise_db + self.config.margin_db).max(self.config.min_speech_dbfs);
            // The floor follows the room while nobody speaks: down fast, up slowly (~1 s),
            // so a fan that comes on is learnt and a word is not.
            if self.started_ms.is_none() {
                let alpha = if level < self.noise_db { 0.1 } else { 0.01 };
                self.noise_db += (level - self.noise_db) * alpha;
            }
            if level > threshold {
                self.run_ms += 10;
                let pause = u64::from(self.config.pause_ms);
                if self.started_ms.is_some()
                    && pause > 0
                    && pause < u64::from(self.config.silence_ms)
                    && self.silence_ms >= pause
                {
                    out.push(VadEvent::Resumed {
                        at_ms: self.pos_ms - 10,
                    });
                }
                self.silence_ms = 0;
                if self.started_ms.is_none() && self.run_ms >= u64::from(self.config.min_speech_ms)
                {
                    let at_ms = self.pos_ms - self.run_ms;
                    self.started_ms = Some(at_ms);
                    out.push(VadEvent::SpeechStarted { at_ms });
                }
                if let Some(start) = self.started_ms {
                    if self.pos_ms - start >= u64::from(self.config.max_speech_ms) {
                        self.started_ms = None;
                        self.run_ms = 0;
                        self.noise_db = level;
                        out.push(VadEvent::SpeechEnded {
                            at_ms: self.pos_ms,
                            speech_ms: self.pos_ms - start,
                        });
                    }
                }
            } else {
                self.run_ms = 0;
                if let Some(start) = self.started_ms {
                    self.silence_ms += 10;
                    let pause = u64::from(self.config.pause_ms);
                    if pause > 0
                        && self.silence_ms == pause
                        && pause < u64::from(self.config.silence_ms)
                    {
                        out.push(VadEvent::Paused { at_ms: self.pos_ms });
                    }
                    if self.silence_ms >= u64::from(self.config.silence_ms) {
                        self.started_ms = None;
                        out.push(VadEvent::SpeechEnded {
                            at_ms: self.pos_ms,
                            speech_ms: self.pos_ms - self.silence_ms - start,
                        });
                        self.silence_ms = 0;
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speech_is_a_tenth_of_a_second_over_the_floor() {
        let config = VadConfig::default();
        let tone = |ms: usize, amp: f32| -> Vec<i16> {
            (0..ms * 16)
                .map(|i| ((i as f32 * 0.3).sin() * amp) as i16)
                .collect()
        };
        assert!(!has_speech(&vec![0; 16_000], &config), "silence");
        assert!(
            !has_speech(&tone(1000, 100.0), &config),
            "faint noise, about -53 dBFS"
        );
        assert!(
            !has_speech(&tone(90, 8000.0), &config),
            "a click is shorter than 100 ms"
        );
        let mut press = vec![0; 8000];
        press.extend(tone(100, 8000.0));
        assert!(
            has_speech(&press, &config),
            "100 ms of a word in a quiet press"
        );
    }

    fn tone(ms: u32, dbfs: f32, hz: f32) -> Vec<i16> {
        let amp = 32767.0 * 10f32.powf(dbfs / 20.0) * std::f32::consts::SQRT_2;
        (0..(SAMPLE_RATE * ms / 1000))
            .map(|i| {
                (amp * (2.0 * std::f32::consts::PI * hz * i as f32 / SAMPLE_RATE as f32).sin())
                    as i16
            })
            .collect()
    }

    fn noise(ms: u32, dbfs: f32, seed: &mut u32) -> Vec<i16> {
        let amp = 32767.0 * 10f32.powf(dbfs / 20.0) * 1.7;
        (0..(SAMPLE_RATE * ms / 1000))
            .map(|_| {
                *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((*seed >> 16) as f32 / 65535.0 * 2.0 - 1.0) * amp
            })
            .map(|v| v as i16)
            .collect()
    }

    fn run(vad: &mut Vad, audio: &[i16], frame_ms: usize) -> Vec<VadEvent> {
        audio
            .chunks(SAMPLES_PER_10MS * frame_ms / 10)
            .flat_map(|f| vad.push(f))
            .collect()
    }

    #[test]
    fn an_utterance_is_found_and_ends_after_the_configured_silence() {
        let mut seed = 7;
        let mut audio = noise(500, -65.0, &mut seed);
        audio.extend(tone(800, -20.0, 220.0));
        audio.extend(noise(1000, -65.0, &mut seed));
        for (silence, frame_ms) in [(400, 20), (250, 30), (600, 10)] {
            let mut vad = Vad::new(VadConfig {
                silence_ms: silence,
                ..VadConfig::default()
            });
            let events = run(&mut vad, &audio, frame_ms);
            assert_eq!(
                events,
                vec![
                    VadEvent::SpeechStarted { at_ms: 500 },
                    VadEvent::Paused { at_ms: 1500 },
                    VadEvent::SpeechEnded {
                        at_ms: 1300 + u64::from(silence),
                        speech_ms: 800
                    },
                ],
                "silence {silence} ms, frames of {frame_ms} ms"
            );
        }
        // No pause when it is off, or when it would not come before the endpoint.
        for (silence, pause) in [(400, 0), (200, 200), (150, 200)] {
            let mut vad = Vad::new(VadConfig {
                silence_ms: silence,
                pause_ms: pause,
                ..VadConfig::default()
            });
            let events = run(&mut vad, &audio, 20);
            assert!(
                !events.iter().any(|e| matches!(e, VadEvent::Paused { .. })),
                "silence {silence}, pause {pause}: {events:?}"
            );
        }
    }

    #[test]
    fn a_pause_in_the_middle_of_an_utterance_is_reported_and_the_utterance_goes_on() {
        let mut seed = 11;
        let mut audio = noise(300, -65.0, &mut seed);
        audio.extend(tone(600, -20.0, 220.0));
        audio.extend(noise(300, -65.0, &mut seed)); // "set the bedroom thermostat … to 21"
        audio.extend(tone(400, -20.0, 260.0));
        audio.extend(noise(800, -65.0, &mut seed));
        let events = run(&mut Vad::new(VadConfig::default()), &audio, 20);
        assert_eq!(
            events,
            vec![
                VadEvent::SpeechStarted { at_ms: 300 },
                VadEvent::Paused { at_ms: 1100 },
                VadEvent::Resumed { at_ms: 1200 },
                VadEvent::Paused { at_ms: 1800 },
                VadEvent::SpeechEnded {
                    at_ms: 2000,
                    speech_ms: 1300
                },
            ]
        );
    }

    #[test]
    fn clicks_are_not_speech_and_the_floor_follows_a_noisy_room() {
        let mut seed = 3;
        let mut vad = Vad::new(VadConfig::default());
        let mut audio = noise(300, -60.0, &mut seed);
        audio.extend(tone(40, -10.0, 1000.0)); // a click: shorter than min_speech_ms
        for step in 0..40 {
            // A fan spins up over 4 s, from -60 to -35 dBFS.
            audio.extend(noise(100, -60.0 + 25.0 * step as f32 / 40.0, &mut seed));
        }
        audio.extend(noise(1000, -35.0, &mut seed));
        assert!(run(&mut vad, &audio, 20).is_empty());
        assert!(vad.noise_dbfs() > -40.0, "floor {}", vad.noise_dbfs());
        // Speech well above the fan still counts.
        let events = run(&mut vad, &tone(500, -12.0, 300.0), 20);
        assert!(matches!(events[..], [VadEvent::SpeechStarted { .. }]));
        assert!(vad.in_speech());
    }

    #[test]
    fn a_noise_that_comes_on_at_once_cannot_hold_the_vad_in_speech() {
        let mut seed = 5;
        let mut vad = Vad::new(VadConfig {
            max_speech_ms: 2000,
            ..VadConfig::default()
        });
        let mut audio = noise(300, -65.0, &mut seed);
        audio.extend(noise(5000, -30.0, &mut seed)); // a vacuum cleaner, switched on
        let events = run(&mut vad, &audio, 20);
        assert!(
            matches!(
                events[..],
                [
                    VadEvent::SpeechStarted { at_ms: 300 },
                    VadEvent::SpeechEnded {
                        speech_ms: 2000,
                        ..
                    }
                ]
            ),
            "{events:?}"
        );
        assert!(!vad.in_speech());
        // Speech over the vacuum cleaner is found again.
        let events = run(&mut vad, &tone(500, -10.0, 200.0), 20);
        assert!(
            matches!(events[..], [VadEvent::SpeechStarted { .. }]),
            "{events:?}"
        );
    }

    #[test]
    fn frames_and_wav_files_round_trip_and_bad_ones_are_refused() {
        let samples = tone(100, -6.0, 440.0);
        assert_eq!(pcm_from_bytes(&pcm_to_bytes(&samples)).unwrap(), samples);
        assert_eq!(pcm_from_bytes(&[0; 321]), Err(AudioError::FrameSize(321)));
        assert_eq!(pcm_from_bytes(&[]), Err(AudioError::FrameSize(0)));
        let wav = wav_decode(&wav_encode(&samples, SAMPLE_RATE)).unwrap();
        assert_eq!((wav.sample_rate, wav.samples), (SAMPLE_RATE, samples));
        assert!(wav_decode(b"RIFF\0\0\0\0WAVEjunk").is_err());
        assert!(wav_decode(b"hello").is_err());
        // A streamed file (length 0x7fffffff) and a stereo one.
        let mut streamed = wav_encode(&[1, 2, 3, 4], 22_050);
        streamed[40..44].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
        assert_eq!(wav_decode(&streamed).unwrap().samples, vec![1, 2, 3, 4]);
        let mut stereo = wav_encode(&[10, 30, -10, -30], 8000);
        stereo[22] = 2; // channels
        assert_eq!(wav_decode(&stereo).unwrap().samples, vec![20, -20]);
    }

    #[test]
    fn resampling_keeps_duration_and_level() {
        let at48 = {
            let amp = 10000.0;
            (0..48_000)
                .map(|i| {
                    (amp * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 48_000.0).sin()) as i16
                })
                .collect::<Vec<_>>()
        };
        let at16 = resample(&at48, 48_000, 16_000);
        assert_eq!(at16.len(), 16_000);
        assert!((level_dbfs(&at16) - level_dbfs(&at48)).abs() < 0.5);
        assert_eq!(resample(&at16, 16_000, 16_000), at16);
        assert_eq!(level_dbfs(&[0; 160]), -100.0);
    }
}
