//! MQTT data representations (MQTT 5.0 §1.5): two/four byte integers, Variable Byte Integers,
//! UTF-8 strings, binary data. Readers consume from a `Bytes` and never panic: every length is
//! checked against what is left before slicing. Strings and binary data are sliced, not copied.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::error::{CodecError, Result};

/// Largest value a Variable Byte Integer can carry (§1.5.5).
pub const VARINT_MAX: u32 = 268_435_455;

/// A UTF-8 string as MQTT defines it (§1.5.4): well-formed UTF-8 without U+0000, at most 65535
/// bytes, held as a slice of the received buffer so decoding copies nothing.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MqttString(Bytes);

impl MqttString {
    /// Validates `bytes` as an MQTT string.
    pub fn from_bytes(bytes: Bytes) -> Result<MqttString> {
        if std::str::from_utf8(&bytes).is_err() || bytes.contains(&0) {
            return Err(CodecError::BadUtf8);
        }
        Ok(MqttString(bytes))
    }

    /// A string from a static literal (checked: a NUL is reported as an error).
    pub fn from_static(s: &'static str) -> Result<MqttString> {
        MqttString::from_bytes(Bytes::from_static(s.as_bytes()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // The constructor validated the bytes; re-checking is cheap and keeps this safe code.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The raw bytes (a cheap clone of the underlying buffer).
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl TryFrom<&str> for MqttString {
    type Error = CodecError;
    fn try_from(s: &str) -> Result<MqttString> {
        MqttString::from_bytes(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl TryFrom<String> for MqttString {
    type Error = CodecError;
    fn try_from(s: String) -> Result<MqttString> {
        MqttString::from_bytes(Bytes::from(s))
    }
}

impl std::fmt::Debug for MqttString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for MqttString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for MqttString {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for MqttString {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

/// Reads one byte.
pub fn read_u8(buf: &mut Bytes) -> Result<u8> {
    if buf.is_empty() {
        return Err(CodecError::Truncated);
    }
    Ok(buf.get_u8())
}

/// Reads a big-endian Two Byte Integer.
pub fn read_u16(buf: &mut Bytes) -> Result<u16> {
    if buf.len() < 2 {
        return Err(CodecError::Truncated);
    }
    Ok(buf.get_u16())
}

/// Reads a big-endian Four Byte Integer.
pub fn read_u32(buf: &mut Bytes) -> Result<u32> {
    if buf.len() < 4 {
        return Err(CodecError::Truncated);
    }
    Ok(buf.get_u32())
}

/// Reads a Variable Byte Integer (§1.5.5): at most 4 bytes; a non-minimal encoding is accepted
/// as the spec only says the sender SHOULD use the minimum.
pub fn read_varint(buf: &mut Bytes) -> Result<u32> {
    let mut value: u32 = 0;
    for i in 0..4 {
        let b = read_u8(buf)?;
        value |= u32::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(CodecError::MalformedVarint)
}

/// Reads Binary Data: a two-byte length then that many bytes, sliced without copying.
pub fn read_binary(buf: &mut Bytes) -> Result<Bytes> {
    let len = usize::from(read_u16(buf)?);
    if buf.len() < len {
        return Err(CodecError::Truncated);
    }
    Ok(buf.split_to(len))
}

/// Reads a UTF-8 Encoded String.
pub fn read_string(buf: &mut Bytes) -> Result<MqttString> {
    MqttString::from_bytes(read_binary(buf)?)
}

/// Number of bytes a Variable Byte Integer takes for `n`.
pub fn varint_len(n: usize) -> usize {
    match n {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Writes a Variable Byte Integer; fails for values above [`VARINT_MAX`].
pub fn write_varint(out: &mut BytesMut, n: usize) -> Result<()> {
    if n > VARINT_MAX as usize {
        return Err(CodecError::TooLongToEncode("variable byte integer"));
    }
    let mut n = n;
    loop {
        let mut b = (n & 0x7F) as u8;
        n >>= 7;
        if n > 0 {
            b |= 0x80;
        }
        out.put_u8(b);
        if n == 0 {
            return Ok(());
        }
    }
}

/// Writes Binary Data; fails above 65535 bytes.
pub fn write_binary(out: &mut BytesMut, data: &[u8]) -> Result<()> {
    let len = u16::try_from(data.len()).map_err(|_| CodecError::TooLongToEncode("binary data"))?;
    out.put_u16(len);
    out.put_slice(data);
    Ok(())
}

/// Writes a UTF-8 Encoded String.
pub fn write_string(out: &mut BytesMut, s: &MqttString) -> Result<()> {
    write_binary(out, s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_spec_boundaries_round_trip() {
        // Table 1-1 in MQTT 5.0 §1.5.5.
        let cases: [(u32, &[u8]); 8] = [
            (0, &[0x00]),
            (127, &[0x7F]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xFF, 0x7F]),
            (16_384, &[0x80, 0x80, 0x01]),
            (2_097_151, &[0xFF, 0xFF, 0x7F]),
            (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
            (268_435_455, &[0xFF, 0xFF, 0xFF, 0x7F]),
        ];
        for (n, bytes) in cases {
            let mut out = BytesMut::new();
            write_varint(&mut out, n as usize).unwrap();
            assert_eq!(&out[..], bytes, "{n}");
            assert_eq!(varint_len(n as usize), bytes.len());
            let mut b = Bytes::copy_from_slice(bytes);
            assert_eq!(read_varint(&mut b).unwrap(), n);
        }
    }

    #[test]
    fn varint_of_five_bytes_is_malformed() {
        let mut b = Bytes::from_static(&[0x80, 0x80, 0x80, 0x80, 0x01]);
        assert_eq!(read_varint(&mut b), Err(CodecError::MalformedVarint));
        let mut out = BytesMut::new();
        assert!(write_varint(&mut out, 268_435_456).is_err());
    }

    #[test]
    fn strings_reject_nul_bad_utf8_and_truncation() {
        let mut nul = Bytes::from_static(&[0, 3, b'a', 0, b'b']);
        assert_eq!(read_string(&mut nul), Err(CodecError::BadUtf8));
        // A lone surrogate U+D800 encoded as ED A0 80 is not well-formed UTF-8 (§1.5.4).
        let mut surrogate = Bytes::from_static(&[0, 3, 0xED, 0xA0, 0x80]);
        assert_eq!(read_string(&mut surrogate), Err(CodecError::BadUtf8));
        let mut short = Bytes::from_static(&[0, 5, b'a']);
        assert_eq!(read_string(&mut short), Err(CodecError::Truncated));
        // The spec's own example: "A𪛔" = 41 F0 AA 9B 94.
        let mut ok = Bytes::from_static(&[0, 5, 0x41, 0xF0, 0xAA, 0x9B, 0x94]);
        assert_eq!(read_string(&mut ok).unwrap().as_str(), "A\u{2A6D4}");
    }
}
