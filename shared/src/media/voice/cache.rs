//! The speech cache: the audio of sentences already spoken, so a repeated answer ("Kitchen lamp
//! is on.") is sent at once instead of waiting for TTS (docs/voice.md §1.4 "Speech cache").
//!
//! Owns the key (which provider, model and voice said which words) and the bound (least
//! recently used entries go first, by count and by samples held). It never synthesises,
//! never reads a clock and is not shared by itself: the Hub keeps one and asks it before each
//! `Synthesize`.

use std::collections::HashMap;

/// Entries kept at most.
pub const SPEECH_CACHE_ENTRIES: usize = 64;
/// Samples kept at most, all entries together: 2 minutes of 16 kHz speech (3.8 MB).
pub const SPEECH_CACHE_SAMPLES: usize = 16_000 * 120;

/// What a cached sentence is found by: the same words said by the same provider, model and
/// voice give the same audio. Spacing is not part of the words (the splitter's text may
/// carry a space or a new line either side); case and punctuation are (they change how it
/// is said).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpeechKey(String);

impl SpeechKey {
    /// The key of `text` said by `provider`'s `model` in `voice`.
    pub fn new(provider: &str, model: &str, voice: &str, text: &str) -> SpeechKey {
        let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
        // The parts are joined with a byte no name or sentence carries.
        SpeechKey(format!("{provider}\u{1f}{model}\u{1f}{voice}\u{1f}{words}"))
    }
}

#[derive(Debug)]
struct Entry {
    samples: Vec<i16>,
    used: u64,
}

/// A bounded LRU map from [`SpeechKey`] to 16 kHz mono samples.
#[derive(Debug)]
pub struct SpeechCache {
    entries: HashMap<SpeechKey, Entry>,
    max_entries: usize,
    max_samples: usize,
    held: usize,
    tick: u64,
    hits: u64,
    misses: u64,
}

impl Default for SpeechCache {
    fn default() -> Self {
        SpeechCache::new(SPEECH_CACHE_ENTRIES, SPEECH_CACHE_SAMPLES)
    }
}

impl SpeechCache {
    /// A cache of at most `max_entries` sentences and `max_samples` samples (0 entries: off).
    pub fn new(max_entries: usize, max_samples: usize) -> Self {
        SpeechCache {
            entries: HashMap::new(),
            max_entries,
            max_samples,
            held: 0,
            tick: 0,
            hits: 0,
            misses: 0,
        }
    }

    /// The audio for `key`, if it is held (it becomes the most recently used).
    pub fn get(&mut self, key: &SpeechKey) -> Option<Vec<i16>> {
        self.tick += 1;
        match self.entries.get_mut(key) {
            Some(e) => {
                e.used = self.tick;
                self.hits += 1;
                Some(e.samples.clone())
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    /// Keeps `samples` under `key`, dropping the least recently used entries to stay in the
    /// bound. Empty audio, and a sentence over a quarter of the bound (one long answer must not
    /// empty the cache), are not kept.
    pub fn put(&mut self, key: SpeechKey, samples: Vec<i16>) {
        if self.max_entries == 0 || samples.is_empty() || samples.len() > self.max_samples / 4 {
            return;
        }
        self.tick += 1;
        if let Some(old) = self.entries.remove(&key) {
            self.held -= old.samples.len();
        }
        while !self.entries.is_empty()
            && (self.entries.len() >= self.max_entries
                || self.held + samples.len() > self.max_samples)
        {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = self.entries.remove(&oldest) {
                self.held -= e.samples.len();
            }
        }
        self.held += samples.len();
        self.entries.insert(
            key,
            Entry {
                samples,
                used: self.tick,
            },
        );
    }

    /// Sentences held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Samples held, all entries together.
    pub fn samples(&self) -> usize {
        self.held
    }

    /// Lookups that found audio, and lookups that did not.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> SpeechKey {
        SpeechKey::new("local", "default", "amy", text)
    }

    #[test]
    fn the_same_words_in_the_same_voice_hit_and_anything_else_misses() {
        let mut c = SpeechCache::default();
        assert_eq!(c.get(&key("Kitchen lamp is on.")), None);
        c.put(key("Kitchen lamp is on."), vec![7; 1600]);
        assert_eq!(c.get(&key(" Kitchen lamp  is on.\n")), Some(vec![7; 1600]));
        for other in [
            key("Kitchen lamp is off."),
            key("kitchen lamp is on"),
            SpeechKey::new("local", "default", "ryan", "Kitchen lamp is on."),
            SpeechKey::new("openai", "default", "amy", "Kitchen lamp is on."),
            SpeechKey::new("local", "tts-1", "amy", "Kitchen lamp is on."),
        ] {
            assert_eq!(c.get(&other), None, "{other:?}");
        }
        assert_eq!(c.hits_and_misses(), (1, 6));
    }

    #[test]
    fn the_least_recently_used_goes_first_and_the_bound_holds() {
        let mut c = SpeechCache::new(3, 10_000);
        c.put(key("one"), vec![1; 1000]);
        c.put(key("two"), vec![2; 1000]);
        c.put(key("three"), vec![3; 1000]);
        assert!(c.get(&key("one")).is_some(), "one is now the most recent");
        c.put(key("four"), vec![4; 1000]);
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(&key("two")), None, "two was the least recently used");
        assert!(c.get(&key("one")).is_some() && c.get(&key("four")).is_some());

        // By samples: 2,500 more push out as many old entries as it takes.
        c.put(key("five"), vec![5; 2500]);
        assert!(c.samples() <= 10_000 && c.len() <= 3, "{c:?}");
        c.put(key("six"), vec![6; 2500]);
        c.put(key("seven"), vec![7; 2500]);
        assert_eq!(c.samples(), 7500);
        assert_eq!(c.get(&key("one")), None);
        // Too long to keep (over a quarter of the bound), empty, or a cache that is off.
        c.put(key("long"), vec![8; 2501]);
        c.put(key("empty"), vec![]);
        assert_eq!((c.get(&key("long")), c.get(&key("empty"))), (None, None));
        let mut off = SpeechCache::new(0, 10_000);
        off.put(key("one"), vec![1; 10]);
        assert!(off.is_empty());
        // The same key again replaces its audio and counts once.
        c.put(key("six"), vec![9; 100]);
        assert_eq!(c.get(&key("six")), Some(vec![9; 100]));
        assert_eq!(c.samples(), 5100);
    }
}
