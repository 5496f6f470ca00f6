//! Opus in Ogg (RFC 7845 over RFC 3533): the format of call recordings.
//!
//! [`OggOpusWriter`] lays Opus packets into Ogg pages: the identification
//! header (`OpusHead`) alone on the first page, the comment header
//! (`OpusTags`) on the second, then audio pages whose granule position counts
//! 48 kHz samples including the pre-skip, and a last page flagged end-of-stream
//! whose granule position trims the stream to its exact length.
//!
//! The writer is our own rather than the `ogg` crate's `PacketWriter`, which
//! keeps every packet as an owned buffer until its page is written and builds
//! each page header in a fresh `Vec`: that is an allocation per 20 ms frame.
//! Here a page is assembled in one preallocated buffer and written into the
//! caller's output buffer, so a warm writer allocates nothing. Reading goes
//! through the `ogg` crate ([`decode_ogg_opus`]), so the two are checked
//! against each other.
//!
//! [`seal_truncated_stream`] turns the pages written so far by a process that
//! died mid-call into a complete, playable stream.

use std::io::Cursor;

use crate::MediaError;

/// Clock of Ogg Opus granule positions: 48 kHz whatever the input rate.
pub const GRANULE_RATE: u32 = 48_000;

/// Samples of the granule clock in one 20 ms frame.
pub const GRANULE_PER_FRAME: u64 = 960;

/// Packets on one audio page: a page is written each second, so a process
/// that dies loses at most that much of what it had encoded.
const PACKETS_PER_PAGE: usize = 50;
/// Page body size beyond which a page is written early (high bitrates).
const PAGE_BODY_LIMIT: usize = 16 * 1024;
/// Largest packet written: two streams' worth of Opus (a multistream packet frames every
/// stream but the last with its length, a few bytes each).
pub const MAX_PACKET: usize = 2 * crate::MAX_OPUS_PACKET + 8;

/// The audio an Opus packet holds, in 48 kHz samples, read off its TOC byte (and frame
/// count) as RFC 6716 §3.1 lays them out; `None` for an empty or truncated packet.
pub(crate) fn packet_samples_48k(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = usize::from(toc >> 3);
    let frame = match config {
        // SILK-only: 10, 20, 40, 60 ms; hybrid: 10, 20 ms; CELT-only: 2.5, 5, 10, 20 ms.
        0..=11 => [480, 960, 1920, 2880][config % 4],
        12..=15 => [480, 960][config % 2],
        _ => [120, 240, 480, 960][config % 4],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*packet.get(1)? & 0x3F),
    };
    Some(frame * frames)
}

/// Ogg page header size before the segment table.
const PAGE_HEADER: usize = 27;
/// Header type flags.
const FLAG_BOS: u8 = 0x02;
const FLAG_EOS: u8 = 0x04;

/// How a stream's channels are coded (RFC 7845 §5.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelMapping {
    /// Family 0: one Opus stream, mono or coupled stereo.
    Single,
    /// Family 1 with two channels, each its own mono Opus stream (stream 0 left, stream 1
    /// right, none coupled): two voices kept strictly apart, as call recordings want.
    TwoMono,
}

/// What the `OpusHead` packet says about the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusHead {
    /// 1 or 2.
    pub channels: u8,
    /// Samples at 48 kHz the decoder drops from the start: the encoder's look-ahead.
    pub pre_skip: u16,
    /// The rate of the audio that was encoded (informational: Opus decodes at any rate).
    pub input_rate: u32,
    /// How the channels are coded.
    pub mapping: ChannelMapping,
}

impl OpusHead {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"OpusHead");
        out.push(1); // version
        out.push(self.channels);
        out.extend_from_slice(&self.pre_skip.to_le_bytes());
        out.extend_from_slice(&self.input_rate.to_le_bytes());
        out.extend_from_slice(&0i16.to_le_bytes()); // output gain
        match self.mapping {
            ChannelMapping::Single => out.push(0),
            // Family 1, two streams, none coupled, channel i from stream i.
            ChannelMapping::TwoMono => out.extend_from_slice(&[1, 2, 0, 0, 1]),
        }
    }

    fn parse(packet: &[u8]) -> Result<Self, MediaError> {
        if packet.len() < 19 || &packet[..8] != b"OpusHead" {
            return Err(invalid("the first packet is not an OpusHead"));
        }
        if packet[8] >> 4 != 0 {
            return Err(invalid("unsupported OpusHead version"));
        }
        let channels = packet[9];
        let mapping = match (packet[18], channels, &packet[19..]) {
            (0, 1 | 2, _) => ChannelMapping::Single,
            (1, 2, [2, 0, 0, 1, ..]) => ChannelMapping::TwoMono,
            _ => {
                return Err(invalid("only mono or stereo streams, and two mono streams in family 1, are supported"));
            }
        };
        Ok(OpusHead {
            channels,
            pre_skip: u16::from_le_bytes([packet[10], packet[11]]),
            input_rate: u32::from_le_bytes([packet[12], packet[13], packet[14], packet[15]]),
            mapping,
        })
    }
}

fn invalid(message: &str) -> MediaError {
    MediaError::InvalidStream(message.to_owned())
}

/// CRC-32 of Ogg pages: polynomial 0x04C11DB7, not reflected, initial value 0.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000_0000 != 0 { (crc << 1) ^ 0x04C1_1DB7 } else { crc << 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

fn crc_update(mut crc: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        crc = (crc << 8) ^ CRC_TABLE[((crc >> 24) as u8 ^ b) as usize];
    }
    crc
}

/// Lays Opus packets into Ogg pages, appending finished pages to a caller's buffer.
///
/// Packets never straddle pages (a packet here is at most [`MAX_PACKET`]
/// bytes, eleven lacing values, so it always fits an empty page), which keeps
/// every page's granule position exact.
pub struct OggOpusWriter {
    serial: u32,
    sequence: u32,
    pre_skip: u16,
    /// Granule position after the last packet written.
    granule: u64,
    /// Granule position of the last page written.
    page_granule: u64,
    lacing: [u8; 255],
    segments: usize,
    packets: usize,
    /// The current page's packets (capacity reserved once).
    body: Vec<u8>,
    finished: bool,
}

impl std::fmt::Debug for OggOpusWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OggOpusWriter")
            .field("serial", &self.serial)
            .field("pages", &self.sequence)
            .field("granule", &self.granule)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl OggOpusWriter {
    /// Starts a stream: appends the `OpusHead` and `OpusTags` pages to `out`.
    ///
    /// `comments` become `KEY=value` user comments; `vendor` names the encoder.
    pub fn new(
        head: OpusHead,
        vendor: &str,
        comments: &[(&str, &str)],
        serial: u32,
        out: &mut Vec<u8>,
    ) -> Result<Self, MediaError> {
        if !(1..=2).contains(&head.channels) || (head.mapping == ChannelMapping::TwoMono && head.channels != 2) {
            return Err(MediaError::InvalidConfig("Ogg Opus streams here are mono or stereo"));
        }
        let mut writer = OggOpusWriter {
            serial,
            sequence: 0,
            pre_skip: head.pre_skip,
            granule: 0,
            page_granule: 0,
            lacing: [0; 255],
            segments: 0,
            packets: 0,
            body: Vec::with_capacity(PAGE_BODY_LIMIT + MAX_PACKET),
            finished: false,
        };
        let mut packet = Vec::with_capacity(64);
        head.write(&mut packet);
        writer.add(&packet)?;
        writer.write_page(FLAG_BOS, 0, out);

        packet.clear();
        packet.extend_from_slice(b"OpusTags");
        packet.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
        packet.extend_from_slice(vendor.as_bytes());
        packet.extend_from_slice(&(comments.len() as u32).to_le_bytes());
        for (key, value) in comments {
            packet.extend_from_slice(&((key.len() + 1 + value.len()) as u32).to_le_bytes());
            packet.extend_from_slice(key.as_bytes());
            packet.push(b'=');
            packet.extend_from_slice(value.as_bytes());
        }
        if packet.len() > 255 * 254 {
            return Err(MediaError::InvalidConfig("Opus comments must fit one Ogg page"));
        }
        writer.add(&packet)?;
        writer.write_page(0, 0, out);
        Ok(writer)
    }

    /// Adds one audio packet covering `samples_48k` samples of the granule
    /// clock (960 for 20 ms). A full page is written to `out` first when this
    /// packet would not fit it.
    pub fn write_packet(&mut self, packet: &[u8], samples_48k: u64, out: &mut Vec<u8>) -> Result<(), MediaError> {
        if self.finished {
            return Err(MediaError::InvalidConfig("the Ogg stream has ended"));
        }
        if packet.len() > MAX_PACKET {
            return Err(MediaError::BufferTooSmall { needed: packet.len(), actual: MAX_PACKET });
        }
        let needed = packet.len() / 255 + 1;
        if self.packets > 0
            && (self.packets >= PACKETS_PER_PAGE
                || self.segments + needed > 255
                || self.body.len() + packet.len() > PAGE_BODY_LIMIT)
        {
            self.write_page(0, self.granule, out);
        }
        self.add(packet)?;
        self.granule += samples_48k;
        Ok(())
    }

    /// Ends the stream: writes the last page, flagged end-of-stream, with the
    /// granule position that makes the stream `playable_48k` samples long
    /// (after the pre-skip). That may be shorter than the packets written: the
    /// decoder trims the rest, which is how the encoder's look-ahead flush
    /// packets are hidden.
    pub fn finish(&mut self, playable_48k: u64, out: &mut Vec<u8>) -> Result<(), MediaError> {
        if self.finished {
            return Err(MediaError::InvalidConfig("the Ogg stream has ended"));
        }
        if self.packets == 0 {
            return Err(MediaError::InvalidConfig("an Ogg Opus stream ends with at least one audio packet"));
        }
        let granule = u64::from(self.pre_skip) + playable_48k;
        if granule > self.granule || granule < self.page_granule {
            return Err(MediaError::InvalidConfig("the end of the stream must fall within its last page"));
        }
        self.write_page(FLAG_EOS, granule, out);
        self.finished = true;
        Ok(())
    }

    /// Granule position after the last packet (48 kHz samples, pre-skip included).
    pub fn granule(&self) -> u64 {
        self.granule
    }

    /// The pre-skip declared in `OpusHead`.
    pub fn pre_skip(&self) -> u16 {
        self.pre_skip
    }

    /// Pages written so far.
    pub fn pages(&self) -> u32 {
        self.sequence
    }

    fn add(&mut self, packet: &[u8]) -> Result<(), MediaError> {
        let full = packet.len() / 255;
        if self.segments + full + 1 > 255 {
            return Err(MediaError::InvalidConfig("packet too large for an Ogg page"));
        }
        for _ in 0..full {
            self.lacing[self.segments] = 255;
            self.segments += 1;
        }
        self.lacing[self.segments] = (packet.len() % 255) as u8;
        self.segments += 1;
        self.packets += 1;
        self.body.extend_from_slice(packet);
        Ok(())
    }

    fn write_page(&mut self, flags: u8, granule: u64, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(b"OggS");
        out.push(0);
        out.push(flags);
        out.extend_from_slice(&granule.to_le_bytes());
        out.extend_from_slice(&self.serial.to_le_bytes());
        out.extend_from_slice(&self.sequence.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.push(self.segments as u8);
        out.extend_from_slice(&self.lacing[..self.segments]);
        out.extend_from_slice(&self.body);
        let crc = crc_update(0, &out[start..]);
        out[start + 22..start + 26].copy_from_slice(&crc.to_le_bytes());
        self.sequence += 1;
        self.page_granule = granule;
        self.segments = 0;
        self.packets = 0;
        self.body.clear();
    }
}

/// One page as found in a byte stream.
struct PageInfo {
    len: usize,
    flags: u8,
    granule: u64,
}

/// Parses the page at the start of `bytes`; `None` if it is incomplete or corrupt.
fn page_at(bytes: &[u8]) -> Option<PageInfo> {
    if bytes.len() < PAGE_HEADER || &bytes[..4] != b"OggS" || bytes[4] != 0 {
        return None;
    }
    let segments = usize::from(bytes[26]);
    let table_end = PAGE_HEADER + segments;
    if bytes.len() < table_end {
        return None;
    }
    let body: usize = bytes[PAGE_HEADER..table_end].iter().map(|&l| usize::from(l)).sum();
    let len = table_end + body;
    if bytes.len() < len {
        return None;
    }
    let stored = u32::from_le_bytes([bytes[22], bytes[23], bytes[24], bytes[25]]);
    let crc = crc_update(crc_update(crc_update(0, &bytes[..22]), &[0; 4]), &bytes[26..len]);
    if crc != stored {
        return None;
    }
    let granule = u64::from_le_bytes(bytes[6..14].try_into().ok()?);
    Some(PageInfo { len, flags: bytes[5], granule })
}

/// What [`seal_truncated_stream`] made of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedStream {
    /// The stream's identification header.
    pub head: OpusHead,
    /// Playable samples at 48 kHz (the last page's granule position less the pre-skip).
    pub playable_48k: u64,
    /// Whether the stream had to be repaired (cut after its last whole page,
    /// or its last page flagged end-of-stream).
    pub repaired: bool,
}

impl SealedStream {
    /// The playable length in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        self.playable_48k * 1000 / u64::from(GRANULE_RATE)
    }
}

/// Makes a stream [`OggOpusWriter`] was writing when its process died into a
/// complete one: cuts `bytes` after its last whole page (a half-written page
/// is dropped) and flags that page end-of-stream. Streams that already end
/// properly are left as they are.
///
/// The encoder's look-ahead was never flushed, so the last few milliseconds
/// before the crash are lost along with any page still in memory.
pub fn seal_truncated_stream(bytes: &mut Vec<u8>) -> Result<SealedStream, MediaError> {
    let mut offset = 0;
    let mut last: Option<(usize, PageInfo)> = None;
    let mut head = None;
    let mut pages = 0;
    while let Some(page) = page_at(&bytes[offset..]) {
        if pages == 0 {
            let body_start = offset + PAGE_HEADER + usize::from(bytes[offset + 26]);
            head = Some(OpusHead::parse(&bytes[body_start..offset + page.len])?);
        }
        pages += 1;
        let len = page.len;
        last = Some((offset, page));
        offset += len;
    }
    let head = head.ok_or_else(|| invalid("no OpusHead page"))?;
    let (last_offset, last) = last.ok_or_else(|| invalid("no whole page"))?;
    if pages < 3 {
        return Err(invalid("the stream has no audio page"));
    }
    let mut repaired = offset != bytes.len();
    bytes.truncate(offset);
    if last.flags & FLAG_EOS == 0 {
        bytes[last_offset + 5] |= FLAG_EOS;
        bytes[last_offset + 22..last_offset + 26].fill(0);
        let crc = crc_update(0, &bytes[last_offset..]);
        bytes[last_offset + 22..last_offset + 26].copy_from_slice(&crc.to_le_bytes());
        repaired = true;
    }
    Ok(SealedStream { head, playable_48k: last.granule.saturating_sub(u64::from(head.pre_skip)), repaired })
}

/// A decoded Ogg Opus stream.
#[derive(Debug, Clone)]
pub struct DecodedOggOpus {
    /// The identification header.
    pub head: OpusHead,
    /// The encoder named in `OpusTags`.
    pub vendor: String,
    /// `KEY=value` user comments.
    pub comments: Vec<String>,
    /// Samples at 48 kHz, interleaved when stereo, pre-skip removed and
    /// trimmed to the last granule position.
    pub pcm: Vec<i16>,
    /// Whether the last page was flagged end-of-stream.
    pub ended: bool,
}

impl DecodedOggOpus {
    /// One channel's samples (0: left, 1: right).
    pub fn channel(&self, index: usize) -> Vec<i16> {
        let channels = usize::from(self.head.channels);
        self.pcm.iter().skip(index).step_by(channels).copied().collect()
    }

    /// Playable length in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        (self.pcm.len() / usize::from(self.head.channels)) as u64 * 1000 / u64::from(GRANULE_RATE)
    }
}

/// The decoder a stream's `OpusHead` calls for.
enum StreamDecoder {
    Single(opusic_c::Decoder),
    TwoMono(opusic_c::multistream::Decoder),
}

impl StreamDecoder {
    fn new(head: &OpusHead) -> Result<Self, MediaError> {
        use opusic_c::{Channels, SampleRate as OpusRate};
        let create = |e: opusic_c::ErrorCode| MediaError::Opus { op: "decoder create", message: e.message() };
        Ok(match head.mapping {
            ChannelMapping::Single => {
                let channels = if head.channels == 2 { Channels::Stereo } else { Channels::Mono };
                StreamDecoder::Single(opusic_c::Decoder::new(channels, OpusRate::Hz48000).map_err(create)?)
            }
            ChannelMapping::TwoMono => {
                let config = opusic_c::multistream::Config::<2>::new(2, 0, [0, 1]);
                StreamDecoder::TwoMono(opusic_c::multistream::Decoder::new(config, OpusRate::Hz48000).map_err(create)?)
            }
        })
    }

    fn decode(&mut self, packet: &[u8], out: &mut [u16]) -> Result<usize, MediaError> {
        let result = match self {
            StreamDecoder::Single(d) => d.decode_to_slice(packet, out, false),
            StreamDecoder::TwoMono(d) => d.decode_to_slice(packet, out, false),
        };
        result.map_err(|e| MediaError::Opus { op: "decode", message: e.message() })
    }
}

/// Decodes an Ogg Opus stream (mono, stereo, or two mono streams) to 48 kHz PCM
/// with libopus, checking its structure on the way: page checksums (the `ogg`
/// crate's reader), `OpusHead` then `OpusTags`, and granule positions.
pub fn decode_ogg_opus(bytes: &[u8]) -> Result<DecodedOggOpus, MediaError> {
    let mut reader = ogg::PacketReader::new(Cursor::new(bytes));
    let mut next = || reader.read_packet().map_err(|e| MediaError::InvalidStream(e.to_string()));
    let first = next()?.ok_or_else(|| invalid("empty stream"))?;
    if !first.first_in_stream() || !first.last_in_page() {
        return Err(invalid("OpusHead must be alone on the first page"));
    }
    let head = OpusHead::parse(&first.data)?;
    let tags = next()?.ok_or_else(|| invalid("no OpusTags"))?;
    let (vendor, comments) = parse_tags(&tags.data)?;
    if !tags.last_in_page() || tags.absgp_page() != 0 {
        return Err(invalid("OpusTags must end its page, at granule position 0"));
    }
    let channels = usize::from(head.channels);
    let mut decoder = StreamDecoder::new(&head)?;
    let mut frame = vec![0u16; 5_760 * channels];
    let mut pcm: Vec<i16> = Vec::new();
    let mut last_granule = 0u64;
    let mut ended = false;
    while let Some(packet) = next()? {
        let n = decoder.decode(&packet.data, &mut frame)?;
        pcm.extend(frame[..n * channels].iter().map(|&s| s as i16));
        if packet.last_in_page() {
            let granule = packet.absgp_page();
            if granule < last_granule {
                return Err(invalid("granule positions go backwards"));
            }
            last_granule = granule;
        }
        ended = packet.last_in_stream();
    }
    let decoded = (pcm.len() / channels) as u64;
    if last_granule > decoded {
        return Err(invalid("the last granule position is beyond the decoded audio"));
    }
    let start = usize::from(head.pre_skip).min(last_granule as usize);
    pcm.truncate(last_granule as usize * channels);
    pcm.drain(..start * channels);
    Ok(DecodedOggOpus { head, vendor, comments, pcm, ended })
}

fn parse_tags(packet: &[u8]) -> Result<(String, Vec<String>), MediaError> {
    if packet.len() < 16 || &packet[..8] != b"OpusTags" {
        return Err(invalid("the second packet is not OpusTags"));
    }
    let mut at = 8;
    let mut take = |n: usize| -> Result<&[u8], MediaError> {
        let slice = packet.get(at..at + n).ok_or_else(|| invalid("truncated OpusTags"))?;
        at += n;
        Ok(slice)
    };
    let u32_at = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let vendor_len = u32_at(take(4)?);
    let vendor = String::from_utf8_lossy(take(vendor_len)?).into_owned();
    let count = u32_at(take(4)?);
    let mut comments = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let len = u32_at(take(4)?);
        comments.push(String::from_utf8_lossy(take(len)?).into_owned());
    }
    Ok((vendor, comments))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head() -> OpusHead {
        OpusHead { channels: 2, pre_skip: 312, input_rate: 24_000, mapping: ChannelMapping::TwoMono }
    }

    #[test]
    fn opus_head_round_trips_in_both_families() {
        for mapping in [ChannelMapping::Single, ChannelMapping::TwoMono] {
            let head = OpusHead { mapping, ..head() };
            let mut packet = Vec::new();
            head.write(&mut packet);
            assert_eq!(packet.len(), if mapping == ChannelMapping::Single { 19 } else { 23 });
            assert_eq!(OpusHead::parse(&packet).unwrap(), head);
        }
        let mut three = Vec::new();
        OpusHead { channels: 2, ..head() }.write(&mut three);
        three[19] = 3;
        assert!(OpusHead::parse(&three).is_err(), "other layouts are refused");
    }

    #[test]
    fn the_crc_is_the_ogg_one() {
        // The Ogg CRC (CRC-32/MPEG-2 without the final inversion, initial value 0)
        // of "123456789".
        assert_eq!(crc_update(0, b"123456789"), 0x89A1_897F);
    }

    #[test]
    fn headers_take_a_page_each_and_audio_pages_hold_a_second() {
        let mut out = Vec::new();
        let mut w = OggOpusWriter::new(head(), "test", &[("TITLE", "call")], 7, &mut out).unwrap();
        assert_eq!(w.pages(), 2);
        for _ in 0..120 {
            w.write_packet(&[0xFC, 1, 2, 3], 960, &mut out).unwrap();
        }
        assert_eq!(w.pages(), 4, "two full pages of 50 packets so far");
        w.finish(120 * 960 - 312, &mut out).unwrap();
        assert_eq!(w.pages(), 5);
        let mut offset = 0;
        let mut flags = Vec::new();
        let mut granules = Vec::new();
        while offset < out.len() {
            let page = page_at(&out[offset..]).expect("every page parses with a valid CRC");
            flags.push(page.flags);
            granules.push(page.granule);
            offset += page.len;
        }
        assert_eq!(flags, vec![FLAG_BOS, 0, 0, 0, FLAG_EOS]);
        assert_eq!(granules, vec![0, 0, 50 * 960, 100 * 960, 120 * 960]);
    }

    #[test]
    fn the_end_must_fall_within_the_last_page() {
        let mut out = Vec::new();
        let mut w = OggOpusWriter::new(head(), "test", &[], 1, &mut out).unwrap();
        assert!(w.finish(0, &mut out).is_err(), "no audio packet");
        for _ in 0..60 {
            w.write_packet(&[0xFC], 960, &mut out).unwrap();
        }
        assert!(w.finish(60 * 960, &mut out).is_err(), "beyond the packets written (pre-skip included)");
        assert!(w.finish(10 * 960, &mut out).is_err(), "before the previous page's end");
        w.finish(60 * 960 - 312, &mut out).unwrap();
        assert!(w.write_packet(&[0xFC], 960, &mut out).is_err());
    }

    #[test]
    fn a_stream_cut_mid_page_is_sealed_after_its_last_whole_page() {
        let mut out = Vec::new();
        let mut w = OggOpusWriter::new(head(), "test", &[], 3, &mut out).unwrap();
        for _ in 0..130 {
            w.write_packet(&[0xFC, 9, 9], 960, &mut out).unwrap();
        }
        let whole = out.len();
        out.extend_from_slice(b"OggS\0\0half a page");
        let sealed = seal_truncated_stream(&mut out).unwrap();
        assert_eq!(out.len(), whole);
        assert!(sealed.repaired);
        assert_eq!(sealed.playable_48k, 100 * 960 - 312);
        assert_eq!(sealed.head, head());
        let again = seal_truncated_stream(&mut out).unwrap();
        assert!(!again.repaired, "a sealed stream is left alone");
        assert_eq!(again.playable_48k, sealed.playable_48k);
    }

    #[test]
    fn a_stream_without_audio_cannot_be_sealed() {
        let mut out = Vec::new();
        OggOpusWriter::new(head(), "test", &[], 3, &mut out).unwrap();
        assert!(seal_truncated_stream(&mut out).is_err());
        assert!(seal_truncated_stream(&mut b"not ogg".to_vec()).is_err());
    }
}
