//! The media layer: sound and pictures.
//!
//! Owns PCM audio and endpointing ([`audio`]), the speech providers' wire formats ([`speech`]),
//! what can be measured from a photo without a vision model ([`vision`]), WebRTC signalling over MQTT ([`signalling`]) and the voice session
//! with its wire protocol ([`voice`]). It never transcribes, synthesises or looks at anything
//! itself: it asks the shell to, and hears back.

pub mod audio;
pub mod signalling;
pub mod speech;
pub mod vision;
pub mod voice;
