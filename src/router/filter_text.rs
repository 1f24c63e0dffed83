//! A stored filter's text, kept inside its terminal when short.
//!
//! Why: confirming an exact-filter hit compares the topic with the stored text; as a
//! `Box<str>` that is a pointer chase from the terminal to a separate heap block, a second
//! cache miss on every hit at 1 M filters. Most filters (`tenant/site/device/metric`) fit in
//! 30 bytes, and 32 inline bytes cost no more than the pointer plus the allocator's minimum
//! block they replace.

/// Texts up to this many bytes are stored inline.
const INLINE: usize = 30;

/// A filter text: inline up to [`INLINE`] bytes, on the heap above.
#[derive(Clone)]
pub(super) enum FilterText {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl FilterText {
    /// The text.
    #[inline]
    pub(super) fn as_str(&self) -> &str {
        match self {
            FilterText::Inline { len, bytes } => {
                let b = &bytes[..usize::from(*len)];
                // SAFETY: `b` is a copy of the whole of a `&str` (see `From<&str>`), so it is
                // valid UTF-8.
                unsafe { std::str::from_utf8_unchecked(b) }
            }
            FilterText::Heap(s) => s,
        }
    }
}

impl From<&str> for FilterText {
    fn from(s: &str) -> Self {
        if s.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            FilterText::Inline {
                len: s.len() as u8,
                bytes,
            }
        } else {
            FilterText::Heap(s.into())
        }
    }
}

impl std::fmt::Debug for FilterText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_heap() {
        assert_eq!(std::mem::size_of::<FilterText>(), 32);
        for s in [
            "",
            "a",
            "t1/site2/dev3/temp",
            &"x".repeat(30),
            &"y".repeat(31),
            "é/ü/+",
        ] {
            let t = FilterText::from(s);
            assert_eq!(t.as_str(), s);
            assert_eq!(matches!(t, FilterText::Inline { .. }), s.len() <= INLINE);
        }
    }
}
