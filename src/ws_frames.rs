//! WebSocket text frames built in one reused buffer, for the media hot paths (caller
//! audio to a provider, agent audio to a phone line): once the buffer is warm and the
//! previous frame has been written out and dropped, a frame costs no allocation.

use bytes::{Bytes, BytesMut};

/// How much a WebSocket reads from its connection at a time. tungstenite zero-fills
/// its whole read window before every read (128 KiB by default): on a socket that
/// carries a 20 ms frame at a time that fill was 18 % of a phone call's CPU. Frames are
/// a few hundred bytes (Twilio, widget, caller audio) to a few KiB (agent audio); a
/// larger frame still arrives whole, the buffer growing to its declared length.
pub const READ_BUFFER_BYTES: usize = 8 * 1024;

/// A reusable builder of text frames.
#[derive(Debug, Default)]
pub struct TextFrames {
    buf: BytesMut,
}

impl TextFrames {
    /// Starts a frame of about `size` bytes. Call it after the previous frame was sent:
    /// its buffer is then free again and is reused rather than reallocated.
    pub fn begin(&mut self, size: usize) {
        self.buf.clear();
        self.buf.reserve(size);
    }

    /// Appends `text`.
    pub fn push_str(&mut self, text: &str) {
        self.buf.extend_from_slice(text.as_bytes());
    }

    /// Appends the standard base64 of `data`.
    pub fn push_base64(&mut self, data: &[u8]) {
        use base64::Engine;
        let start = self.buf.len();
        let encoded = base64::encoded_len(data.len(), true).unwrap_or(0);
        self.buf.resize(start + encoded, 0);
        let written = base64::engine::general_purpose::STANDARD
            .encode_slice(data, &mut self.buf[start..])
            .expect("sized for the encoding");
        self.buf.truncate(start + written);
    }

    /// Takes the frame built so far.
    pub fn take(&mut self) -> Bytes {
        self.buf.split().freeze()
    }

    /// Takes the frame as a client-side (tungstenite) text message.
    pub fn take_message(&mut self) -> tokio_tungstenite::tungstenite::Message {
        let text = tokio_tungstenite::tungstenite::Utf8Bytes::try_from(self.take())
            .expect("frames are built from str and base64");
        tokio_tungstenite::tungstenite::Message::Text(text)
    }

    /// Takes the frame as a server-side (axum) text message.
    pub fn take_axum_message(&mut self) -> axum::extract::ws::Message {
        let text = axum::extract::ws::Utf8Bytes::try_from(self.take()).expect("frames are built from str and base64");
        axum::extract::ws::Message::Text(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_text_and_base64_and_the_buffer_is_reused() {
        let mut frames = TextFrames::default();
        frames.begin(64);
        frames.push_str(r#"{"audio":""#);
        frames.push_base64(&[0xf3, 0xff, 0xf6, 0xff]);
        frames.push_str(r#""}"#);
        let first = frames.take();
        assert_eq!(&first[..], br#"{"audio":"8//2/w=="}"#);
        let address = first.as_ptr();
        drop(first);
        frames.begin(64);
        frames.push_str("next");
        assert_eq!(frames.take().as_ptr(), address, "the first frame's allocation was reused");
    }
}
