//! What can be measured from a photo without a vision model.
//!
//! Owns reading an image's facts: format, size and mean brightness (0–100 %, with a word for
//! it), from JPEG bytes (decoded at 1/8 scale: the DCT's DC terms are the block means, so the
//! mean is the same as at full size, at a 64th of the work and memory) or from PNG bytes (size
//! only: inflating a PNG would cost a decompressor in every bundle, and the devices send
//! JPEG). Also the honest offline answer built from those facts (docs/voice.md §5).
//!
//! Never panics on what a device or a person sends: truncated, garbage or oversized input is
//! a [`VisionError`] naming what was wrong and the limit. Pure: bytes in, facts out.

use base64::Engine as _;

/// Pixels as megapixels to one decimal ("25.0"), in integer arithmetic: `{:.1}` on an `f64`
/// would put core's float formatting (~10 KB of wasm) into every page whose errors can show
/// this one, the virtual device's included.
fn megapixels(pixels: u64) -> String {
    let tenths = (pixels + 50_000) / 100_000;
    format!("{}.{}", tenths / 10, tenths % 10)
}

/// The largest image measured, in pixels (8 MP): above it the pixels are not decoded.
pub const MAX_PIXELS: u64 = 8_000_000;
/// The largest encoded image measured, in bytes.
pub const MAX_BYTES: usize = 16 * 1024 * 1024;

/// What the offline answer says first: there is no model to say what is in the picture.
pub const NO_VISION_MODEL: &str =
    "No vision model is configured, so I can't say what is in the picture.";

/// An image format Axon can read the facts of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// JPEG (JFIF/EXIF), baseline or progressive.
    Jpeg,
    /// PNG (size only).
    Png,
}

impl ImageFormat {
    /// `JPEG` or `PNG`, as people write it.
    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "JPEG",
            ImageFormat::Png => "PNG",
        }
    }
}

/// What was measured.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFacts {
    /// The format.
    pub format: ImageFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Mean brightness (luma, Rec. 601), 0–100 %; `None` where it was not measured (PNG).
    pub brightness_pct: Option<f64>,
    /// Encoded size in bytes.
    pub bytes: usize,
}

impl ImageFacts {
    /// A word for the brightness, if measured.
    pub fn brightness_word(&self) -> Option<&'static str> {
        self.brightness_pct.map(brightness_word)
    }

    /// `640×480 JPEG, average brightness 52 %, well lit`.
    pub fn describe(&self) -> String {
        let mut s = format!("{}×{} {}", self.width, self.height, self.format.name());
        match self.brightness_pct {
            Some(b) => s.push_str(&format!(
                ", average brightness {:.0} %, {}",
                b,
                brightness_word(b)
            )),
            None => s.push_str(", brightness not measured"),
        }
        s
    }
}

/// A word for a mean brightness in percent.
pub fn brightness_word(pct: f64) -> &'static str {
    match pct {
        p if p < 10.0 => "very dark",
        p if p < 30.0 => "dark",
        p if p < 45.0 => "dim",
        p if p < 75.0 => "well lit",
        p if p < 90.0 => "bright",
        _ => "very bright",
    }
}

/// Why an image's facts could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum VisionError {
    /// Nothing to read.
    #[error("the image is empty")]
    Empty,
    /// The base64 text is not base64.
    #[error("the image is not valid base64: {0}")]
    Base64(String),
    /// Not a `data:image/...;base64,` URL.
    #[error("not a data:image/...;base64, URL: {0}")]
    NotDataUrl(String),
    /// Neither JPEG nor PNG.
    #[error("the image is neither JPEG nor PNG (it starts with {0})")]
    UnknownFormat(String),
    /// The encoded image is too big to look at.
    #[error("the image is {size} bytes, over the {limit} byte limit")]
    TooManyBytes {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Too many pixels to decode.
    #[error(
        "the image is {width}×{height} ({} MP), over the {} MP limit",
        megapixels(u64::from(*width) * u64::from(*height)),
        limit / 1_000_000
    )]
    TooManyPixels {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// The limit in pixels.
        limit: u64,
    },
    /// The bytes look like the format but do not decode.
    #[error("the {format} cannot be decoded: {reason}")]
    Corrupt {
        /// `JPEG` or `PNG`.
        format: &'static str,
        /// The decoder's words.
        reason: String,
    },
}

/// The facts of an encoded image.
pub fn measure(bytes: &[u8]) -> Result<ImageFacts, VisionError> {
    if bytes.is_empty() {
        return Err(VisionError::Empty);
    }
    if bytes.len() > MAX_BYTES {
        return Err(VisionError::TooManyBytes {
            size: bytes.len(),
            limit: MAX_BYTES,
        });
    }
    if bytes.starts_with(&[0xFF, 0xD8]) {
        return measure_jpeg(bytes);
    }
    if bytes.starts_with(PNG_SIGNATURE) {
        return measure_png(bytes);
    }
    let head: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
    Err(VisionError::UnknownFormat(format!(
        "bytes {}",
        head.join(" ")
    )))
}

/// The facts of a base64 image (an MCP image content block's `data`).
pub fn measure_base64(data: &str) -> Result<ImageFacts, VisionError> {
    // Refuse before decoding, so a huge string costs no allocation.
    let approx = data.len() / 4 * 3;
    if approx > MAX_BYTES {
        return Err(VisionError::TooManyBytes {
            size: approx,
            limit: MAX_BYTES,
        });
    }
    // Some encoders wrap lines; MCP says plain base64, but whitespace is harmless to drop.
    let compact: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| VisionError::Base64(e.to_string()))?;
    measure(&bytes)
}

/// `data:{mime};base64,{data}`, the URL an OpenAI `image_url` content part takes.
pub fn data_url(mime_type: &str, base64_data: &str) -> String {
    format!("data:{mime_type};base64,{base64_data}")
}

/// The MIME type and base64 data of a `data:image/...;base64,` URL.
pub fn parse_data_url(url: &str) -> Result<(&str, &str), VisionError> {
    let not = || VisionError::NotDataUrl(url.chars().take(40).collect());
    let rest = url.strip_prefix("data:").ok_or_else(not)?;
    let (head, data) = rest.split_once(',').ok_or_else(not)?;
    let mime = head.strip_suffix(";base64").ok_or_else(not)?;
    if !mime.starts_with("image/") {
        return Err(not());
    }
    Ok((mime, data))
}

/// The offline answer for the images of a turn, each with what came of measuring it
/// (docs/voice.md §5): it says there is no vision model, then reports only what was measured,
/// labelled as such.
pub fn offline_answer(images: &[(String, Result<ImageFacts, VisionError>)]) -> String {
    let fact = |r: &Result<ImageFacts, VisionError>| match r {
        Ok(f) => f.describe(),
        Err(e) => format!("nothing could be measured ({e})"),
    };
    match images {
        [] => NO_VISION_MODEL.to_string(),
        [(_, one)] => format!("{NO_VISION_MODEL} Measured from the image: {}.", fact(one)),
        many => {
            let parts: Vec<String> = many
                .iter()
                .map(|(label, r)| format!("{label}: {}", fact(r)))
                .collect();
            format!(
                "{NO_VISION_MODEL} Measured from the images: {}.",
                parts.join("; ")
            )
        }
    }
}

const PNG_SIGNATURE: &[u8] = &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

fn check_pixels(width: u32, height: u32) -> Result<(), VisionError> {
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(VisionError::TooManyPixels {
            width,
            height,
            limit: MAX_PIXELS,
        });
    }
    Ok(())
}

fn measure_png(bytes: &[u8]) -> Result<ImageFacts, VisionError> {
    let corrupt = |reason: &str| VisionError::Corrupt {
        format: "PNG",
        reason: reason.into(),
    };
    // The signature, then the IHDR chunk: length 13, "IHDR", width, height (big-endian).
    let ihdr = bytes
        .get(8..24)
        .ok_or_else(|| corrupt("it ends before its header"))?;
    if &ihdr[4..8] != b"IHDR" {
        return Err(corrupt("the first chunk is not IHDR"));
    }
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let (width, height) = (be(&ihdr[8..12]), be(&ihdr[12..16]));
    if width == 0 || height == 0 {
        return Err(corrupt("its width or height is 0"));
    }
    check_pixels(width, height)?;
    Ok(ImageFacts {
        format: ImageFormat::Png,
        width,
        height,
        brightness_pct: None,
        bytes: bytes.len(),
    })
}

fn measure_jpeg(bytes: &[u8]) -> Result<ImageFacts, VisionError> {
    let corrupt = |e: jpeg_decoder::Error| VisionError::Corrupt {
        format: "JPEG",
        reason: e.to_string(),
    };
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    decoder.read_info().map_err(corrupt)?;
    let info = decoder.info().ok_or_else(|| VisionError::Corrupt {
        format: "JPEG",
        reason: "no frame header".into(),
    })?;
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    check_pixels(width, height)?;
    // Ask for 1/8 scale (the smallest the decoder offers); the mean is unchanged.
    decoder
        .scale(
            info.width.div_ceil(8).max(1),
            info.height.div_ceil(8).max(1),
        )
        .map_err(corrupt)?;
    // A progressive JPEG holds every coefficient until its last scan; this bounds it.
    decoder.set_max_decoding_buffer_size(MAX_PIXELS as usize * 4);
    let pixels = decoder.decode().map_err(corrupt)?;
    let luma = mean_luma(&pixels, info.pixel_format).ok_or_else(|| VisionError::Corrupt {
        format: "JPEG",
        reason: "it decoded to no pixels".into(),
    })?;
    Ok(ImageFacts {
        format: ImageFormat::Jpeg,
        width,
        height,
        brightness_pct: Some(luma * 100.0),
        bytes: bytes.len(),
    })
}

/// Mean luma, 0.0–1.0, of decoded pixels; `None` for no pixels.
fn mean_luma(pixels: &[u8], format: jpeg_decoder::PixelFormat) -> Option<f64> {
    use jpeg_decoder::PixelFormat;
    let (sum, n): (f64, usize) = match format {
        PixelFormat::L8 => (
            pixels.iter().map(|&p| f64::from(p) / 255.0).sum(),
            pixels.len(),
        ),
        PixelFormat::L16 => {
            let px = pixels.chunks_exact(2);
            let n = px.len();
            (
                px.map(|p| f64::from(u16::from_be_bytes([p[0], p[1]])) / 65535.0)
                    .sum(),
                n,
            )
        }
        PixelFormat::RGB24 => {
            let px = pixels.chunks_exact(3);
            let n = px.len();
            (px.map(|p| rec601(p[0], p[1], p[2])).sum(), n)
        }
        PixelFormat::CMYK32 => {
            // The decoder gives CMYK as stored (Adobe's inverted convention): 255 is no ink.
            let px = pixels.chunks_exact(4);
            let n = px.len();
            let rgb = |c: u8, k: u8| ((u16::from(c) * u16::from(k)) / 255) as u8;
            (
                px.map(|p| rec601(rgb(p[0], p[3]), rgb(p[1], p[3]), rgb(p[2], p[3])))
                    .sum(),
                n,
            )
        }
    };
    (n > 0).then(|| sum / n as f64)
}

fn rec601(r: u8, g: u8, b: u8) -> f64 {
    (0.299 * f64::from(r) + 0.587 * f64::from(g) + 0.114 * f64::from(b)) / 255.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn megapixels_round_to_a_tenth() {
        assert_eq!(megapixels(25_000_000), "25.0");
        assert_eq!(megapixels(8_294_400), "8.3"); // 3840×2160
        assert_eq!(megapixels(8_249_999), "8.2");
        assert_eq!(megapixels(0), "0.0");
    }

    /// A JPEG of `w`×`h` whose pixels are `f(x, y)` (RGB).
    fn jpeg(w: u16, h: u16, f: impl Fn(u16, u16) -> [u8; 3]) -> Vec<u8> {
        let mut px = Vec::with_capacity(usize::from(w) * usize::from(h) * 3);
        for y in 0..h {
            for x in 0..w {
                px.extend_from_slice(&f(x, y));
            }
        }
        let mut out = Vec::new();
        jpeg_encoder::Encoder::new(&mut out, 90)
            .encode(&px, w, h, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        out
    }

    #[test]
    fn a_grey_jpeg_measures_its_size_and_brightness() {
        let f = measure(&jpeg(640, 480, |_, _| [128, 128, 128])).unwrap();
        assert_eq!((f.format, f.width, f.height), (ImageFormat::Jpeg, 640, 480));
        let b = f.brightness_pct.unwrap();
        assert!((b - 50.2).abs() < 1.0, "{b}");
        assert_eq!(
            f.describe(),
            "640×480 JPEG, average brightness 50 %, well lit"
        );
    }

    #[test]
    fn dark_bright_and_gradient_images_get_the_right_words() {
        let dark = measure(&jpeg(64, 48, |_, _| [20, 20, 20])).unwrap();
        assert_eq!(dark.brightness_word(), Some("very dark"));
        let bright = measure(&jpeg(64, 48, |_, _| [240, 240, 240])).unwrap();
        assert_eq!(bright.brightness_word(), Some("very bright"));
        // Half black, half white: 50 % whatever the block boundaries.
        let split = measure(&jpeg(
            160,
            120,
            |x, _| if x < 80 { [0; 3] } else { [255; 3] },
        ))
        .unwrap();
        assert!(
            (split.brightness_pct.unwrap() - 50.0).abs() < 1.5,
            "{split:?}"
        );
        // Pure red is dark to the eye (Rec. 601: 29.9 %).
        let red = measure(&jpeg(32, 32, |_, _| [255, 0, 0])).unwrap();
        assert!((red.brightness_pct.unwrap() - 29.9).abs() < 2.0, "{red:?}");
        // Odd sizes (not a multiple of 8) still measure.
        let odd = measure(&jpeg(13, 7, |_, _| [100, 100, 100])).unwrap();
        assert_eq!((odd.width, odd.height), (13, 7));
        assert!((odd.brightness_pct.unwrap() - 39.2).abs() < 1.5, "{odd:?}");
    }

    #[test]
    fn png_gives_its_size_only() {
        let mut png = PNG_SIGNATURE.to_vec();
        png.extend_from_slice(&[0, 0, 0, 13]);
        png.extend_from_slice(b"IHDR");
        png.extend_from_slice(&320u32.to_be_bytes());
        png.extend_from_slice(&200u32.to_be_bytes());
        png.extend_from_slice(&[8, 2, 0, 0, 0]);
        let f = measure(&png).unwrap();
        assert_eq!((f.format, f.width, f.height), (ImageFormat::Png, 320, 200));
        assert_eq!(f.describe(), "320×200 PNG, brightness not measured");
        // 5000×5000 is over the cap, and the message says so.
        png[16..20].copy_from_slice(&5000u32.to_be_bytes());
        png[20..24].copy_from_slice(&5000u32.to_be_bytes());
        let e = measure(&png).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the image is 5000×5000 (25.0 MP), over the 8 MP limit"
        );
    }

    #[test]
    fn a_jpeg_over_8_megapixels_is_refused_before_decoding() {
        // A real header claiming 4000×3000, then nothing: the cap answers first.
        let mut j = jpeg(16, 16, |_, _| [1, 2, 3]);
        let sof = j
            .windows(2)
            .position(|w| w == [0xFF, 0xC0])
            .expect("a baseline JPEG has SOF0");
        j[sof + 5..sof + 7].copy_from_slice(&3000u16.to_be_bytes());
        j[sof + 7..sof + 9].copy_from_slice(&4000u16.to_be_bytes());
        assert_eq!(
            measure(&j),
            Err(VisionError::TooManyPixels {
                width: 4000,
                height: 3000,
                limit: MAX_PIXELS
            })
        );
        assert!(measure(&j).unwrap_err().to_string().contains("8 MP limit"));
    }

    #[test]
    fn hostile_bytes_are_errors_never_panics() {
        let good = jpeg(48, 40, |x, y| [(x * 5) as u8, (y * 6) as u8, 90]);
        let mut inputs: Vec<Vec<u8>> = vec![
            vec![],
            vec![0xFF],
            vec![0xFF, 0xD8],
            vec![0xFF, 0xD8, 0xFF],
            b"GIF89a".to_vec(),
            PNG_SIGNATURE.to_vec(),
            [PNG_SIGNATURE, &[0, 0, 0, 13, b'I', b'D', b'A', b'T']].concat(),
        ];
        // Every truncation of a real JPEG.
        for cut in 0..good.len() {
            inputs.push(good[..cut].to_vec());
        }
        // Bit flips and garbage after a real header.
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..400 {
            let mut b = good.clone();
            for _ in 0..4 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let i = (seed as usize) % b.len();
                b[i] ^= (seed >> 32) as u8 | 1;
            }
            inputs.push(b);
        }
        inputs.push([&good[..good.len() / 2], &[0xAB; 5000][..]].concat());
        for (n, input) in inputs.iter().enumerate() {
            let r = std::panic::catch_unwind(|| measure(input));
            assert!(r.is_ok(), "input {n} ({} bytes) panicked", input.len());
        }
        assert_eq!(measure(&[]), Err(VisionError::Empty));
        assert!(matches!(
            measure(b"GIF89a"),
            Err(VisionError::UnknownFormat(_))
        ));
        assert!(matches!(
            measure(&good[..good.len() / 3]),
            Err(VisionError::Corrupt { format: "JPEG", .. })
        ));
    }

    #[test]
    fn base64_and_data_urls() {
        let j = jpeg(32, 24, |_, _| [200, 200, 200]);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&j);
        assert_eq!(measure_base64(&b64).unwrap().width, 32);
        assert!(matches!(
            measure_base64("not base64!"),
            Err(VisionError::Base64(_))
        ));
        let url = data_url("image/jpeg", &b64);
        assert!(url.starts_with("data:image/jpeg;base64,/9j/"));
        assert_eq!(parse_data_url(&url).unwrap(), ("image/jpeg", b64.as_str()));
        assert!(parse_data_url("https://example.com/a.jpg").is_err());
        assert!(parse_data_url("data:text/plain;base64,aGk=").is_err());
    }

    #[test]
    fn the_offline_answer_says_there_is_no_model_and_labels_the_measurements() {
        let facts = ImageFacts {
            format: ImageFormat::Jpeg,
            width: 640,
            height: 480,
            brightness_pct: Some(22.4),
            bytes: 30_000,
        };
        assert_eq!(
            offline_answer(&[("Hall camera".into(), Ok(facts.clone()))]),
            "No vision model is configured, so I can't say what is in the picture. \
             Measured from the image: 640×480 JPEG, average brightness 22 %, dark."
        );
        let two = offline_answer(&[
            ("Hall camera".into(), Ok(facts)),
            ("Screen".into(), Err(VisionError::Empty)),
        ]);
        assert!(two.ends_with(
            "Measured from the images: Hall camera: 640×480 JPEG, average brightness 22 %, \
             dark; Screen: nothing could be measured (the image is empty)."
        ));
    }
}
